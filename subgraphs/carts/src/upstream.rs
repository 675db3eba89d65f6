//! Anti-corruption clients: the catalog's and the inventory's answers, translated into what a
//! cart needs to know of a product (its name, its price as exact money, whether it is on sale,
//! how many units can be had). Caching, retries and the circuit breaker are the kernel's.

use std::collections::HashMap;

use kernel::http_client::{CallError, ClientOptions, ServiceClient};
use kernel::money::{Currency, Money};
use rust_decimal::Decimal;
use uuid::Uuid;

/// What the catalog says about a product.
#[derive(Debug, Clone)]
pub struct ProductFacts {
    /// Display name.
    pub name: String,
    /// Current price.
    pub price: Money,
    /// On sale.
    pub active: bool,
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
}

#[derive(serde::Deserialize)]
struct PriceRow {
    amount: Decimal,
    currency: String,
}

fn query(ids: &[Uuid]) -> String {
    ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",")
}

/// The catalog, as carts see it.
pub struct CatalogClient(ServiceClient);

impl CatalogClient {
    /// A client of the catalog at `base`.
    pub fn new(base: &str) -> Self {
        Self(ServiceClient::new("catalog", base, ClientOptions::default()))
    }

    /// Facts about `ids` (products the catalog does not know are absent).
    pub async fn products(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, ProductFacts>, CallError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let answer: ProductsAnswer =
            self.0.get_json(&format!("/internal/products?ids={}", query(ids))).await?;
        let mut out = HashMap::new();
        for row in answer.products {
            let currency = Currency::parse(&row.price.currency)
                .map_err(|e| CallError::Unexpected("catalog".into(), e.to_string()))?;
            let price = Money::non_negative(row.price.amount, currency)
                .map_err(|e| CallError::Unexpected("catalog".into(), e.to_string()))?;
            out.insert(row.id, ProductFacts { name: row.name, price, active: row.active });
        }
        Ok(out)
    }
}

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
    /// A client of the inventory at `base`.
    pub fn new(base: &str) -> Self {
        Self(ServiceClient::new("inventory", base, ClientOptions::default()))
    }

    /// Units available of `ids`.
    pub async fn available(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, i64>, CallError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let answer: StockAnswer =
            self.0.get_json(&format!("/internal/stock?ids={}", query(ids))).await?;
        Ok(answer.stock.into_iter().map(|s| (s.product_id, s.available)).collect())
    }
}
