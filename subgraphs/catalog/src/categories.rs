//! Categories: the tree products are listed in.

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, Object, Result};
use entities::catalog::category;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::loaders::{CategoryLoader, ChildrenLoader, ChildrenOf};
use kernel::error::loader_error;

/// A category of products; categories nest.
pub struct Category(pub category::Model);

#[Object]
impl Category {
    /// Category id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// URL-safe unique name, for storefront routes.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The enclosing category; `null` at the top level.
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<Category>> {
        let Some(parent) = self.0.parent_id else { return Ok(None) };
        let loader = ctx.data_unchecked::<DataLoader<CategoryLoader>>();
        Ok(loader.load_one(parent).await.map_err(loader_error)?.map(Category))
    }

    /// Sub-categories, in display order.
    async fn children(&self, ctx: &Context<'_>) -> Result<Vec<Category>> {
        let loader = ctx.data_unchecked::<DataLoader<ChildrenLoader>>();
        let children = loader.load_one(ChildrenOf(self.0.id)).await.map_err(loader_error)?;
        Ok(children.unwrap_or_default().into_iter().map(Category).collect())
    }
}

/// The top-level categories, in display order.
pub async fn roots(db: &sea_orm::DatabaseConnection) -> kernel::AppResult<Vec<category::Model>> {
    Ok(category::Entity::find()
        .filter(category::Column::ParentId.is_null())
        .order_by_asc(category::Column::Position)
        .order_by_asc(category::Column::Name)
        .all(db)
        .await?)
}

/// Every category, for computing subtrees and facets (the tree is small).
pub async fn all(db: &sea_orm::DatabaseConnection) -> kernel::AppResult<Vec<category::Model>> {
    Ok(category::Entity::find()
        .order_by_asc(category::Column::Position)
        .order_by_asc(category::Column::Name)
        .all(db)
        .await?)
}

/// The ids of `root` and every category below it.
pub fn subtree(all: &[category::Model], root: Uuid) -> Vec<Uuid> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(all.iter().filter(|c| c.parent_id == Some(parent)).map(|c| c.id));
        i += 1;
    }
    out
}

/// The chain from `id` up to its root (itself first).
pub fn ancestors(all: &[category::Model], id: Uuid) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut current = Some(id);
    while let Some(cid) = current {
        if out.contains(&cid) {
            break; // a cycle would be a data error; never loop on it
        }
        out.push(cid);
        current = all.iter().find(|c| c.id == cid).and_then(|c| c.parent_id);
    }
    out
}
