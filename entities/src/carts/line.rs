//! A line of a cart.

use sea_orm::entity::prelude::*;

/// Units of one product in one cart.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cart_lines")]
pub struct Model {
    /// The cart.
    #[sea_orm(primary_key, auto_increment = false)]
    pub cart_id: Uuid,
    /// The catalog product.
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: Uuid,
    /// Units (within the per-line limit).
    pub quantity: i32,
    /// First added (lines are shown in this order).
    pub added_at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
