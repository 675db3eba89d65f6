//! The payments' GraphQL schema: cards (tokenised at once), and `Order.payment` through
//! federation.

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, ID, InputObject, Object, Result, Schema, SimpleObject,
};
use entities::payments::{payment, payment_method};
use kernel::AppError;
use kernel::auth::authentication;
use kernel::money::{Currency, Money, MoneyObject};
use uuid::Uuid;

use crate::Payments;
use crate::card::Card;
use crate::payments;

/// The payments subgraph's schema.
pub type PaymentsSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over payments.
pub fn build_schema(payments: Arc<Payments>) -> PaymentsSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .data(payments)
        .limit_depth(16)
        .finish()
}

fn state<'a>(ctx: &Context<'a>) -> &'a Arc<Payments> {
    ctx.data_unchecked::<Arc<Payments>>()
}

/// A card to pay with, as typed. The number and the code are checked and handed to the
/// processor; only the brand, the last four digits and the expiry are kept.
#[derive(InputObject)]
pub struct CardInput {
    /// The card number (spaces and dashes allowed).
    number: String,
    /// Expiry month, 1–12.
    exp_month: i32,
    /// Expiry year (two or four digits).
    exp_year: i32,
    /// The security code (three digits; four for American Express).
    cvc: String,
}

/// A stored card.
#[derive(SimpleObject)]
pub struct PaymentMethod {
    /// Pass it to checkout.
    id: ID,
    /// `VISA`, `MASTERCARD`, `AMEX`, `DISCOVER` or `OTHER`.
    brand: String,
    /// The last four digits.
    last4: String,
    /// Expiry month.
    exp_month: i32,
    /// Expiry year.
    exp_year: i32,
}

impl From<payment_method::Model> for PaymentMethod {
    fn from(row: payment_method::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            brand: row.brand,
            last4: row.last4,
            exp_month: row.exp_month,
            exp_year: row.exp_year,
        }
    }
}

/// An order's payment.
pub struct Payment(payment::Model);

#[Object]
impl Payment {
    /// Payment id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// `AUTHORIZED`, `CAPTURED`, `VOIDED`, `REFUNDED` or `DECLINED`.
    async fn status(&self) -> &str {
        &self.0.status
    }

    /// The amount.
    async fn amount(&self) -> Result<MoneyObject> {
        let currency = Currency::parse(&self.0.currency).map_err(AppError::from)?;
        Ok(Money::from_minor(self.0.amount_minor, currency).into())
    }

    /// Why the card was refused: `CARD_DECLINED`, `INSUFFICIENT_FUNDS`,
    /// `INVALID_PAYMENT_METHOD` or `PROCESSOR_UNAVAILABLE`.
    async fn decline_reason(&self) -> Option<&str> {
        self.0.decline_reason.as_deref()
    }

    /// The card charged.
    async fn card(&self, ctx: &Context<'_>) -> Result<Option<PaymentMethod>> {
        use sea_orm::EntityTrait;
        let row = payment_method::Entity::find_by_id(self.0.payment_method_id)
            .one(&state(ctx).db)
            .await
            .map_err(AppError::from)?;
        Ok(row.map(PaymentMethod::from))
    }
}

/// An order, as far as payment goes.
pub struct Order {
    id: Uuid,
}

#[Object]
impl Order {
    /// The order id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// The order's payment: its owner's and administrators' to see; `null` before checkout
    /// asked for one.
    async fn payment(&self, ctx: &Context<'_>) -> Result<Option<Payment>> {
        let Some(row) = payments::of_order(&state(ctx).db, self.id).await? else { return Ok(None) };
        let caller = authentication(ctx).caller()?;
        kernel::auth::may_see(row.customer_id, caller, "order")?;
        Ok(Some(Payment(row)))
    }
}

/// Payments queries.
pub struct Query;

#[Object]
impl Query {
    /// The signed-in customer's cards.
    async fn my_payment_methods(&self, ctx: &Context<'_>) -> Result<Vec<PaymentMethod>> {
        let caller = authentication(ctx).require()?;
        let rows = payments::cards_of(&state(ctx).db, caller.customer_id).await?;
        Ok(rows.into_iter().map(PaymentMethod::from).collect())
    }

    /// Resolves `Order` references from other subgraphs.
    #[graphql(entity)]
    async fn find_order_by_id(&self, id: ID) -> Option<Order> {
        Uuid::parse_str(id.trim()).ok().map(|id| Order { id })
    }
}

/// Payments changes.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Checks a card and keeps it as a payment method (of the signed-in customer, or of a
    /// guest when signed out). The number and code are never stored.
    async fn tokenize_card(&self, ctx: &Context<'_>, input: CardInput) -> Result<PaymentMethod> {
        let customer = authentication(ctx).caller()?.map(|c| c.customer_id);
        let today = chrono::Utc::now().date_naive();
        let card = Card::parse(&input.number, input.exp_month, input.exp_year, &input.cvc, today)?;
        Ok(payments::add_card(state(ctx), customer, card).await?.into())
    }
}
