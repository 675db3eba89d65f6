//! Anti-corruption clients: the cart and the authoritative prices, as orders needs them.

use kernel::http_client::{CallError, ClientOptions, ServiceClient};
use uuid::Uuid;

/// A cart, as checkout reads it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartContents {
    /// The cart.
    pub id: Uuid,
    /// Its owner; `None` for a guest cart.
    pub customer_id: Option<Uuid>,
    /// Its lines.
    pub lines: Vec<CartLine>,
}

/// A cart line.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartLine {
    /// The product.
    pub product_id: Uuid,
    /// Units.
    pub quantity: i32,
}

/// The carts context.
pub struct CartsClient(ServiceClient);

impl CartsClient {
    /// A client of the carts at `base`.
    pub fn new(base: &str) -> Self {
        Self(ServiceClient::new("carts", base, ClientOptions::default()))
    }

    /// The customer's own cart id, if they have one.
    pub async fn customer_cart(&self, customer: Uuid) -> Result<Option<Uuid>, CallError> {
        #[derive(serde::Deserialize)]
        struct Found {
            id: Uuid,
        }
        let found: Option<Found> =
            self.0.find_json(&format!("/internal/customers/{customer}/cart")).await?;
        Ok(found.map(|f| f.id))
    }

    /// The cart `id`; `None` when it does not exist (or expired).
    pub async fn cart(&self, id: Uuid) -> Result<Option<CartContents>, CallError> {
        self.0.find_json(&format!("/internal/carts/{id}")).await
    }
}

pub use kernel::catalog_api::{CatalogClient, ProductFacts};
