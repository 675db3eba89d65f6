//! The inventory's GraphQL schema: `Product.stock` and `Product.inStock` for everyone, stock
//! levels and counts for administrators.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, EmptySubscription, ID, Object, Result, Schema, SimpleObject};
use kernel::AppError;
use kernel::auth::authentication;
use kernel::error::loader_error;
use uuid::Uuid;

use crate::Inventory;
use crate::stock::{self, Level};

/// The inventory subgraph's schema.
pub type InventorySchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over an inventory.
pub fn build_schema(inventory: Arc<Inventory>) -> InventorySchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .data(DataLoader::new(LevelLoader(inventory.clone()), tokio::spawn))
        .data(inventory)
        .limit_depth(16)
        .finish()
}

fn inventory<'a>(ctx: &Context<'a>) -> &'a Arc<Inventory> {
    ctx.data_unchecked::<Arc<Inventory>>()
}

/// Batches stock look-ups: a page of products costs one query.
pub struct LevelLoader(Arc<Inventory>);

impl Loader<Uuid> for LevelLoader {
    type Value = Level;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Level>, Self::Error> {
        let levels = stock::levels(&self.0.db, keys).await.map_err(Arc::new)?;
        Ok(levels.into_iter().map(|l| (l.product_id, l)).collect())
    }
}

fn product_id(id: &ID) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.trim()).map_err(|_| AppError::bad_input("`productId` is not a product id"))
}

/// A catalog product, as far as stock goes.
pub struct Product {
    id: Uuid,
}

#[Object]
impl Product {
    /// The product id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// Units that can be ordered now.
    async fn stock(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(int(level(ctx, self.id).await?.available()))
    }

    /// Whether at least one unit can be ordered now.
    async fn in_stock(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(level(ctx, self.id).await?.available() > 0)
    }
}

async fn level(ctx: &Context<'_>, id: Uuid) -> Result<Level> {
    let loader = ctx.data_unchecked::<DataLoader<LevelLoader>>();
    Ok(loader.load_one(id).await.map_err(loader_error)?.unwrap_or(Level::none(id)))
}

/// A product's stock in detail (administrators).
#[derive(SimpleObject)]
pub struct StockLevel {
    /// The product.
    product_id: ID,
    /// Units in the warehouse.
    on_hand: i32,
    /// Units held for orders not yet shipped.
    reserved: i32,
    /// Units that can still be ordered.
    available: i32,
}

/// Stock counts are bounded by `MAX_ON_HAND`, well inside GraphQL's 32-bit `Int`.
fn int(units: i64) -> i32 {
    i32::try_from(units).unwrap_or(i32::MAX)
}

impl From<Level> for StockLevel {
    fn from(level: Level) -> Self {
        Self {
            product_id: ID(level.product_id.to_string()),
            on_hand: int(level.on_hand),
            reserved: int(level.reserved),
            available: int(level.available()),
        }
    }
}

/// Inventory queries.
pub struct Query;

#[Object]
impl Query {
    /// A product's stock in detail (administrators only).
    async fn stock_level(&self, ctx: &Context<'_>, product_id: ID) -> Result<StockLevel> {
        authentication(ctx).require_admin()?;
        let id = product_id_or_error(&product_id)?;
        Ok(level(ctx, id).await?.into())
    }

    /// Resolves `Product` references from other subgraphs.
    #[graphql(entity)]
    async fn find_product_by_id(&self, id: ID) -> Option<Product> {
        Uuid::parse_str(id.trim()).ok().map(|id| Product { id })
    }
}

fn product_id_or_error(id: &ID) -> Result<Uuid> {
    Ok(product_id(id)?)
}

/// Inventory changes.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Sets the units on hand of a product after a count (administrators only). Refused
    /// (`CONFLICT`) below the units reserved for orders.
    async fn set_stock(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        on_hand: i32,
    ) -> Result<StockLevel> {
        authentication(ctx).require_admin()?;
        let id = product_id_or_error(&product_id)?;
        Ok(stock::set_on_hand(inventory(ctx), id, i64::from(on_hand)).await?.into())
    }
}
