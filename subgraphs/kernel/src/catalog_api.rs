//! The catalog's published answer for other contexts (`GET /internal/products?ids=…`, served
//! by the catalog), read into domain types once for every context that asks: carts price
//! lines with it, orders snapshots prices with it. Caching (the catalog answers `no-cache` with
//! an `ETag`, so an unchanged answer costs a 304), retries and the circuit breaker are the
//! [`ServiceClient`]'s.

use std::collections::HashMap;

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::http_client::{CallError, ClientOptions, Endpoint, ServiceClient};
use crate::id::id_list;
use crate::money::{Currency, Money};

/// What the catalog says about a product now.
#[derive(Debug, Clone)]
pub struct ProductFacts {
    /// Display name.
    pub name: String,
    /// Current price.
    pub price: Money,
    /// On sale.
    pub active: bool,
    /// The category's name (reports group sales by it).
    pub category: String,
}

#[derive(serde::Deserialize)]
struct ProductsAnswer {
    products: Vec<ProductRow>,
}

#[derive(serde::Deserialize)]
struct ProductRow {
    id: Uuid,
    name: String,
    price: PriceRow,
    active: bool,
    category: CategoryRow,
}

#[derive(serde::Deserialize)]
struct CategoryRow {
    name: String,
}

#[derive(serde::Deserialize)]
struct PriceRow {
    amount: Decimal,
    currency: String,
}

/// The catalog, as another context asks it.
pub struct CatalogClient(ServiceClient);

impl CatalogClient {
    /// A client of the catalog at `endpoint`.
    pub fn new(endpoint: impl Into<Endpoint>) -> Self {
        Self(ServiceClient::new("catalog", endpoint, ClientOptions::default()))
    }

    /// Facts about `ids`; products the catalog does not know are absent. A price the catalog
    /// gives that is not exact, non-negative money in a known currency is an unexpected answer.
    pub async fn products(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, ProductFacts>, CallError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let answer: ProductsAnswer =
            self.0.get_json(&format!("/internal/products?ids={}", id_list(ids))).await?;
        let mut out = HashMap::with_capacity(answer.products.len());
        for row in answer.products {
            let price = Currency::parse(&row.price.currency)
                .and_then(|currency| Money::non_negative(row.price.amount, currency))
                .map_err(|e| CallError::Unexpected("catalog".into(), e.to_string()))?;
            let facts = ProductFacts {
                name: row.name,
                price,
                active: row.active,
                category: row.category.name,
            };
            out.insert(row.id, facts);
        }
        Ok(out)
    }
}
