//! The catalog's answers for other contexts (their anti-corruption clients), outside the
//! public graph: `GET /internal/products?ids=<id>,<id>…` gives each product's name, current
//! price, category and whether it is on sale. Answers carry an `ETag` and `Cache-Control: no-cache`: a
//! client may keep them but must revalidate, so prices read for a checkout are never stale, and
//! an unchanged answer costs a `304`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use entities::catalog::{category, product};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sha2::Digest;
use uuid::Uuid;

use crate::Catalog;
use crate::products::Product;

/// Most products one call may ask for.
pub const MAX_IDS: usize = 200;

#[derive(serde::Deserialize)]
struct Ids {
    ids: String,
}

/// One product as other contexts see it.
#[derive(serde::Serialize)]
struct ProductFacts {
    id: Uuid,
    name: String,
    price: serde_json::Value,
    active: bool,
    category: CategoryFacts,
}

/// A product's category, as other contexts see it (orders keep it with their price snapshot).
#[derive(serde::Serialize)]
struct CategoryFacts {
    id: Uuid,
    name: String,
}

/// The internal routes.
pub fn routes(catalog: Arc<Catalog>) -> Router {
    Router::new().route("/internal/products", get(products)).with_state(catalog)
}

async fn products(
    State(catalog): State<Arc<Catalog>>,
    headers: HeaderMap,
    Query(query): Query<Ids>,
) -> Response {
    let ids = match kernel::id::parse_id_list(&query.ids, MAX_IDS) {
        Some(ids) => ids,
        None => {
            let message = format!("`ids` takes 1 to {MAX_IDS} product ids, separated by commas");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let rows = match product::Entity::find()
        .filter(product::Column::Id.is_in(ids))
        .find_also_related(category::Entity)
        .all(&catalog.db)
        .await
    {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "reading products for another context failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut facts = Vec::with_capacity(rows.len());
    for (row, category) in rows {
        let (Ok(price), Some(category)) = (Product::price_of(&row), category) else { continue };
        facts.push(ProductFacts {
            id: row.id,
            name: row.name,
            price: price.to_json(),
            active: row.active,
            category: CategoryFacts { id: category.id, name: category.name },
        });
    }
    facts.sort_by_key(|f| f.id);
    let body = match serde_json::to_vec(&serde_json::json!({ "products": facts })) {
        Ok(body) => body,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let digest = sha2::Sha256::digest(&body);
    let etag =
        format!("\"{}\"", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>());
    let cache = [(header::ETAG, etag.clone()), (header::CACHE_CONTROL, "no-cache".to_string())];
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let mut response = (cache, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}
