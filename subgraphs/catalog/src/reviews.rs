//! Reviews: one per customer per product, 1–5 stars, with the product's average rating and
//! count updated in the same transaction so they never disagree with the reviews.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entities::catalog::{product, review};
use kernel::auth::Caller;
use kernel::connection::{PageRequest, has_next_page};
use kernel::events::EventEnvelope;
use kernel::{AppError, AppResult};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};

use crate::Catalog;
use crate::domain::{Stars, bounded_text};
use crate::loaders::ProductLoader;
use crate::products::Product;
use kernel::error::loader_error;

/// A customer's review of a product.
pub struct Review(pub review::Model);

/// A reference to a customer, who lives in the identity subgraph.
#[derive(SimpleObject)]
#[graphql(name = "Customer", unresolvable = "id")]
pub struct CustomerRef {
    /// Customer id.
    pub id: ID,
}

/// Counts that come with a page of reviews.
#[derive(SimpleObject)]
pub struct ReviewConnectionFields {
    /// Number of reviews in all pages.
    pub total_count: i64,
}

#[Object]
impl Review {
    /// Review id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// 1 to 5 stars.
    async fn rating(&self) -> i32 {
        self.0.rating
    }

    /// Headline.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// Text.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// When it was written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Who wrote it.
    async fn author(&self) -> CustomerRef {
        CustomerRef { id: ID(self.0.customer_id.to_string()) }
    }

    /// The product reviewed.
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        let loader = ctx.data_unchecked::<DataLoader<ProductLoader>>();
        Ok(loader.load_one(self.0.product_id).await.map_err(loader_error)?.map(Product))
    }
}

/// A page of a product's reviews, newest first.
pub async fn page_for_product(
    db: &DatabaseConnection,
    product: &product::Model,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<Connection<String, Review, ReviewConnectionFields, EmptyFields>> {
    let page = PageRequest::parse(first, after)?;
    let rows = review::Entity::find()
        .filter(review::Column::ProductId.eq(product.id))
        .order_by_desc(review::Column::CreatedAt)
        .order_by_desc(review::Column::Id)
        .offset(page.offset)
        .limit(page.limit)
        .all(db)
        .await?;
    let total = u64::try_from(product.rating_count).unwrap_or(0);
    let mut connection = Connection::with_additional_fields(
        page.offset > 0,
        has_next_page(&page, rows.len(), total),
        ReviewConnectionFields { total_count: total as i64 },
    );
    connection
        .edges
        .extend(rows.into_iter().enumerate().map(|(i, r)| Edge::new(page.cursor_at(i), Review(r))));
    Ok(connection)
}

/// A new review.
#[derive(InputObject)]
pub struct AddReviewInput {
    /// The product reviewed.
    pub product_id: ID,
    /// 1 to 5 stars.
    pub rating: i32,
    /// Headline, 1–120 characters.
    pub title: String,
    /// Text, 1–5000 characters.
    pub body: String,
}

/// Adds the caller's review of a product, keeping its rating summary consistent.
#[tracing::instrument(skip_all, fields(customer_id = %caller.customer_id, product_id = %input.product_id.as_str()))]
pub async fn add_review(
    catalog: &Catalog,
    caller: &Caller,
    input: AddReviewInput,
) -> AppResult<review::Model> {
    let stars = Stars::parse(input.rating)?;
    let title = bounded_text("title", &input.title, 1, 120)?;
    let body = bounded_text("body", &input.body, 1, 5000)?;
    let product_id = kernel::id::parse_id("productId", &input.product_id)?;

    let product = product::Entity::find_by_id(product_id).one(&catalog.db).await?;
    if product.is_none() {
        return Err(AppError::NotFound(format!("no product with id {product_id}")));
    }
    let already = review::Entity::find()
        .filter(review::Column::ProductId.eq(product_id))
        .filter(review::Column::CustomerId.eq(caller.customer_id))
        .one(&catalog.db)
        .await?;
    if already.is_some() {
        return Err(conflict());
    }

    let row = review::Model {
        id: kernel::id::new_id(),
        product_id,
        customer_id: caller.customer_id,
        rating: stars.get(),
        title,
        body,
        created_at: Utc::now(),
    };
    let txn = catalog.db.begin().await?;
    // The insert comes first so that, on SQLite, the transaction takes the write lock at once.
    let inserted = review::ActiveModel {
        id: Set(row.id),
        product_id: Set(row.product_id),
        customer_id: Set(row.customer_id),
        rating: Set(row.rating),
        title: Set(row.title.clone()),
        body: Set(row.body.clone()),
        created_at: Set(row.created_at),
    }
    .insert(&txn)
    .await;
    if let Err(err) = inserted {
        // A concurrent second review from the same customer loses here, on the unique index.
        return Err(match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => conflict(),
            _ => err.into(),
        });
    }
    product::Entity::update_many()
        .col_expr(product::Column::RatingCount, Expr::col(product::Column::RatingCount).add(1))
        .col_expr(
            product::Column::RatingSum,
            Expr::col(product::Column::RatingSum).add(i64::from(stars.get())),
        )
        .filter(product::Column::Id.eq(product_id))
        .exec(&txn)
        .await?;
    let event = EventEnvelope::new(
        "review.added",
        1,
        product_id,
        serde_json::json!({
            "reviewId": row.id, "productId": product_id,
            "customerId": caller.customer_id, "rating": row.rating,
        }),
    );
    catalog.relay.commit(txn, vec![event]).await?;
    tracing::info!(review_id = %row.id, product_id = %product_id, "review added");
    Ok(row)
}

fn conflict() -> AppError {
    AppError::Conflict("you have already reviewed this product".into())
}

/// Shared access to the catalog from a resolver.
pub fn catalog<'a>(ctx: &Context<'a>) -> &'a Arc<Catalog> {
    ctx.data_unchecked::<Arc<Catalog>>()
}
