//! One line of the points ledger.

use sea_orm::entity::prelude::*;

/// One movement of points: earned on an order (pending, then available on delivery), lost
/// when the order is cancelled, redeemed at checkout (and restored if that order is
/// cancelled), or expired. At most one of each kind per order.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "reward_entries")]
pub struct Model {
    /// Entry id (UUID v7: creation order).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The order it is about (`None` for an expiry).
    pub order_id: Option<Uuid>,
    /// `EARNED_PENDING`, `EARNED`, `REVERSED`, `REDEEMED`, `RESTORED` or `EXPIRED`.
    pub kind: String,
    /// Points moved: positive in, negative out.
    pub points: i64,
    /// For points that became spendable (`EARNED`, `RESTORED`): how many are still unspent.
    /// Spending takes from the oldest first; what is left when they expire, expires.
    pub remaining: i64,
    /// When spendable points expire.
    pub expires_at: Option<DateTimeUtc>,
    /// For a redemption: `HELD` (the order is being placed), `APPLIED` (it was) or
    /// `RESTORED` (given back).
    pub status: Option<String>,
    /// When.
    pub created_at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
