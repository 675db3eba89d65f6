//! A line of an order: a price snapshot.

use sea_orm::entity::prelude::*;

/// Units of a product at the price it had when the order was placed.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "order_lines")]
pub struct Model {
    /// The order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    /// The product.
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: Uuid,
    /// Its name then.
    pub name: String,
    /// Its unit price then (minor units).
    pub unit_price_minor: i64,
    /// Units.
    pub quantity: i32,
    /// Unit price times units.
    pub line_total_minor: i64,
    /// Position in the order.
    pub position: i32,
    /// Its category's name then (`None` on lines stored before categories were kept).
    pub category: Option<String>,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
