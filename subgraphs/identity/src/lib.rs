//! The identity subgraph: customer accounts, credentials, sessions and roles.
//!
//! Sign-up stores an Argon2id hash of a password that meets the policy; sign-in (rate-limited
//! per e-mail and per client address) returns a short-lived JWT access token and a rotating
//! refresh token stored only as a hash. `Customer @key(fields: "id")` is resolved through a
//! DataLoader, and the token signing key's public half is served as JWKS at
//! `/.well-known/jwks.json` so that other services verify tokens without sharing a secret.

pub mod accounts;
pub mod customers;
pub mod demo;
pub mod domain;
pub mod internal;
pub mod password;
pub mod rate_limit;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use kernel::auth::{KeyPair, TokenIssuer};
use kernel::config::Settings;
use kernel::events::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;

use crate::rate_limit::RateLimiter;
pub use schema::{IdentitySchema, build_schema};

/// Sign-in attempt limits.
pub struct SignInLimits {
    /// Per normalised e-mail address.
    pub per_email: RateLimiter,
    /// Per client network address.
    pub per_address: RateLimiter,
}

/// Everything identity's resolvers need, shared by all requests.
pub struct Identity {
    /// Identity's own database.
    pub db: DatabaseConnection,
    /// Signs access tokens.
    pub issuer: TokenIssuer,
    /// Refresh token lifetime.
    pub refresh_ttl: chrono::Duration,
    /// Sign-in attempt limits.
    pub limits: SignInLimits,
    /// Publishes committed outbox rows.
    pub relay: OutboxRelay,
}

impl Identity {
    /// Identity over `db`, signing with `keys` under `settings`.
    pub fn new(
        db: DatabaseConnection,
        keys: KeyPair,
        settings: &Settings,
        relay: OutboxRelay,
    ) -> Arc<Self> {
        let id = &settings.identity;
        let window = Duration::from_secs(id.sign_in_window_secs);
        Arc::new(Self {
            db,
            issuer: TokenIssuer::new(keys, &settings.auth),
            refresh_ttl: chrono::Duration::seconds(settings.auth.refresh_token_ttl_secs as i64),
            limits: SignInLimits {
                per_email: RateLimiter::new(id.sign_in_attempts_per_email, window),
                per_address: RateLimiter::new(id.sign_in_attempts_per_address, window),
            },
            relay,
        })
    }
}

/// Identity's extra routes: the JWKS document of its signing key.
pub fn jwks_routes(keys: &KeyPair) -> Router {
    let jwks = keys.jwks();
    Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    )
}
