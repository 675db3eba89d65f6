//! A cart.

use sea_orm::entity::prelude::*;

/// A guest's cart (no customer; reached by its unguessable id) or a customer's (at most one).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "carts")]
pub struct Model {
    /// Cart id (random).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The owner; `None` for a guest cart.
    #[sea_orm(unique)]
    pub customer_id: Option<Uuid>,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Last change: the cart expires after the configured idle time.
    pub updated_at: DateTimeUtc,
    /// How many lines (products) it holds.
    pub line_count: i32,
}

/// No relations declared (lines are read by cart id).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
