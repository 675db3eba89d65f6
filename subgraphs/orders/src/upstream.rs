//! Anti-corruption clients: the cart and the authoritative prices, as orders needs them.

use std::collections::HashMap;

use kernel::http_client::{CallError, ClientOptions, ServiceClient};
use kernel::money::{Currency, Money};
use rust_decimal::Decimal;
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
        match self.0.get_json::<Found>(&format!("/internal/customers/{customer}/cart")).await {
            Ok(found) => Ok(Some(found.id)),
            Err(CallError::Unexpected(_, status)) if status.starts_with("404") => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The cart `id`; `None` when it does not exist (or expired).
    pub async fn cart(&self, id: Uuid) -> Result<Option<CartContents>, CallError> {
        match self.0.get_json(&format!("/internal/carts/{id}")).await {
            Ok(cart) => Ok(Some(cart)),
            Err(CallError::Unexpected(_, status)) if status.starts_with("404") => Ok(None),
            Err(other) => Err(other),
        }
    }
}

/// What the catalog says a product costs now.
#[derive(Debug, Clone)]
pub struct Price {
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

/// The catalog context.
pub struct CatalogClient(ServiceClient);

impl CatalogClient {
    /// A client of the catalog at `base`.
    pub fn new(base: &str) -> Self {
        Self(ServiceClient::new("catalog", base, ClientOptions::default()))
    }

    /// Current prices of `ids` (revalidated with the catalog every time: it answers
    /// `no-cache`, and an unchanged answer costs a 304).
    pub async fn prices(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Price>, CallError> {
        let list = ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
        let answer: ProductsAnswer =
            self.0.get_json(&format!("/internal/products?ids={list}")).await?;
        let mut out = HashMap::new();
        for row in answer.products {
            let money = Currency::parse(&row.price.currency)
                .and_then(|c| Money::non_negative(row.price.amount, c))
                .map_err(|e| CallError::Unexpected("catalog".into(), e.to_string()))?;
            out.insert(row.id, Price { name: row.name, price: money, active: row.active });
        }
        Ok(out)
    }
}
