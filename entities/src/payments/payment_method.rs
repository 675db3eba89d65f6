//! A card a customer (or a guest) can pay with, kept as a token.

use sea_orm::entity::prelude::*;

/// What the store keeps of a card: the processor's token, the brand, the last four digits and
/// the expiry. Never the number, never the security code.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_methods")]
pub struct Model {
    /// Payment method id (random, unguessable: a guest pays with it).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The customer who added it; `None` for a guest.
    pub customer_id: Option<Uuid>,
    /// The processor's token for the card.
    pub processor_token: String,
    /// `VISA`, `MASTERCARD`, `AMEX`, `DISCOVER` or `OTHER`.
    pub brand: String,
    /// The last four digits.
    pub last4: String,
    /// Expiry month (1–12).
    pub exp_month: i32,
    /// Expiry year (four digits).
    pub exp_year: i32,
    /// Added.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
