//! A line of a confirmed order, as reports count it.

use sea_orm::entity::prelude::*;

/// Units of a product sold in a confirmed order.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "report_lines")]
pub struct Model {
    /// The order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    /// The product.
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: Uuid,
    /// The day the order was placed (UTC, `YYYY-MM-DD`).
    pub day: String,
    /// The product's name then.
    pub name: String,
    /// Its category then (`Uncategorized` when unknown).
    pub category: String,
    /// Units.
    pub quantity: i64,
    /// What they came to (minor units).
    pub line_total_minor: i64,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
