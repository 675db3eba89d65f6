//! An order.

use sea_orm::entity::prelude::*;

/// An order: what was bought at which prices, where it goes, how it is paid, and where it
/// stands. Amounts are minor units of `currency`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    /// Order id (random: a guest reaches the order by it).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Human-readable number, such as `BS-7K3F9Q2M`.
    #[sea_orm(unique)]
    pub number: String,
    /// The customer; `None` for a guest.
    pub customer_id: Option<Uuid>,
    /// The cart it was placed from.
    pub cart_id: Uuid,
    /// `PENDING`, `PAYMENT_AUTHORIZED`, `CONFIRMED` or `CANCELLED`.
    pub status: String,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// ISO 4217 currency of every amount.
    pub currency: String,
    /// Sum of the lines.
    pub subtotal_minor: i64,
    /// Taken off by redeemed points.
    pub discount_minor: i64,
    /// Loyalty points redeemed for the discount.
    pub points_redeemed: i64,
    /// What the customer pays: the subtotal less the discount.
    pub total_minor: i64,
    /// Shipping address (JSON: name, line1, line2, city, postalCode, country).
    pub shipping_address: Json,
    /// Where a guest order's mails go (given at checkout); `None` for a customer's order,
    /// whose mails go to the account's address.
    pub email: Option<String>,
    /// The card to charge.
    pub payment_method_id: Uuid,
    /// The client's idempotency key (with the owner, unique).
    pub idempotency_key: String,
    /// Fingerprint of the request the key was first used with.
    pub request_hash: String,
    /// When payment was asked for (the saga's progress).
    pub payment_requested_at: Option<DateTimeUtc>,
    /// Placed.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
