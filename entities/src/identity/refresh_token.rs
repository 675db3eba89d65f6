//! A refresh token, stored only as a hash.

use sea_orm::entity::prelude::*;

/// One refresh token. Tokens rotate: using one marks it used and issues the next in the same
/// family; presenting a used token again revokes the whole family (it was stolen or replayed).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    /// Token id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The account it signs in.
    pub customer_id: Uuid,
    /// All tokens descended from one sign-in share a family.
    pub family_id: Uuid,
    /// SHA-256 of the token, hex; the token itself is never stored.
    #[sea_orm(unique)]
    pub token_hash: String,
    /// Issued.
    pub created_at: DateTimeUtc,
    /// Expires.
    pub expires_at: DateTimeUtc,
    /// Set when exchanged for a new token.
    pub used_at: Option<DateTimeUtc>,
    /// Set when signed out or revoked for reuse.
    pub revoked_at: Option<DateTimeUtc>,
}

/// A refresh token belongs to a customer.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Its account.
    #[sea_orm(
        belongs_to = "super::customer::Entity",
        from = "Column::CustomerId",
        to = "super::customer::Column::Id"
    )]
    Customer,
}

impl Related<super::customer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Customer.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
