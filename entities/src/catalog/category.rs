//! A category in the catalog's tree.

use sea_orm::entity::prelude::*;

/// One category; `parent_id` is `None` at the top of the tree.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "categories")]
pub struct Model {
    /// Category id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Parent category, if any.
    pub parent_id: Option<Uuid>,
    /// URL-safe unique name.
    #[sea_orm(unique)]
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Order among siblings.
    pub position: i32,
}

/// Categories hold products.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The products directly in this category.
    #[sea_orm(has_many = "super::product::Entity")]
    Product,
}

impl Related<super::product::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Product.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
