//! A product for sale.

use sea_orm::entity::prelude::*;

/// One product. The price is stored as integer minor units plus a currency code, so that
/// comparisons and sums in SQL are exact on every backend.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    /// Product id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Stock-keeping unit, unique.
    #[sea_orm(unique)]
    pub sku: String,
    /// URL-safe unique name.
    #[sea_orm(unique)]
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Long description (plain text).
    pub description: String,
    /// Price in minor units (cents).
    pub price_minor: i64,
    /// ISO 4217 currency of the price.
    pub currency: String,
    /// The category it is listed under.
    pub category_id: Uuid,
    /// Images: a JSON array of `{url, alt}`.
    pub images: Json,
    /// Attributes: a JSON array of `{name, value}`.
    pub attributes: Json,
    /// Number of reviews.
    pub rating_count: i32,
    /// Sum of review ratings; the average is `rating_sum / rating_count`.
    pub rating_sum: i64,
    /// On sale; `false` once taken off sale (kept for the orders and carts that name it).
    pub active: bool,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Last changed.
    pub updated_at: DateTimeUtc,
}

/// A product belongs to a category and has reviews.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Its category.
    #[sea_orm(
        belongs_to = "super::category::Entity",
        from = "Column::CategoryId",
        to = "super::category::Column::Id"
    )]
    Category,
    /// Its reviews.
    #[sea_orm(has_many = "super::review::Entity")]
    Review,
}

impl Related<super::category::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Category.def()
    }
}

impl Related<super::review::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Review.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
