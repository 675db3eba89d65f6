//! The inventory subgraph: how many units of each product the store has, and which of them
//! are held for orders.
//!
//! Stock is `on_hand` and `reserved`; what can be sold is the difference. Reservations are
//! taken by conditional updates (`reserved + n` only where `on_hand - reserved >= n`), so no
//! amount of concurrency oversells, and a database check constraint stands behind them. The
//! context takes part in the checkout by events ([`events`]): an order placed is reserved
//! (`stock.reserved`) or refused (`stock.reservation_failed`); a cancelled one is released
//! (`stock.released`); a confirmed one is kept until it ships, when the units leave the shelf;
//! a reservation never confirmed lapses ([`stock::expire_held`]).
//!
//! It extends the catalog's `Product` with `stock` and `inStock` through federation, and
//! answers other contexts' stock questions over plain HTTP ([`internal`]).

pub mod demo;
pub mod events;
pub mod internal;
pub mod schema;
pub mod stock;

use std::sync::Arc;
use std::time::Duration;

use kernel::events::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;

pub use schema::{InventorySchema, build_schema};

/// Everything the inventory's resolvers and handlers need.
#[derive(Clone)]
pub struct Inventory {
    /// The inventory's own database.
    pub db: DatabaseConnection,
    /// Publishes committed outbox rows.
    pub relay: OutboxRelay,
    /// How long a reservation holds before its order is confirmed.
    pub reservation_ttl: Duration,
}

impl Inventory {
    /// An inventory over `db`, publishing through `relay`.
    pub fn new(db: DatabaseConnection, relay: OutboxRelay, reservation_ttl: Duration) -> Arc<Self> {
        Arc::new(Self { db, relay, reservation_ttl })
    }
}
