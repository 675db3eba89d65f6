//! A shipment: the parcel of one order.

use sea_orm::entity::prelude::*;

/// The parcel of one confirmed order, with the carrier's tracking number and where it stands.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "shipments")]
pub struct Model {
    /// Shipment id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The order shipped (one shipment per order).
    #[sea_orm(unique)]
    pub order_id: Uuid,
    /// The order's number, for people reading tracking pages and e-mails.
    pub order_number: String,
    /// The order's customer; `None` for a guest order.
    pub customer_id: Option<Uuid>,
    /// Where a guest order's mails go (from the order); `None` for a customer's order.
    pub email: Option<String>,
    /// The carrier's name.
    pub carrier: String,
    /// The carrier's tracking number.
    #[sea_orm(unique)]
    pub tracking_number: String,
    /// `PREPARING`, `SHIPPED`, `OUT_FOR_DELIVERY`, `DELIVERED`, `FAILED` or `CANCELLED`.
    pub status: String,
    /// Where it goes (JSON: name, line1, line2, city, postalCode, country).
    pub address: Json,
    /// What is in it (JSON: productId, name, quantity per line).
    pub items: Json,
    /// When the simulated carrier takes the next step; `None` once it has no next step.
    pub next_step_at: Option<DateTimeUtc>,
    /// Why delivery failed or the shipment was cancelled.
    pub reason: Option<String>,
    /// Created (the order was confirmed).
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
