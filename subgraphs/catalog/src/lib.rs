//! The catalog subgraph: what the store sells and what customers say about it.
//!
//! It owns categories (a tree), products (price, images, attributes, category) and reviews,
//! and serves them as a Federation v2 subgraph: `Product @key(fields: "id")` resolved through
//! a DataLoader, ranked full-text search with facets, and admin mutations whose events leave
//! through the outbox.
//!
//! Modules follow the domain: [`domain`] parses input into values that cannot be invalid,
//! [`products`], [`categories`] and [`reviews`] are the GraphQL types, [`listing`] and
//! [`search`] answer `products(...)`, [`admin`] changes the catalog, [`internal`] answers other
//! contexts (names, prices, on sale) over plain HTTP, [`loaders`] batch entity
//! look-ups, and [`demo`] generates the deterministic demo catalog.

pub mod admin;
pub mod categories;
pub mod demo;
pub mod domain;
pub mod internal;
pub mod listing;
pub mod loaders;
pub mod products;
pub mod reviews;
pub mod schema;
pub mod search;

use std::sync::Arc;

use kernel::events::outbox::OutboxRelay;
use kernel::money::Currency;
use sea_orm::DatabaseConnection;

pub use schema::{CatalogSchema, build_schema};

/// Everything the catalog's resolvers need, shared by all requests.
#[derive(Clone)]
pub struct Catalog {
    /// The catalog's own database.
    pub db: DatabaseConnection,
    /// The currency every price is in.
    pub currency: Currency,
    /// Publishes committed outbox rows.
    pub relay: OutboxRelay,
}

impl Catalog {
    /// A catalog over `db`, publishing through `relay`.
    pub fn new(db: DatabaseConnection, currency: Currency, relay: OutboxRelay) -> Arc<Self> {
        Arc::new(Self { db, currency, relay })
    }
}
