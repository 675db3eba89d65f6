//! Anti-corruption clients: the cart, the authoritative prices and the customer's points, as
//! orders needs them.

use kernel::http_client::{CallError, ClientOptions, Endpoint, ServiceClient};
use kernel::money::{Currency, Money};
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
    /// A client of the carts at `endpoint`.
    pub fn new(endpoint: impl Into<Endpoint>) -> Self {
        Self(ServiceClient::new("carts", endpoint, ClientOptions::default()))
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

/// The rewards context: points spent on an order being placed.
pub struct RewardsClient(ServiceClient);

impl RewardsClient {
    /// A client of rewards at `endpoint`.
    pub fn new(endpoint: impl Into<Endpoint>) -> Self {
        Self(ServiceClient::new("rewards", endpoint, ClientOptions::default()))
    }

    /// Spends `points` of `customer` on `order` (worth `subtotal`): the discount they buy.
    /// The same order asking again gets the same answer; a refusal is
    /// [`CallError::Refused`] with words for the customer.
    pub async fn redeem(
        &self,
        order: Uuid,
        customer: Uuid,
        points: i64,
        subtotal: &Money,
    ) -> Result<Money, CallError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            discount: Amount,
        }
        #[derive(serde::Deserialize)]
        struct Amount {
            amount: rust_decimal::Decimal,
            currency: String,
        }
        let ask = serde_json::json!({
            "customerId": customer, "points": points, "subtotal": subtotal.to_json(),
        });
        let answer: Answer =
            self.0.put_json(&format!("/internal/redemptions/{order}"), &ask).await?;
        Currency::parse(&answer.discount.currency)
            .and_then(|c| Money::non_negative(answer.discount.amount, c))
            .map_err(|e| CallError::Unexpected("rewards".into(), e.to_string()))
    }

    /// Gives back what `order` redeemed (it could not be stored).
    pub async fn give_back(&self, order: Uuid) -> Result<(), CallError> {
        self.0.delete(&format!("/internal/redemptions/{order}")).await
    }
}
