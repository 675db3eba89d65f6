//! A customer account.

use sea_orm::entity::prelude::*;

/// One account. `email` is stored normalised (trimmed, lower-case) and unique.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "customers")]
pub struct Model {
    /// Customer id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Normalised e-mail address.
    #[sea_orm(unique)]
    pub email: String,
    /// Display name.
    pub name: String,
    /// Argon2id PHC string; never the password.
    pub password_hash: String,
    /// Comma-separated role names (`CUSTOMER`, `ADMIN`).
    pub roles: String,
    /// Signed up.
    pub created_at: DateTimeUtc,
    /// Last changed.
    pub updated_at: DateTimeUtc,
}

/// A customer has refresh tokens.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Their refresh tokens.
    #[sea_orm(has_many = "super::refresh_token::Entity")]
    RefreshToken,
}

impl Related<super::refresh_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshToken.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
