//! The carts' answers for other contexts, outside the public graph: `GET /internal/carts/{id}`
//! gives a cart's owner and lines (what checkout needs); `GET /internal/customers/{id}/cart`
//! the id of a customer's live cart. Carts change with every click, so
//! answers are `Cache-Control: no-store`; an unknown or expired cart is a 404.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use uuid::Uuid;

use crate::Carts;
use crate::carts;

/// The internal routes.
pub fn routes(carts: Arc<Carts>) -> Router {
    Router::new()
        .route("/internal/carts/{id}", get(cart))
        .route("/internal/customers/{id}/cart", get(customer_cart))
        .with_state(carts)
}

async fn cart(State(state): State<Arc<Carts>>, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(id.trim()) else {
        return (StatusCode::BAD_REQUEST, "not a cart id").into_response();
    };
    match carts::contents(&state, id).await {
        Ok(Some((cart, lines))) => {
            let lines: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| serde_json::json!({ "productId": l.product_id, "quantity": l.quantity }))
                .collect();
            let body = serde_json::json!({ "id": cart.id, "customerId": cart.customer_id, "lines": lines });
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::error!(?error, "reading a cart for another context failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn customer_cart(State(state): State<Arc<Carts>>, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(id.trim()) else {
        return (StatusCode::BAD_REQUEST, "not a customer id").into_response();
    };
    match carts::live_cart_of(&state, id).await {
        Ok(Some(cart)) => {
            let body = serde_json::json!({ "id": cart });
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::error!(?error, "finding a customer's cart failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
