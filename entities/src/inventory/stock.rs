//! Stock of one product.

use sea_orm::entity::prelude::*;

/// Units of a product: on hand, and reserved for orders not yet shipped. What can still be
/// sold is `on_hand - reserved`, never below zero (the updates are conditional).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "stock")]
pub struct Model {
    /// The catalog product (a reference, not a foreign key).
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: Uuid,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units held for orders.
    pub reserved: i64,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
