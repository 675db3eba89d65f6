//! A customer's review of a product.

use sea_orm::entity::prelude::*;

/// One review; a customer reviews a product at most once (unique index).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    /// Review id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The product reviewed.
    pub product_id: Uuid,
    /// The author (an identity customer id; a reference, not a foreign key).
    pub customer_id: Uuid,
    /// 1 to 5 stars.
    pub rating: i32,
    /// Headline.
    pub title: String,
    /// Text.
    pub body: String,
    /// Written.
    pub created_at: DateTimeUtc,
}

/// A review belongs to a product.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The product reviewed.
    #[sea_orm(
        belongs_to = "super::product::Entity",
        from = "Column::ProductId",
        to = "super::product::Column::Id"
    )]
    Product,
}

impl Related<super::product::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Product.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
