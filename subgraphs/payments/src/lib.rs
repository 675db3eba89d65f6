//! The payments subgraph: cards kept as tokens, and the payment of each order.
//!
//! Card details are checked at the edge ([`card`]: Luhn, brand length, expiry, code length)
//! and handed to a simulated card processor ([`processor`]) that behaves like a real one:
//! tokens, documented test cards that approve, decline, lack funds or fail transiently, and
//! idempotency keys. Only the brand, the last four digits and the expiry are stored; the
//! number and the code never reach a database or a log.
//!
//! Payments take part in the checkout by events ([`events`]): authorise when orders asks,
//! capture when the order is confirmed, void or refund when it is cancelled. `Order.payment`
//! extends the orders' `Order` through federation.

pub mod card;
pub mod events;
pub mod payments;
pub mod processor;
pub mod schema;

use std::sync::Arc;

use kernel::events::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;

pub use schema::{PaymentsSchema, build_schema};

/// Everything the payments' resolvers and handlers need.
pub struct Payments {
    /// The payments' own database.
    pub db: DatabaseConnection,
    /// Publishes committed outbox rows.
    pub relay: OutboxRelay,
    /// The (simulated) card processor.
    pub processor: processor::Processor,
}

impl Payments {
    /// Payments over `db`, publishing through `relay`.
    pub fn new(db: DatabaseConnection, relay: OutboxRelay) -> Arc<Self> {
        Arc::new(Self { db, relay, processor: processor::Processor::default() })
    }
}
