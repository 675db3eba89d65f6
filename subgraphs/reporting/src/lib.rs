//! The reporting subgraph: what the store sold, for its administrators.
//!
//! A read model (CQRS) in its own database, built only from events ([`projection`]): order
//! and shipment events become one row per order (day placed, totals, status) and one row per
//! product sold. Every event is also kept as received, so the model can be thrown away and
//! rebuilt from that history ([`projection::rebuild`]), and a new report can be added later
//! over all the past. [`report`] answers sales per day and per category, top products, the
//! average order value and order counts per status over a date range.

pub mod events;
pub mod projection;
pub mod report;
pub mod schema;

use std::sync::Arc;

use kernel::events::outbox::OutboxRelay;
use kernel::money::Currency;
use sea_orm::DatabaseConnection;

pub use schema::{ReportingSchema, build_schema};

/// Everything reporting's resolvers and handler need.
pub struct Reporting {
    /// Reporting's own database.
    pub db: DatabaseConnection,
    /// Publishes committed outbox rows (the consumer's machinery expects one).
    pub relay: OutboxRelay,
    /// The store's currency (the one reports total in).
    pub currency: Currency,
}

impl Reporting {
    /// Reporting over `db`, totalling in `currency`.
    pub fn new(db: DatabaseConnection, relay: OutboxRelay, currency: Currency) -> Arc<Self> {
        Arc::new(Self { db, relay, currency })
    }
}
