//! The simulated card processor's vault: what it remembers of a tokenised card.

use sea_orm::entity::prelude::*;

/// A processor token and how the simulated processor answers for it (derived from the test
/// card numbers). Stands in for the vault of a real processor; it holds no card number.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "processor_tokens")]
pub struct Model {
    /// The token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token: String,
    /// `APPROVE`, `DECLINE`, `INSUFFICIENT_FUNDS` or `TRANSIENT`.
    pub behaviour: String,
    /// Created.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
