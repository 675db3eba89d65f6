//! An e-mail to a customer.

use sea_orm::entity::prelude::*;

/// One e-mail: written when its event arrives, sent (and retried) by the sender. At most one
/// of each kind per order.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "mails")]
pub struct Model {
    /// Mail id (UUID v7; also the message's `Message-ID`, so a resent copy is recognisable).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `ORDER_CONFIRMATION` or `SHIPPING`.
    pub kind: String,
    /// The order it is about.
    pub order_id: Uuid,
    /// The customer it goes to; `None` for a guest's order.
    pub customer_id: Option<Uuid>,
    /// The address it goes to: a guest's, given at checkout, from the start; a customer's,
    /// once the sender asked identity.
    pub to_address: Option<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text_body: String,
    /// HTML body.
    pub html_body: String,
    /// `PENDING`, `SENT` or `FAILED` (gave up, or nobody to send to).
    pub status: String,
    /// Sending attempts so far.
    pub attempts: i32,
    /// When the sender may try (again); while an attempt runs, when its claim lapses.
    pub next_attempt_at: DateTimeUtc,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was accepted by the mail server (or written to the mail folder).
    pub sent_at: Option<DateTimeUtc>,
    /// Written.
    pub created_at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
