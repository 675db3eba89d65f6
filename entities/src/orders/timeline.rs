//! An order's timeline: every status it took, when and why.

use sea_orm::entity::prelude::*;

/// One step of an order's history.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "order_timeline")]
pub struct Model {
    /// Entry id (UUID v7: creation order).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The status entered.
    pub status: String,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
