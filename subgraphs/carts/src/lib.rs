//! The carts subgraph: what a shopper means to buy.
//!
//! A guest's cart is reached by its unguessable id; a signed-in customer has one cart, into
//! which a guest cart merges on sign-in (quantities summed, within the limits). A cart idle
//! for longer than the configured time expires. Lines name catalog products; the cart shows
//! each line's current price, the subtotal and each line's problem (off sale, out of stock,
//! fewer units than asked), read through anti-corruption clients of the catalog and the
//! inventory ([`upstream`]). The checkout reads the cart ([`internal`]) and the prices itself,
//! authoritatively; once the order is placed, the cart is emptied ([`events`]).

pub mod carts;
pub mod events;
pub mod internal;
pub mod schema;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

pub use schema::{CartsSchema, build_schema};

/// Most units of one product in a cart.
pub const MAX_QUANTITY: i32 = 99;
/// Most distinct products in a cart.
pub const MAX_LINES: usize = 50;

/// Everything the carts' resolvers need.
pub struct Carts {
    /// The carts' own database.
    pub db: DatabaseConnection,
    /// Names, prices and sale status from the catalog.
    pub catalog: upstream::CatalogClient,
    /// Availability from the inventory.
    pub inventory: upstream::InventoryClient,
    /// A cart untouched this long expires.
    pub idle_expiry: Duration,
    /// The store's currency (an empty cart's subtotal is zero in it).
    pub currency: kernel::money::Currency,
}

impl Carts {
    /// Carts over `db`, asking the catalog and the inventory where their endpoints say.
    pub fn new(
        db: DatabaseConnection,
        catalog: impl Into<kernel::http_client::Endpoint>,
        inventory: impl Into<kernel::http_client::Endpoint>,
        idle_expiry: Duration,
        currency: kernel::money::Currency,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            catalog: upstream::CatalogClient::new(catalog),
            inventory: upstream::InventoryClient::new(inventory),
            idle_expiry,
            currency,
        })
    }
}
