//! The catalog's GraphQL schema: root types and how they are assembled.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, EmptySubscription, ID, Object, Result, Schema};
use entities::catalog::{category, product};
use kernel::AppError;
use kernel::auth::authentication;
use kernel::money::MoneyInput;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::Catalog;
use crate::admin::{self, CreateProductInput, UpdateProductInput};
use crate::categories::{self, Category};
use crate::listing::{self, ListingQuery, ProductConnection, ProductFilter, ProductSort};
use crate::loaders::{CategoryLoader, ChildrenLoader, ProductLoader};
use crate::products::Product;
use crate::reviews::{self, AddReviewInput, Review};
use kernel::error::loader_error;

/// The catalog subgraph's schema.
pub type CatalogSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over a catalog.
pub fn build_schema(catalog: Arc<Catalog>) -> CatalogSchema {
    let db = catalog.db.clone();
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .data(DataLoader::new(ProductLoader(db.clone()), tokio::spawn))
        .data(DataLoader::new(CategoryLoader(db.clone()), tokio::spawn))
        .data(DataLoader::new(ChildrenLoader(db), tokio::spawn))
        .data(catalog)
        .limit_depth(16)
        .finish()
}

fn catalog<'a>(ctx: &Context<'a>) -> &'a Arc<Catalog> {
    ctx.data_unchecked::<Arc<Catalog>>()
}

/// Catalog queries.
pub struct Query;

#[Object]
impl Query {
    /// One product, by `id` or by `slug` (give exactly one); `null` when there is none.
    async fn product(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> Result<Option<Product>> {
        match (id, slug) {
            (Some(id), None) => {
                // A malformed id names no product, like an unknown one.
                let Ok(id) = uuid::Uuid::parse_str(id.trim()) else { return Ok(None) };
                let loader = ctx.data_unchecked::<DataLoader<ProductLoader>>();
                Ok(loader.load_one(id).await.map_err(loader_error)?.map(Product))
            }
            (None, Some(slug)) => {
                let row = product::Entity::find()
                    .filter(product::Column::Slug.eq(slug.trim()))
                    .one(&catalog(ctx).db)
                    .await
                    .map_err(AppError::from)?;
                Ok(row.map(Product))
            }
            _ => Err(AppError::bad_input("give exactly one of `id` and `slug`").into()),
        }
    }

    /// Products: full-text `search` on name and description, `filter`, `sort`, and Relay
    /// paging (`first` at most 100), with the total count and facet counts.
    async fn products(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        filter: Option<ProductFilter>,
        sort: Option<ProductSort>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ProductConnection> {
        let catalog = catalog(ctx);
        let query =
            ListingQuery::parse(catalog, search.as_deref(), filter.unwrap_or_default(), sort)
                .await?;
        Ok(listing::list(catalog, query, first, after.as_deref()).await?)
    }

    /// The top-level categories, in display order; walk `children` for the tree.
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<Category>> {
        Ok(categories::roots(&catalog(ctx).db).await?.into_iter().map(Category).collect())
    }

    /// One category by slug; `null` when there is none.
    async fn category(&self, ctx: &Context<'_>, slug: String) -> Result<Option<Category>> {
        let row = category::Entity::find()
            .filter(category::Column::Slug.eq(slug.trim()))
            .one(&catalog(ctx).db)
            .await
            .map_err(AppError::from)?;
        Ok(row.map(Category))
    }

    /// Resolves `Product` references from other subgraphs, batched through the loader.
    #[graphql(entity)]
    async fn find_product_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        let Ok(id) = uuid::Uuid::parse_str(id.trim()) else { return Ok(None) };
        let loader = ctx.data_unchecked::<DataLoader<ProductLoader>>();
        Ok(loader.load_one(id).await.map_err(loader_error)?.map(Product))
    }
}

/// Catalog changes.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Adds a product (administrators only). Emits `product.created`.
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: CreateProductInput,
    ) -> Result<Product> {
        authentication(ctx).require_admin()?;
        Ok(Product(admin::create_product(catalog(ctx), input).await?))
    }

    /// Changes a product's descriptive fields (administrators only). Emits `product.updated`.
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateProductInput,
    ) -> Result<Product> {
        authentication(ctx).require_admin()?;
        Ok(Product(admin::update_product(catalog(ctx), &id, input).await?))
    }

    /// Changes a product's price (administrators only). Emits `product.price_changed`.
    async fn change_product_price(
        &self,
        ctx: &Context<'_>,
        id: ID,
        price: MoneyInput,
    ) -> Result<Product> {
        authentication(ctx).require_admin()?;
        Ok(Product(admin::change_price(catalog(ctx), &id, price).await?))
    }

    /// Reviews a product as the signed-in customer (one review per product). Emits
    /// `review.added`.
    async fn add_review(&self, ctx: &Context<'_>, input: AddReviewInput) -> Result<Review> {
        let caller = authentication(ctx).require()?;
        Ok(Review(reviews::add_review(catalog(ctx), caller, input).await?))
    }
}
