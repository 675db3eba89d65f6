//! The orders subgraph: the Order aggregate and the checkout.
//!
//! [`domain`] holds the aggregate's rules (statuses and their only transitions, addresses,
//! order numbers, idempotency). [`checkout`] places an order from a cart at the catalog's
//! current prices, read through anti-corruption clients ([`upstream`]: cached with `ETag`,
//! retried, behind a circuit breaker), stores it with its price snapshot and timeline, and
//! starts the [`saga`]: reserve stock → authorise payment → `CONFIRMED`, compensating every
//! failure. The same idempotency key returns the same order and never charges twice. Orders
//! are their owner's and administrators'; `Customer.orders` extends identity's customer.

pub mod checkout;
pub mod domain;
pub mod feed;
pub mod saga;
pub mod schema;
pub mod upstream;

use std::sync::Arc;

use kernel::AppResult;
use kernel::events::outbox::OutboxRelay;
use kernel::http_client::Endpoint;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

pub use schema::{OrdersSchema, build_schema};

/// Where the contexts orders asks live.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Carts.
    pub carts: Endpoint,
    /// The catalog.
    pub catalog: Endpoint,
    /// Rewards.
    pub rewards: Endpoint,
}

/// Everything the orders' resolvers and handlers need.
pub struct Orders {
    /// The orders' own database.
    pub db: DatabaseConnection,
    /// Publishes committed outbox rows.
    pub relay: OutboxRelay,
    /// Carts, read at checkout.
    pub carts: upstream::CartsClient,
    /// Authoritative prices.
    pub catalog: upstream::CatalogClient,
    /// Points redeemed at checkout.
    pub rewards: upstream::RewardsClient,
    /// Committed status changes, live.
    pub feed: Arc<feed::StatusFeed>,
}

impl Orders {
    /// Orders over `db`, reading carts, prices and points where `upstream` says; `relay` hands
    /// status changes to `feed`.
    pub fn new(
        db: DatabaseConnection,
        relay: OutboxRelay,
        upstream: &Upstream,
        feed: Arc<feed::StatusFeed>,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            relay,
            feed,
            carts: upstream::CartsClient::new(upstream.carts.clone()),
            catalog: upstream::CatalogClient::new(upstream.catalog.clone()),
            rewards: upstream::RewardsClient::new(upstream.rewards.clone()),
        })
    }

    /// The signed-in customer's own cart id, if they have one.
    pub async fn own_cart(&self, customer: Uuid) -> AppResult<Option<Uuid>> {
        self.carts
            .customer_cart(customer)
            .await
            .map_err(|e| kernel::AppError::internal(anyhow::anyhow!("{e}")))
    }
}
