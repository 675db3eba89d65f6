//! Admin changes to the catalog: create and update products, change a price. Every change is
//! written with its event in one transaction (`product.created`, `product.updated`,
//! `product.price_changed`), and a duplicate SKU or slug is a `CONFLICT`, never a 500.

use async_graphql::{ID, InputObject};
use chrono::Utc;
use entities::catalog::{category, product};
use kernel::events::EventEnvelope;
use kernel::money::MoneyInput;
use kernel::{AppError, AppResult};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use crate::Catalog;
use crate::domain::{Attribute, Image, Sku, Slug, bounded_text, parse_attributes, parse_images};
use crate::products::Product;

/// An image as given by an admin.
#[derive(InputObject)]
pub struct ImageInput {
    /// Absolute http(s) URL.
    pub url: String,
    /// Alternative text.
    pub alt: Option<String>,
}

/// An attribute as given by an admin.
#[derive(InputObject)]
pub struct AttributeInput {
    /// Attribute name, unique within the product.
    pub name: String,
    /// Attribute value.
    pub value: String,
}

/// A new product.
#[derive(InputObject)]
pub struct CreateProductInput {
    /// Stock-keeping unit, unique (letters, digits, dashes).
    pub sku: String,
    /// URL name, unique; derived from the name when omitted.
    pub slug: Option<String>,
    /// Display name, 1–200 characters.
    pub name: String,
    /// Description, up to 10 000 characters.
    pub description: String,
    /// Price, in the catalog currency, not negative.
    pub price: MoneyInput,
    /// Slug of the category to list it under.
    pub category: String,
    /// Pictures.
    #[graphql(default)]
    pub images: Vec<ImageInput>,
    /// Properties.
    #[graphql(default)]
    pub attributes: Vec<AttributeInput>,
}

/// Changes to a product; omitted fields stay as they are. Prices change through
/// `changeProductPrice`, so that every price change is an event of its own.
#[derive(InputObject)]
pub struct UpdateProductInput {
    /// New URL name.
    pub slug: Option<String>,
    /// New display name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Slug of the new category.
    pub category: Option<String>,
    /// New pictures (replace the old ones).
    pub images: Option<Vec<ImageInput>>,
    /// New properties (replace the old ones).
    pub attributes: Option<Vec<AttributeInput>>,
    /// Put on sale (`true`) or take off sale (`false`): a product off sale leaves listings and
    /// search and cannot be added to carts or ordered.
    pub active: Option<bool>,
}

fn images(input: Vec<ImageInput>) -> AppResult<Vec<Image>> {
    parse_images(input.into_iter().map(|i| (i.url, i.alt)).collect())
}

fn attributes(input: Vec<AttributeInput>) -> AppResult<Vec<Attribute>> {
    parse_attributes(input.into_iter().map(|a| (a.name, a.value)).collect())
}

fn to_json<T: serde::Serialize>(value: &T) -> AppResult<serde_json::Value> {
    serde_json::to_value(value).map_err(AppError::internal)
}

async fn category_by_slug(catalog: &Catalog, slug: &str) -> AppResult<category::Model> {
    category::Entity::find()
        .filter(category::Column::Slug.eq(slug.trim()))
        .one(&catalog.db)
        .await?
        .ok_or_else(|| AppError::bad_input(format!("no category with slug `{}`", slug.trim())))
}

fn duplicate(err: DbErr) -> AppError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            AppError::Conflict("another product already has this SKU or slug".into())
        }
        _ => err.into(),
    }
}

async fn commit_with_event(
    catalog: &Catalog,
    txn: DatabaseTransaction,
    event: EventEnvelope,
) -> AppResult<()> {
    catalog.relay.commit(txn, vec![event]).await?;
    Ok(())
}

/// Creates a product.
#[tracing::instrument(skip_all, fields(sku = %input.sku))]
pub async fn create_product(
    catalog: &Catalog,
    input: CreateProductInput,
) -> AppResult<product::Model> {
    let sku = Sku::parse(&input.sku)?;
    let name = bounded_text("name", &input.name, 1, 200)?;
    let slug = match &input.slug {
        Some(s) => Slug::parse(s)?,
        None => Slug::from_name(&name)?,
    };
    let description = bounded_text("description", &input.description, 0, 10_000)?;
    let price = input.price.parse_non_negative()?;
    if price.currency() != catalog.currency {
        return Err(AppError::bad_input(format!("catalog prices are in {}", catalog.currency)));
    }
    let images = to_json(&images(input.images)?)?;
    let attributes = to_json(&attributes(input.attributes)?)?;
    let category = category_by_slug(catalog, &input.category).await?;

    let now = Utc::now();
    let row = product::ActiveModel {
        id: Set(kernel::id::new_id()),
        sku: Set(sku.as_str().to_string()),
        slug: Set(slug.as_str().to_string()),
        name: Set(name),
        description: Set(description),
        price_minor: Set(price.minor_units()?),
        currency: Set(price.currency().code().to_string()),
        category_id: Set(category.id),
        images: Set(images),
        attributes: Set(attributes),
        rating_count: Set(0),
        rating_sum: Set(0),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let txn = catalog.db.begin().await?;
    let created = row.insert(&txn).await.map_err(duplicate)?;
    let event = EventEnvelope::new(
        "product.created",
        1,
        created.id,
        serde_json::json!({
            "productId": created.id, "sku": created.sku, "slug": created.slug,
            "name": created.name, "price": price_json(&created)?,
        }),
    );
    commit_with_event(catalog, txn, event).await?;
    tracing::info!(product_id = %created.id, sku = %created.sku, "product created");
    Ok(created)
}

/// Updates a product's descriptive fields.
#[tracing::instrument(skip_all, fields(product_id = %id.as_str()))]
pub async fn update_product(
    catalog: &Catalog,
    id: &ID,
    input: UpdateProductInput,
) -> AppResult<product::Model> {
    let id = kernel::id::parse_id("id", id)?;
    let slug = input.slug.as_deref().map(Slug::parse).transpose()?;
    let name = input.name.as_deref().map(|n| bounded_text("name", n, 1, 200)).transpose()?;
    let description = input
        .description
        .as_deref()
        .map(|d| bounded_text("description", d, 0, 10_000))
        .transpose()?;
    let images = input.images.map(images).transpose()?.map(|i| to_json(&i)).transpose()?;
    let attributes =
        input.attributes.map(attributes).transpose()?.map(|a| to_json(&a)).transpose()?;
    let category = match &input.category {
        Some(slug) => Some(category_by_slug(catalog, slug).await?),
        None => None,
    };

    let existing = find(catalog, id).await?;
    let mut row = existing.into_active_model();
    let mut changed = Vec::new();
    if let Some(slug) = slug {
        row.slug = Set(slug.as_str().to_string());
        changed.push("slug");
    }
    if let Some(name) = name {
        row.name = Set(name);
        changed.push("name");
    }
    if let Some(description) = description {
        row.description = Set(description);
        changed.push("description");
    }
    if let Some(category) = category {
        row.category_id = Set(category.id);
        changed.push("category");
    }
    if let Some(images) = images {
        row.images = Set(images);
        changed.push("images");
    }
    if let Some(attributes) = attributes {
        row.attributes = Set(attributes);
        changed.push("attributes");
    }
    if let Some(active) = input.active {
        row.active = Set(active);
        changed.push("active");
    }
    if changed.is_empty() {
        return Err(AppError::bad_input("nothing to update"));
    }
    row.updated_at = Set(Utc::now());
    let txn = catalog.db.begin().await?;
    let updated = row.update(&txn).await.map_err(duplicate)?;
    let event = EventEnvelope::new(
        "product.updated",
        1,
        id,
        serde_json::json!({ "productId": id, "changed": changed }),
    );
    commit_with_event(catalog, txn, event).await?;
    tracing::info!(product_id = %id, ?changed, "product updated");
    Ok(updated)
}

/// Changes a product's price and emits `product.price_changed` with the old and new price.
#[tracing::instrument(skip_all, fields(product_id = %id.as_str()))]
pub async fn change_price(
    catalog: &Catalog,
    id: &ID,
    price: MoneyInput,
) -> AppResult<product::Model> {
    let id = kernel::id::parse_id("id", id)?;
    let price = price.parse_non_negative()?;
    if price.currency() != catalog.currency {
        return Err(AppError::bad_input(format!("catalog prices are in {}", catalog.currency)));
    }
    let existing = find(catalog, id).await?;
    let old_price = price_json(&existing)?;
    let mut row = existing.into_active_model();
    row.price_minor = Set(price.minor_units()?);
    row.updated_at = Set(Utc::now());
    let txn = catalog.db.begin().await?;
    let updated = row.update(&txn).await?;
    let event = EventEnvelope::new(
        "product.price_changed",
        1,
        id,
        serde_json::json!({ "productId": id, "oldPrice": old_price, "newPrice": price_json(&updated)? }),
    );
    commit_with_event(catalog, txn, event).await?;
    tracing::info!(product_id = %id, price = %price, "product price changed");
    Ok(updated)
}

async fn find(catalog: &Catalog, id: Uuid) -> AppResult<product::Model> {
    product::Entity::find_by_id(id)
        .one(&catalog.db)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no product with id {id}")))
}

fn price_json(row: &product::Model) -> AppResult<serde_json::Value> {
    Ok(Product::price_of(row)?.to_json())
}
