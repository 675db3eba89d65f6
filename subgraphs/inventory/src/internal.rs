//! The inventory's answers for other contexts, outside the public graph:
//! `GET /internal/stock?ids=<id>,<id>…` gives the units available of each product. Stock moves
//! with every order, so answers are `Cache-Control: no-store`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Inventory;
use crate::stock;

/// Most products one call may ask for.
pub const MAX_IDS: usize = 200;

#[derive(serde::Deserialize)]
struct Ids {
    ids: String,
}

/// The internal routes.
pub fn routes(inventory: Arc<Inventory>) -> Router {
    Router::new().route("/internal/stock", get(levels)).with_state(inventory)
}

async fn levels(State(inventory): State<Arc<Inventory>>, Query(query): Query<Ids>) -> Response {
    let ids = match kernel::id::parse_id_list(&query.ids, MAX_IDS) {
        Some(ids) => ids,
        None => {
            let message = format!("`ids` takes 1 to {MAX_IDS} product ids, separated by commas");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    match stock::levels(&inventory.db, &ids).await {
        Ok(levels) => {
            let stock: Vec<serde_json::Value> = levels
                .iter()
                .map(|l| serde_json::json!({ "productId": l.product_id, "available": l.available() }))
                .collect();
            let body = serde_json::json!({ "stock": stock });
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
        }
        Err(error) => {
            tracing::error!(?error, "reading stock for another context failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
