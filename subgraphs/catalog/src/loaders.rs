//! DataLoaders: batch the look-ups that a list of results makes one by one, so a page of 100
//! products referenced from another subgraph costs one query, not 100.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entities::catalog::{category, product};
use kernel::AppError;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

/// Loads products by id.
pub struct ProductLoader(pub DatabaseConnection);

impl Loader<Uuid> for ProductLoader {
    type Value = product::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = product::Entity::find()
            .filter(product::Column::Id.is_in(keys.iter().copied()))
            .all(&self.0)
            .await
            .map_err(|e| Arc::new(AppError::from(e)))?;
        Ok(rows.into_iter().map(|p| (p.id, p)).collect())
    }
}

/// Loads categories by id.
pub struct CategoryLoader(pub DatabaseConnection);

impl Loader<Uuid> for CategoryLoader {
    type Value = category::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = category::Entity::find()
            .filter(category::Column::Id.is_in(keys.iter().copied()))
            .all(&self.0)
            .await
            .map_err(|e| Arc::new(AppError::from(e)))?;
        Ok(rows.into_iter().map(|c| (c.id, c)).collect())
    }
}

/// The key of [`ChildrenLoader`]: a parent category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildrenOf(pub Uuid);

/// Loads the children of categories, in display order.
pub struct ChildrenLoader(pub DatabaseConnection);

impl Loader<ChildrenOf> for ChildrenLoader {
    type Value = Vec<category::Model>;
    type Error = Arc<AppError>;

    async fn load(
        &self,
        keys: &[ChildrenOf],
    ) -> Result<HashMap<ChildrenOf, Self::Value>, Self::Error> {
        let rows = category::Entity::find()
            .filter(category::Column::ParentId.is_in(keys.iter().map(|k| k.0)))
            .order_by_asc(category::Column::Position)
            .order_by_asc(category::Column::Name)
            .all(&self.0)
            .await
            .map_err(|e| Arc::new(AppError::from(e)))?;
        let mut out: HashMap<ChildrenOf, Vec<category::Model>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            if let Some(parent) = row.parent_id {
                out.entry(ChildrenOf(parent)).or_default().push(row);
            }
        }
        Ok(out)
    }
}
