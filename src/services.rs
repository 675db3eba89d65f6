//! One bounded context's server, assembled from an open database: migrations applied, state
//! built, the outbox relay ready, and the HTTP router. The platform and the tests both start
//! services through these functions, so tests run exactly what production runs.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use kernel::auth::{KeyPair, TokenVerifier};
use kernel::config::Settings;
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use kernel::events::bus::EventBus;
use kernel::events::consumer::{Consumer, ConsumerOptions, EventHandler};
use kernel::events::outbox::OutboxRelay;
use kernel::http_client::Endpoint;
use kernel::money::Currency;
use kernel::server::{EndpointOptions, subgraph_router};
use migrations::MigratorTrait;
use sea_orm::DatabaseConnection;

/// Work a service runs beside its HTTP server until shutdown. Called before the relays
/// start, so a consumer joins its group before any event is relayed.
pub type Background =
    Box<dyn FnOnce(Shared<BoxFuture<'static, ()>>) -> BoxFuture<'static, ()> + Send>;

/// A service ready to serve: its router, its outbox relay, and its background work (event
/// consumers, sweeps).
pub struct Assembled {
    /// The HTTP application.
    pub router: Router,
    /// The relay to run beside it.
    pub relay: OutboxRelay,
    /// Consumers and sweeps.
    pub background: Vec<Background>,
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
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db))
        .merge(catalog::internal::routes(state.clone()));
    Ok((Assembled { router, relay, background: Vec::new() }, state))
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
        .merge(identity::jwks_routes(&keys))
        .merge(identity::internal::routes(state.clone()));
    Ok((Assembled { router, relay, background: Vec::new() }, state))
}

/// Work repeated every `period` until shutdown; a failed round is logged as `what` and the
/// next one comes as usual.
fn every<F>(period: Duration, what: &'static str, round: F) -> Background
where
    F: Fn() -> BoxFuture<'static, Result<u64, kernel::AppError>> + Send + 'static,
{
    Box::new(move |mut shutdown| {
        Box::pin(async move {
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(period) => {}
                }
                match round().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "{what}"),
                    Err(error) => tracing::error!(?error, "{what} failed"),
                }
            }
        })
    })
}

/// A consumer of `handler`'s group on `bus`, named after this process.
pub fn consumer(
    settings: &Settings,
    bus: Arc<dyn EventBus>,
    db: &DatabaseConnection,
    handler: Arc<dyn EventHandler>,
    relay: &OutboxRelay,
) -> Background {
    if !settings.events.consume {
        tracing::info!(
            group = handler.group(),
            "not consuming events here (events.consume = false)"
        );
        return Box::new(|_| Box::pin(async {}));
    }
    let consumer = Consumer {
        bus,
        db: db.clone(),
        name: format!("{}-{}", handler.group(), kernel::id::new_id().simple()),
        handler,
        options: ConsumerOptions {
            max_attempts: settings.events.max_attempts,
            lanes: settings.events.lanes,
            linger: Duration::from_millis(settings.events.linger_ms),
            ..ConsumerOptions::default()
        },
        relay: Some(relay.clone()),
    };
    Box::new(move |shutdown| {
        let running = consumer.spawn(shutdown);
        Box::pin(async move {
            if let Err(error) = running.await {
                tracing::error!(%error, "an event consumer stopped");
            }
        })
    })
}

/// The inventory service over `db` (migrated here): its subgraph, its consumer of order and
/// shipment events, and the sweep that releases lapsed reservations.
pub async fn inventory(
    settings: &Settings,
    db: DatabaseConnection,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<(Assembled, Arc<inventory::Inventory>)> {
    migrations::inventory::Migrator::up(&db, None)
        .await
        .context("migrating the inventory database")?;
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let ttl = Duration::from_secs(settings.inventory.reservation_ttl_secs);
    let state = inventory::Inventory::new(db.clone(), relay.clone(), ttl);
    let schema = inventory::build_schema(state.clone());
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db))
        .merge(inventory::internal::routes(state.clone()));
    let handler = Arc::new(inventory::events::InventoryEvents(state.clone()));
    let sweep_every = Duration::from_secs(settings.inventory.expiry_sweep_secs.max(1));
    let sweeper = state.clone();
    let sweep = every(sweep_every, "released lapsed reservations", move || {
        let sweeper = sweeper.clone();
        Box::pin(async move {
            let released = inventory::stock::expire_held(&sweeper, chrono::Utc::now()).await?;
            Ok(released as u64)
        })
    });
    let background = vec![consumer(settings, bus, &db, handler, &relay), sweep];
    Ok((Assembled { router, relay, background }, state))
}

/// The payments service over `db` (migrated here): its subgraph and its consumer of order
/// events (authorise, capture, void or refund).
pub async fn payments(
    settings: &Settings,
    db: DatabaseConnection,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<(Assembled, Arc<payments::Payments>)> {
    migrations::payments::Migrator::up(&db, None)
        .await
        .context("migrating the payments database")?;
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let state = payments::Payments::new(db.clone(), relay.clone());
    let schema = payments::build_schema(state.clone());
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db));
    let handler = Arc::new(payments::events::PaymentEvents(state.clone()));
    let background = vec![consumer(settings, bus, &db, handler, &relay)];
    Ok((Assembled { router, relay, background }, state))
}

/// The carts service over `db` (migrated here), asking the catalog and the inventory where
/// their endpoints say; with the sweep that deletes carts left idle too long.
pub async fn carts(
    settings: &Settings,
    db: DatabaseConnection,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
    catalog: Endpoint,
    inventory: Endpoint,
) -> anyhow::Result<(Assembled, Arc<carts::Carts>)> {
    migrations::carts::Migrator::up(&db, None).await.context("migrating the carts database")?;
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let currency = Currency::parse(&settings.catalog.currency).context("catalog.currency")?;
    let idle = Duration::from_secs(settings.carts.idle_expiry_secs.max(60));
    let state = carts::Carts::new(db.clone(), catalog, inventory, idle, currency);
    let schema = carts::build_schema(state.clone());
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db))
        .merge(carts::internal::routes(state.clone()));
    let handler = Arc::new(carts::events::CartEvents(state.clone()));
    let consumer = consumer(settings, bus, &db, handler, &relay);
    let sweeper = state.clone();
    let sweep = every(Duration::from_secs(600), "expired idle carts", move || {
        let sweeper = sweeper.clone();
        Box::pin(async move { carts::carts::expire_idle(&sweeper, chrono::Utc::now()).await })
    });
    Ok((Assembled { router, relay, background: vec![consumer, sweep] }, state))
}

/// The orders service over `db` (migrated here), asking carts, catalog and rewards at
/// `upstream`: its subgraph, the checkout saga's consumer, and the sweep that resumes
/// checkouts left pending.
pub async fn orders(
    settings: &Settings,
    db: DatabaseConnection,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
    upstream: &orders::Upstream,
) -> anyhow::Result<(Assembled, Arc<orders::Orders>)> {
    use secrecy::ExposeSecret;
    migrations::orders::Migrator::up(&db, None).await.context("migrating the orders database")?;
    // Status changes go live through Redis pub/sub when events travel over Redis (every
    // replica sees every change), else through this process's broadcast.
    let feed = match &settings.events.redis_url {
        Some(url) => {
            orders::feed::StatusFeed::redis(url.expose_secret(), &settings.events.namespace)?
        }
        None => orders::feed::StatusFeed::in_process(),
    };
    let relay = OutboxRelay::new(db.clone(), bus.clone()).with_feed(feed.clone());
    let state = orders::Orders::new(db.clone(), relay.clone(), upstream, feed.clone());
    let schema = orders::build_schema(state.clone());
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db));
    let handler = Arc::new(orders::saga::Saga(state.clone()));
    let consumer = consumer(settings, bus, &db, handler, &relay);
    let resume_after = Duration::from_secs(settings.orders.resume_after_secs.max(1));
    let resumer = state.clone();
    let resume = every(resume_after / 2, "resumed stuck checkouts", move || {
        let resumer = resumer.clone();
        Box::pin(
            async move { Ok(orders::saga::resume_stuck(&resumer, resume_after).await? as u64) },
        )
    });
    let listen: Background = Box::new(move |shutdown| Box::pin(feed.listen(shutdown)));
    Ok((Assembled { router, relay, background: vec![consumer, resume, listen] }, state))
}

/// The fulfillment service over `db` (migrated here): its subgraph, its consumer of order
/// events, and the simulated carrier's clock.
pub async fn fulfillment(
    settings: &Settings,
    db: DatabaseConnection,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<(Assembled, Arc<fulfillment::Fulfillment>)> {
    migrations::fulfillment::Migrator::up(&db, None)
        .await
        .context("migrating the fulfillment database")?;
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let f = &settings.fulfillment;
    let step = Duration::from_secs(f.step_secs.max(1));
    let state = fulfillment::Fulfillment::new(db.clone(), relay.clone(), &f.carrier, step);
    let schema = fulfillment::build_schema(state.clone());
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db));
    let handler = Arc::new(fulfillment::events::FulfillmentEvents(state.clone()));
    let consumer = consumer(settings, bus, &db, handler, &relay);
    // The clock looks often enough that a step is never late by more than a hundredth of it
    // (or a second): parcels move in small, even batches rather than in one burst a second,
    // which would queue the checkouts' own events behind it.
    let tick = (step / 100).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let carrier = state.clone();
    let clock = every(tick, "parcels moved by the carrier", move || {
        let carrier = carrier.clone();
        Box::pin(async move {
            fulfillment::shipments::advance_due(&carrier, chrono::Utc::now(), 500).await
        })
    });
    Ok((Assembled { router, relay, background: vec![consumer, clock] }, state))
}

/// The notifications service over `db` (migrated here): its subgraph, its consumer of order
/// and shipment events, and the sender that delivers mail (asking identity at `identity` for
/// addresses).
pub async fn notifications(
    settings: &Settings,
    db: DatabaseConnection,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
    identity: Endpoint,
) -> anyhow::Result<(Assembled, Arc<notifications::Notifications>)> {
    use secrecy::ExposeSecret;
    migrations::notifications::Migrator::up(&db, None)
        .await
        .context("migrating the notifications database")?;
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let n = &settings.notifications;
    let folder = n.mail_dir.clone().unwrap_or_else(|| settings.data_dir.join("mail"));
    let smtp_url = n.smtp_url.as_ref().map(|url| url.expose_secret().to_string());
    let transport = notifications::transport::Transport::new(smtp_url.as_deref(), folder)?;
    tracing::info!(transport = %transport.describe(), "notifications send mail");
    let options = notifications::SenderOptions {
        from: n.from.clone(),
        max_attempts: i32::try_from(n.max_attempts).unwrap_or(i32::MAX),
        retry_base: Duration::from_millis(n.retry_base_millis.max(1)),
    };
    let state =
        notifications::Notifications::new(db.clone(), relay.clone(), transport, identity, options);
    let schema = notifications::build_schema(state.clone());
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db));
    let handler = Arc::new(notifications::events::NotificationEvents(state.clone()));
    let consumer = consumer(settings, bus, &db, handler, &relay);
    let sender = state.clone();
    let send = every(Duration::from_millis(250), "mails sent", move || {
        let sender = sender.clone();
        Box::pin(
            async move { notifications::sender::send_due(&sender, chrono::Utc::now(), 64).await },
        )
    });
    Ok((Assembled { router, relay, background: vec![consumer, send] }, state))
}

/// The rewards service over `db` (migrated here): its subgraph and internal routes, its
/// consumer of order events, and the sweeps that expire points and give back redemptions
/// whose order never came.
pub async fn rewards(
    settings: &Settings,
    db: DatabaseConnection,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<(Assembled, Arc<rewards::Rewards>)> {
    migrations::rewards::Migrator::up(&db, None).await.context("migrating the rewards database")?;
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let r = &settings.rewards;
    let policy = rewards::Policy {
        earn_per_unit: r.earn_per_unit,
        points_per_unit: r.points_per_unit.max(1),
        expiry: Duration::from_secs(r.expiry_days.saturating_mul(24 * 3600)),
        hold: Duration::from_secs(r.hold_minutes.max(1) * 60),
    };
    let currency = Currency::parse(&settings.catalog.currency).context("catalog.currency")?;
    let state = rewards::Rewards::new(db.clone(), relay.clone(), policy);
    let schema = rewards::build_schema(state.clone(), currency);
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db))
        .merge(rewards::internal::routes(state.clone()));
    let handler = Arc::new(rewards::events::RewardEvents(state.clone()));
    let consumer = consumer(settings, bus, &db, handler, &relay);
    let sweeper = state.clone();
    let sweep = every(Duration::from_secs(60), "points expired or given back", move || {
        let sweeper = sweeper.clone();
        Box::pin(async move {
            let now = chrono::Utc::now();
            let expired = rewards::ledger::expire_due(&sweeper, now).await?;
            Ok(expired + rewards::ledger::release_unclaimed(&sweeper, now).await?)
        })
    });
    Ok((Assembled { router, relay, background: vec![consumer, sweep] }, state))
}

/// The reporting service over `db` (migrated here): its subgraph and its consumer of order
/// and shipment events, which keeps them and builds the read model.
pub async fn reporting(
    settings: &Settings,
    db: DatabaseConnection,
    verifier: Arc<TokenVerifier>,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<(Assembled, Arc<reporting::Reporting>)> {
    migrations::reporting::Migrator::up(&db, None)
        .await
        .context("migrating the reporting database")?;
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let currency = Currency::parse(&settings.catalog.currency).context("catalog.currency")?;
    let state = reporting::Reporting::new(db.clone(), relay.clone(), currency);
    let schema = reporting::build_schema(state.clone());
    let router = subgraph_router(schema, endpoint_options(settings, verifier, &db));
    let handler = Arc::new(reporting::events::ReportingEvents(state.clone()));
    let background = vec![consumer(settings, bus, &db, handler, &relay)];
    Ok((Assembled { router, relay, background }, state))
}
