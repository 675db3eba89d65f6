//! The rewards subgraph: loyalty points.
//!
//! A confirmed order earns points at a configurable rate per currency unit of what the
//! customer paid ([`policy`]); they wait (`pending`) until the order is delivered, when they
//! become spendable, and are lost if the order is cancelled first. Spendable points expire
//! after a configurable time, the oldest first ([`ledger::expire_due`]). At checkout orders
//! redeems points for a discount ([`internal`]: held while the order is placed, applied when
//! it is, given back if it is cancelled or never placed).
//!
//! Every movement is a ledger entry ([`ledger`]), at most one of each kind per order, so an
//! event handled twice moves nothing twice; the account's balances are the ledger's sums, kept
//! beside it so that spending is one conditional update, and the database refuses any
//! balance below zero. `Customer.rewards` (so `me { rewards { balance transactions } }`)
//! extends identity's customer through federation.

pub mod events;
pub mod internal;
pub mod ledger;
pub mod policy;
pub mod schema;

use std::sync::Arc;

use kernel::events::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;

pub use policy::Policy;
pub use schema::{RewardsSchema, build_schema};

/// Everything the rewards' resolvers, handlers and sweeps need.
pub struct Rewards {
    /// The rewards' own database.
    pub db: DatabaseConnection,
    /// Publishes committed outbox rows (the consumer's machinery expects one).
    pub relay: OutboxRelay,
    /// Earning, redeeming and expiry rules.
    pub policy: Policy,
}

impl Rewards {
    /// Rewards over `db` under `policy`.
    pub fn new(db: DatabaseConnection, relay: OutboxRelay, policy: Policy) -> Arc<Self> {
        Arc::new(Self { db, relay, policy })
    }
}
