//! An order, as reports count it.

use sea_orm::entity::prelude::*;

/// One order in the read model: when it was placed, what it came to, where it stands.
/// Amounts are minor units of `currency`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "report_orders")]
pub struct Model {
    /// The order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    /// Its number.
    pub number: String,
    /// The day it was placed (UTC, `YYYY-MM-DD`).
    pub day: String,
    /// Its status, as far as the events told.
    pub status: String,
    /// How far along its life the status is (events of different topics may arrive out of
    /// order: a status only ever moves forward).
    pub status_rank: i32,
    /// Whether it was confirmed (a sale).
    pub confirmed: bool,
    /// ISO 4217 currency.
    pub currency: String,
    /// Sum of the lines.
    pub subtotal_minor: i64,
    /// Redeemed points' discount.
    pub discount_minor: i64,
    /// What was paid.
    pub total_minor: i64,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
