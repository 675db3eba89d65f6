//! A customer's points.

use sea_orm::entity::prelude::*;

/// A customer's points: what they can spend now, and what waits for orders to be delivered.
/// Both are sums of the ledger, kept here so that spending is one conditional update; the
/// database refuses either going below zero.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "reward_accounts")]
pub struct Model {
    /// The customer.
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: Uuid,
    /// Points that can be redeemed.
    pub balance: i64,
    /// Points earned on orders not yet delivered.
    pub pending: i64,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
