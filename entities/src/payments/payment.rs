//! A payment for an order.

use sea_orm::entity::prelude::*;

/// One payment: authorised (money held on the card), captured (taken), voided (hold dropped),
/// refunded (given back) or declined. Amounts are minor units of `currency`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    /// Payment id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The order paid for (one payment per order).
    #[sea_orm(unique)]
    pub order_id: Uuid,
    /// The order's customer; `None` for a guest order.
    pub customer_id: Option<Uuid>,
    /// The card used.
    pub payment_method_id: Uuid,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// `AUTHORIZED`, `CAPTURED`, `VOIDED`, `REFUNDED` or `DECLINED`.
    pub status: String,
    /// Why it was declined.
    pub decline_reason: Option<String>,
    /// The idempotency key of the authorisation.
    #[sea_orm(unique)]
    pub authorization_key: String,
    /// The processor's reference for the authorisation.
    pub processor_reference: Option<String>,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
