//! Rewards' answers for orders at checkout, outside the public graph:
//!
//! - `PUT /internal/redemptions/{orderId}` with `{ "customerId", "points", "subtotal": {
//!   "amount", "currency" } }` spends the points on the order being placed and answers `{
//!   "points", "discount": { "amount", "currency" } }`; the same order asking again gets the
//!   same answer. A refusal (too many points, an inexact or whole-order discount) is a `422`
//!   whose text is meant for the customer.
//! - `DELETE /internal/redemptions/{orderId}` gives the points back (the order could not be
//!   stored). Unanswered, the redemption is given back after the policy's hold anyway.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use kernel::AppError;
use kernel::money::Money;
use sea_orm::TransactionTrait;
use uuid::Uuid;

use crate::{Rewards, ledger};

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ask {
    customer_id: Uuid,
    points: i64,
    subtotal: Amount,
}

#[derive(serde::Deserialize)]
struct Amount {
    amount: rust_decimal::Decimal,
    currency: String,
}

/// The internal routes.
pub fn routes(rewards: Arc<Rewards>) -> Router {
    Router::new()
        .route("/internal/redemptions/{order}", put(redeem).delete(give_back))
        .with_state(rewards)
}

fn order_id(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text.trim()).ok()
}

fn not_an_order() -> Response {
    (StatusCode::BAD_REQUEST, "not an order id").into_response()
}

fn answer(error: AppError) -> Response {
    match error {
        AppError::BadUserInput(why) | AppError::Conflict(why) => {
            (StatusCode::UNPROCESSABLE_ENTITY, why).into_response()
        }
        other => {
            tracing::error!(error = ?other, "a redemption failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn redeem(
    State(rewards): State<Arc<Rewards>>,
    Path(order): Path<String>,
    Json(ask): Json<Ask>,
) -> Response {
    let Some(order) = order_id(&order) else { return not_an_order() };
    let subtotal = match ledger::currency(&ask.subtotal.currency)
        .and_then(|c| Ok(Money::non_negative(ask.subtotal.amount, c)?))
    {
        Ok(subtotal) => subtotal,
        Err(error) => return answer(error),
    };
    match ledger::redeem(&rewards, ask.customer_id, order, ask.points, &subtotal).await {
        Ok(done) => Json(serde_json::json!({
            "points": done.points, "discount": done.discount.to_json(),
        }))
        .into_response(),
        Err(error) => answer(error),
    }
}

async fn give_back(State(rewards): State<Arc<Rewards>>, Path(order): Path<String>) -> Response {
    let Some(order) = order_id(&order) else { return not_an_order() };
    let done = async {
        let txn = rewards.db.begin().await?;
        ledger::restore(&rewards, &txn, order).await?;
        txn.commit().await?;
        Ok::<(), AppError>(())
    };
    match done.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => answer(error),
    }
}
