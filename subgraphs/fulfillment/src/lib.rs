//! The fulfillment subgraph: the parcel of every confirmed order, from the warehouse to the
//! customer's door.
//!
//! An `order.confirmed` event creates one shipment ([`events`]), `PREPARING`, with a carrier
//! and a tracking number. The carrier is simulated ([`carrier`]): on a configurable clock it
//! takes each parcel through `SHIPPED`, `OUT_FOR_DELIVERY` and `DELIVERED`, and an
//! administrator may take a step by hand or report a failed delivery ([`shipments`]). Every
//! step is a tracking event on the shipment and an event on the bus (`shipment.*`): orders
//! moves the order along, inventory takes shipped units off the shelf, notifications tells the
//! customer. A cancelled order's parcel is cancelled while it is still being prepared.
//!
//! `Order.shipment` extends the orders' `Order` through federation.

pub mod carrier;
pub mod events;
pub mod schema;
pub mod shipments;

use std::sync::Arc;
use std::time::Duration;

use kernel::events::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;

pub use schema::{FulfillmentSchema, build_schema};

/// Everything fulfillment's resolvers, handlers and clock need.
pub struct Fulfillment {
    /// Fulfillment's own database.
    pub db: DatabaseConnection,
    /// Publishes committed outbox rows.
    pub relay: OutboxRelay,
    /// The carrier's name on every shipment.
    pub carrier: String,
    /// How long the simulated carrier takes for each step.
    pub step: Duration,
}

impl Fulfillment {
    /// Fulfillment over `db`, publishing through `relay`, with a carrier taking `step` per
    /// step.
    pub fn new(
        db: DatabaseConnection,
        relay: OutboxRelay,
        carrier: &str,
        step: Duration,
    ) -> Arc<Self> {
        Arc::new(Self { db, relay, carrier: carrier.to_string(), step })
    }
}
