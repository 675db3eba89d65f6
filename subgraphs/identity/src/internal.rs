//! Identity's answers for other contexts, outside the public graph: `GET
//! /internal/customers/{id}` gives a customer's contact details (e-mail address and name) to
//! a context that must write to them (notifications). Events never carry contact details, so
//! an address changed later is the one used, and a deleted account gets no more mail.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use entities::identity::customer;
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::Identity;

/// A customer's contact details.
#[derive(serde::Serialize)]
struct Contact {
    id: Uuid,
    email: String,
    name: String,
}

/// The internal routes.
pub fn routes(identity: Arc<Identity>) -> Router {
    Router::new().route("/internal/customers/{id}", get(contact)).with_state(identity)
}

async fn contact(State(identity): State<Arc<Identity>>, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(id.trim()) else {
        return (StatusCode::BAD_REQUEST, "not a customer id").into_response();
    };
    match customer::Entity::find_by_id(id).one(&identity.db).await {
        Ok(Some(row)) => {
            axum::Json(Contact { id: row.id, email: row.email, name: row.name }).into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::error!(%error, "reading a customer's contact details failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
