//! One bounded context's server, assembled from an open database: migrations applied, state
//! built, the outbox relay ready, and the HTTP router. The platform and the tests both start
//! services through these functions, so tests run exactly what production runs.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use kernel::auth::{KeyPair, TokenVerifier};
use kernel::config::Settings;
use kernel::events::bus::EventBus;
use kernel::events::outbox::OutboxRelay;
use kernel::money::Currency;
use kernel::server::{EndpointOptions, subgraph_router};
use migrations::MigratorTrait;
use sea_orm::DatabaseConnection;

/// A service ready to serve: its router and its outbox relay.
pub struct Assembled {
    /// The HTTP application.
    pub router: Router,
    /// The relay to run beside it.
    pub relay: OutboxRelay,
}

fn endpoint_options(
    settings: &Settings,
    verifier: Arc<TokenVerifier>,
    db: &DatabaseConnection,
) -> EndpointOptions {
    EndpointOptions {
        verifier,
        databases: vec![db.clone()],
        trust_forwarded_for: settings.server.trust_forwarded_for,
        body_limit_bytes: settings.server.body_limit_bytes,
    }
}

/// The catalog service over `db` (migrated here).
pub async fn catalog(
    settings: &Settings,
    db: DatabaseConnection,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<(Assembled, Arc<catalog::Catalog>)> {
    migrations::catalog::Migrator::up(&db, None).await.context("migrating the catalog database")?;
    let currency = Currency::parse(&settings.catalog.currency).context("catalog.currency")?;
    let relay = OutboxRelay::new(db.clone(), bus);
    let state = catalog::Catalog::new(db.clone(), currency, relay.clone());
    let schema = catalog::build_schema(state.clone());
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db));
    Ok((Assembled { router, relay }, state))
}

/// The identity service over `db` (migrated here), signing with `keys`.
pub async fn identity(
    settings: &Settings,
    db: DatabaseConnection,
    keys: KeyPair,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<(Assembled, Arc<identity::Identity>)> {
    migrations::identity::Migrator::up(&db, None)
        .await
        .context("migrating the identity database")?;
    let relay = OutboxRelay::new(db.clone(), bus);
    let state = identity::Identity::new(db.clone(), keys.clone(), settings, relay.clone());
    if let Some(admin) = &settings.identity.bootstrap_admin {
        identity::accounts::bootstrap_admin(&state, admin)
            .await
            .map_err(|e| anyhow::anyhow!("creating the first administrator: {e:?}"))?;
    }
    let schema = identity::build_schema(state.clone());
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db))
        .merge(identity::jwks_routes(&keys));
    Ok((Assembled { router, relay }, state))
}
