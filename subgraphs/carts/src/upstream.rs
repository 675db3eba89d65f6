//! Anti-corruption clients: the catalog's answers (the kernel's [`CatalogClient`]: name, price
//! as exact money, whether it is on sale) and the inventory's (how many units can be had).
//! Caching, retries and the circuit breaker are the kernel's.

use std::collections::HashMap;

use kernel::http_client::{CallError, ClientOptions, Endpoint, ServiceClient};
use kernel::id::id_list;
use uuid::Uuid;

pub use kernel::catalog_api::{CatalogClient, ProductFacts};

#[derive(serde::Deserialize)]
struct StockAnswer {
    stock: Vec<StockRow>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StockRow {
    product_id: Uuid,
    available: i64,
}

/// The inventory, as carts see it.
pub struct InventoryClient(ServiceClient);

impl InventoryClient {
    /// A client of the inventory at `endpoint`.
    pub fn new(endpoint: impl Into<Endpoint>) -> Self {
        Self(ServiceClient::new("inventory", endpoint, ClientOptions::default()))
    }

    /// Units available of `ids`.
    pub async fn available(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, i64>, CallError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let answer: StockAnswer =
            self.0.get_json(&format!("/internal/stock?ids={}", id_list(ids))).await?;
        Ok(answer.stock.into_iter().map(|s| (s.product_id, s.available)).collect())
    }
}
