//! Units of one product held for one order.

use sea_orm::entity::prelude::*;

/// A reservation: `HELD` (expires unless the order is confirmed), `CONFIRMED` (held until the
/// order ships), `COMMITTED` (shipped: taken off the shelf), `RELEASED` (given back).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    /// Reservation id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The order (one reservation per order and product).
    pub order_id: Uuid,
    /// The product.
    pub product_id: Uuid,
    /// Units held.
    pub quantity: i64,
    /// `HELD`, `CONFIRMED`, `COMMITTED` or `RELEASED`.
    pub status: String,
    /// When a `HELD` reservation lapses.
    pub expires_at: DateTimeUtc,
    /// Why it was released, when it was.
    pub release_reason: Option<String>,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
