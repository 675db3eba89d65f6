//! The `Product` type: the federated entity the rest of the graph refers to by id.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entities::catalog::product;
use kernel::AppError;
use kernel::money::{Currency, Money, MoneyObject};
use rust_decimal::Decimal;

use crate::categories::Category;
use crate::domain::{Attribute, Image};
use crate::loaders::CategoryLoader;
use crate::reviews::{self, Review, ReviewConnectionFields};
use kernel::error::loader_error;

/// A product for sale.
pub struct Product(pub product::Model);

impl Product {
    /// The product's price as a domain value.
    pub fn price_of(row: &product::Model) -> Result<Money, AppError> {
        let currency = Currency::parse(&row.currency).map_err(|e| {
            AppError::internal(anyhow::anyhow!("product {} has a bad currency: {e}", row.id))
        })?;
        Ok(Money::from_minor(row.price_minor, currency))
    }
}

/// A picture of a product.
#[derive(SimpleObject)]
#[graphql(name = "ProductImage")]
pub struct ImageObject {
    /// Absolute URL.
    pub url: String,
    /// Alternative text.
    pub alt: String,
}

/// A named property of a product, such as colour or material.
#[derive(SimpleObject)]
#[graphql(name = "ProductAttribute")]
pub struct AttributeObject {
    /// Attribute name.
    pub name: String,
    /// Attribute value.
    pub value: String,
}

/// What reviewers think of a product overall.
#[derive(SimpleObject)]
pub struct RatingSummary {
    /// Mean of the review ratings, to two decimal places; `null` with no reviews.
    pub average: Option<Decimal>,
    /// Number of reviews.
    pub count: i32,
}

#[Object]
impl Product {
    /// Product id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Stock-keeping unit.
    async fn sku(&self) -> &str {
        &self.0.sku
    }

    /// URL-safe unique name, for storefront routes.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Long description (plain text).
    async fn description(&self) -> &str {
        &self.0.description
    }

    /// Current price.
    async fn price(&self) -> Result<MoneyObject> {
        Ok(Product::price_of(&self.0)?.into())
    }

    /// On sale. A product taken off sale stays readable (orders and carts name it) but leaves
    /// listings and search and cannot be bought.
    async fn active(&self) -> bool {
        self.0.active
    }

    /// Pictures, the first being the main one.
    async fn images(&self) -> Result<Vec<ImageObject>> {
        let images: Vec<Image> = decode(&self.0.images, self.0.id)?;
        Ok(images.into_iter().map(|i| ImageObject { url: i.url, alt: i.alt }).collect())
    }

    /// Named properties.
    async fn attributes(&self) -> Result<Vec<AttributeObject>> {
        let attributes: Vec<Attribute> = decode(&self.0.attributes, self.0.id)?;
        Ok(attributes
            .into_iter()
            .map(|a| AttributeObject { name: a.name, value: a.value })
            .collect())
    }

    /// The category it is listed under.
    async fn category(&self, ctx: &Context<'_>) -> Result<Category> {
        let loader = ctx.data_unchecked::<DataLoader<CategoryLoader>>();
        let category = loader.load_one(self.0.category_id).await.map_err(loader_error)?;
        category.map(Category).ok_or_else(|| {
            AppError::internal(anyhow::anyhow!("product {} has no category", self.0.id)).into()
        })
    }

    /// Average rating and review count.
    async fn rating(&self) -> RatingSummary {
        rating_summary(self.0.rating_sum, self.0.rating_count)
    }

    /// Reviews, newest first.
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Review, ReviewConnectionFields, EmptyFields>> {
        let catalog = ctx.data_unchecked::<std::sync::Arc<crate::Catalog>>();
        Ok(reviews::page_for_product(&catalog.db, &self.0, first, after.as_deref()).await?)
    }

    /// When it was added.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// The rating summary of a sum and count of ratings.
pub fn rating_summary(sum: i64, count: i32) -> RatingSummary {
    let average = (count > 0).then(|| {
        let mut average = (Decimal::from(sum) / Decimal::from(count))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        average.rescale(2);
        average
    });
    RatingSummary { average, count }
}

fn decode<T: serde::de::DeserializeOwned>(value: &serde_json::Value, id: uuid::Uuid) -> Result<T> {
    serde_json::from_value(value.clone()).map_err(|e| {
        AppError::internal(anyhow::Error::new(e).context(format!("product {id} has bad JSON")))
            .into()
    })
}
