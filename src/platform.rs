//! The platform: which services run, where they listen, and running them until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kernel::auth::{KeyPair, TokenVerifier};
use kernel::config::Settings;
use kernel::events::bus::{EventBus, InProcessBus};
use kernel::http_client::Endpoint;
use tokio::net::TcpListener;

use crate::services::{self, Assembled};

/// A service the launcher can start. The order fixes each one's port: the first subgraph port
/// (4001 by default) plus its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// Products, categories, reviews, search.
    Catalog,
    /// Customers, credentials, sessions.
    Identity,
    /// Stock and reservations.
    Inventory,
    /// Cards and payments.
    Payments,
    /// Guest and customer carts.
    Carts,
    /// Orders and the checkout saga.
    Orders,
    /// Shipments and the simulated carrier.
    Fulfillment,
    /// E-mail to customers.
    Notifications,
    /// Loyalty points.
    Rewards,
    /// The sales read model.
    Reporting,
}

impl Service {
    /// Every service, in port order.
    pub const ALL: [Service; 10] = [
        Service::Catalog,
        Service::Identity,
        Service::Inventory,
        Service::Payments,
        Service::Carts,
        Service::Orders,
        Service::Fulfillment,
        Service::Notifications,
        Service::Rewards,
        Service::Reporting,
    ];

    /// The service's name (also its database or schema name).
    pub fn name(self) -> &'static str {
        match self {
            Service::Catalog => "catalog",
            Service::Identity => "identity",
            Service::Inventory => "inventory",
            Service::Payments => "payments",
            Service::Carts => "carts",
            Service::Orders => "orders",
            Service::Fulfillment => "fulfillment",
            Service::Notifications => "notifications",
            Service::Rewards => "rewards",
            Service::Reporting => "reporting",
        }
    }

    /// Where the service comes in the start-up order: a service starts after the ones it
    /// calls, so that their addresses are known (orders calls rewards, which has a later port).
    fn start_rank(self) -> usize {
        match self {
            Service::Rewards => Service::rank_of(Service::Orders) * 2 - 1,
            other => Service::rank_of(other) * 2,
        }
    }

    fn rank_of(service: Service) -> usize {
        Service::ALL.iter().position(|s| *s == service).unwrap_or(0)
    }

    fn port(self, settings: &Settings) -> u16 {
        let index = Service::ALL.iter().position(|s| *s == self).unwrap_or(0) as u16;
        settings.server.first_subgraph_port + index
    }
}

/// Where services listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// The configured ports.
    Configured,
    /// Any free port on the configured host (tests).
    Ephemeral,
}

struct Running {
    service: Service,
    listener: TcpListener,
    assembled: Assembled,
}

/// Assembled services, bound and ready to run.
pub struct Platform {
    running: Vec<Running>,
    /// The catalog's state, when it runs here.
    pub catalog: Option<Arc<catalog::Catalog>>,
    /// Identity's state, when it runs here.
    pub identity: Option<Arc<identity::Identity>>,
    /// The inventory's state, when it runs here.
    pub inventory: Option<Arc<inventory::Inventory>>,
    /// The payments' state, when they run here.
    pub payments: Option<Arc<payments::Payments>>,
    /// The carts' state, when they run here.
    pub carts: Option<Arc<carts::Carts>>,
    /// The orders' state, when they run here.
    pub orders: Option<Arc<orders::Orders>>,
    /// Fulfillment's state, when it runs here.
    pub fulfillment: Option<Arc<fulfillment::Fulfillment>>,
    /// The notifications' state, when they run here.
    pub notifications: Option<Arc<notifications::Notifications>>,
    /// The rewards' state, when they run here.
    pub rewards: Option<Arc<rewards::Rewards>>,
    /// Reporting's state, when it runs here.
    pub reporting: Option<Arc<reporting::Reporting>>,
    /// The event bus the services publish to.
    pub bus: Arc<dyn EventBus>,
    gateway: Option<(TcpListener, axum::Router)>,
}

impl Platform {
    /// Connects, migrates and binds `services` (all of them when empty).
    pub async fn build(
        settings: &Settings,
        only: &[Service],
        listen: Listen,
    ) -> anyhow::Result<Self> {
        // Settings made in code (tests, benchmarks) skip `Settings::load`; check them here too.
        settings.check().map_err(anyhow::Error::msg)?;
        let mut services: Vec<Service> =
            if only.is_empty() { Service::ALL.to_vec() } else { only.to_vec() };
        services.sort_by_key(|s| s.start_rank());
        let with_gateway = settings.gateway.enabled && services.len() == Service::ALL.len();
        let mut settings = settings.clone();
        // Behind the in-process gateway every request comes from it, and the client's address
        // is in the X-Forwarded-For it sets from the connection it accepted.
        settings.server.trust_forwarded_for |= with_gateway;
        let settings = &settings;
        let bus = event_bus(settings).await?;
        let (keys, verifier) = keys(settings, &services).await?;
        let mut platform = Platform {
            running: Vec::new(),
            catalog: None,
            identity: None,
            inventory: None,
            payments: None,
            carts: None,
            orders: None,
            fulfillment: None,
            notifications: None,
            rewards: None,
            reporting: None,
            bus: bus.clone(),
            gateway: None,
        };
        for service in services {
            let db = kernel::db::connect(&settings.database, &settings.data_dir, service.name())
                .await
                .with_context(|| format!("opening the {} database", service.name()))?;
            let assembled = match service {
                Service::Catalog => {
                    let (assembled, state) =
                        services::catalog(settings, db, verifier.clone(), bus.clone()).await?;
                    platform.catalog = Some(state);
                    assembled
                }
                Service::Identity => {
                    let keys = keys.clone().context("identity needs a signing key")?;
                    let (assembled, state) =
                        services::identity(settings, db, keys, verifier.clone(), bus.clone())
                            .await?;
                    platform.identity = Some(state);
                    assembled
                }
                Service::Inventory => {
                    let (assembled, state) =
                        services::inventory(settings, db, verifier.clone(), bus.clone()).await?;
                    platform.inventory = Some(state);
                    assembled
                }
                Service::Payments => {
                    let (assembled, state) =
                        services::payments(settings, db, verifier.clone(), bus.clone()).await?;
                    platform.payments = Some(state);
                    assembled
                }
                Service::Carts => {
                    let c = &settings.carts;
                    let catalog = platform.endpoint(settings, Service::Catalog, &c.catalog_url);
                    let inventory =
                        platform.endpoint(settings, Service::Inventory, &c.inventory_url);
                    let (assembled, state) = services::carts(
                        settings,
                        db,
                        verifier.clone(),
                        bus.clone(),
                        catalog,
                        inventory,
                    )
                    .await?;
                    platform.carts = Some(state);
                    assembled
                }
                Service::Orders => {
                    let o = &settings.orders;
                    let upstream = orders::Upstream {
                        carts: platform.endpoint(settings, Service::Carts, &o.carts_url),
                        catalog: platform.endpoint(settings, Service::Catalog, &o.catalog_url),
                        rewards: platform.endpoint(settings, Service::Rewards, &o.rewards_url),
                    };
                    let (assembled, state) =
                        services::orders(settings, db, verifier.clone(), bus.clone(), &upstream)
                            .await?;
                    platform.orders = Some(state);
                    assembled
                }
                Service::Fulfillment => {
                    let (assembled, state) =
                        services::fulfillment(settings, db, verifier.clone(), bus.clone()).await?;
                    platform.fulfillment = Some(state);
                    assembled
                }
                Service::Notifications => {
                    let identity = platform.endpoint(
                        settings,
                        Service::Identity,
                        &settings.notifications.identity_url,
                    );
                    let (assembled, state) = services::notifications(
                        settings,
                        db,
                        verifier.clone(),
                        bus.clone(),
                        identity,
                    )
                    .await?;
                    platform.notifications = Some(state);
                    assembled
                }
                Service::Rewards => {
                    let (assembled, state) =
                        services::rewards(settings, db, verifier.clone(), bus.clone()).await?;
                    platform.rewards = Some(state);
                    assembled
                }
                Service::Reporting => {
                    let (assembled, state) =
                        services::reporting(settings, db, verifier.clone(), bus.clone()).await?;
                    platform.reporting = Some(state);
                    assembled
                }
            };
            let port = match listen {
                Listen::Configured => service.port(settings),
                Listen::Ephemeral => 0,
            };
            let addr = SocketAddr::new(settings.server.host, port);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr} for {}", service.name()))?;
            platform.running.push(Running { service, listener, assembled });
        }
        if with_gateway {
            platform.gateway = Some(gateway(settings, &platform, listen).await?);
        }
        Ok(platform)
    }

    /// Where another context's client finds `service`: the configured URL, else its router
    /// when it runs in this process (its address when in-process calls are off), else its
    /// default address.
    fn endpoint(
        &self,
        settings: &Settings,
        service: Service,
        configured: &Option<String>,
    ) -> Endpoint {
        if let Some(url) = configured {
            return Endpoint::Url(url.trim_end_matches('/').to_string());
        }
        let running = self.running.iter().find(|r| r.service == service);
        if let Some(running) = running
            && settings.server.in_process_calls
        {
            return Endpoint::Local(running.assembled.router.clone());
        }
        match running.and_then(|r| r.listener.local_addr().ok()) {
            Some(addr) => Endpoint::Url(format!("http://{addr}")),
            None => {
                Endpoint::Url(format!("http://{}:{}", settings.server.host, service.port(settings)))
            }
        }
    }

    /// Where the gateway listens, when it runs here.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Where `service` listens, if it runs here.
    pub fn addr(&self, service: Service) -> Option<SocketAddr> {
        self.running
            .iter()
            .find(|r| r.service == service)
            .and_then(|r| r.listener.local_addr().ok())
    }

    /// Serves every service until `shutdown` resolves, then drains requests and relays.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown: Shared<BoxFuture<'static, ()>> = shutdown.boxed().shared();
        let mut tasks = tokio::task::JoinSet::new();
        // Consumers join their groups before any relay publishes.
        let mut running_services = self.running;
        for running in &mut running_services {
            for background in running.assembled.background.drain(..) {
                tasks.spawn(background(shutdown.clone()).map(|()| Ok(())));
            }
        }
        for running in running_services {
            let name = running.service.name();
            let addr = running.listener.local_addr()?;
            tracing::info!(service = name, "{name} listening on http://{addr}/graphql");
            let relay = running.assembled.relay;
            tasks.spawn(relay.run(Duration::from_secs(5), shutdown.clone()).map(|()| Ok(())));
            let serve =
                kernel::server::run(running.listener, running.assembled.router, shutdown.clone());
            tasks.spawn(async move { serve.await.with_context(|| format!("serving {name}")) });
        }
        if let Some((listener, app)) = self.gateway {
            let addr = listener.local_addr()?;
            tracing::info!(service = "gateway", "gateway listening on http://{addr}/graphql");
            let serve = gateway::serve(listener, app, shutdown.clone());
            tasks.spawn(async move { serve.await.context("serving the gateway") });
        }
        while let Some(result) = tasks.join_next().await {
            result.context("a service task panicked")??;
        }
        tracing::info!("all services stopped");
        Ok(())
    }
}

/// Composes the local subgraphs (their SDL as served, their bound addresses) and builds the
/// gateway in front of them.
async fn gateway(
    settings: &Settings,
    platform: &Platform,
    listen: Listen,
) -> anyhow::Result<(TcpListener, axum::Router)> {
    let mut subgraphs = Vec::new();
    for running in &platform.running {
        let addr = running.listener.local_addr()?;
        subgraphs.push(gateway::compose::SubgraphSdl {
            name: running.service.name().to_string(),
            url: format!("http://{addr}/graphql"),
            sdl: crate::sdl::subgraph_sdl(running.service).await?,
        });
    }
    let supergraph = gateway::compose::compose(&subgraphs)?;
    let mut options = gateway_options(settings);
    if settings.server.in_process_calls {
        for running in &platform.running {
            let name = running.service.name().to_string();
            options.transport.local.insert(name, running.assembled.router.clone());
        }
    }
    // Tokens are checked at the edge with identity's public key (or the shared secret).
    if let Some(identity) = &platform.identity {
        options.jwt.jwks = Some(identity.issuer.keys().jwks());
    }
    options.jwt.hmac_secret = settings.auth.hmac_secret.as_ref().map(|s| {
        use secrecy::ExposeSecret;
        s.expose_secret().to_string()
    });
    options.jwt.issuer = Some(settings.auth.issuer.clone());
    options.jwt.audience = Some(settings.auth.audience.clone());
    let app = gateway::app(&supergraph, &options).await?;
    let port = match listen {
        Listen::Configured => settings.server.gateway_port,
        Listen::Ephemeral => 0,
    };
    let addr = SocketAddr::new(settings.server.host, port);
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("binding {addr} for the gateway"))?;
    Ok((listener, app))
}

/// The gateway's options from the platform settings.
pub fn gateway_options(settings: &Settings) -> gateway::GatewayOptions {
    let g = &settings.gateway;
    gateway::GatewayOptions {
        http: gateway::HttpOptions {
            body_limit_bytes: settings.server.body_limit_bytes,
            cors_origins: g.cors_origins.clone(),
            graphiql: g.graphiql,
            live: gateway::live::LiveLimits {
                subscriptions_per_connection: g.subscriptions_per_connection.max(1),
                connections_per_client: g.live_connections_per_client.max(1),
                ..gateway::live::LiveLimits::default()
            },
        },
        limits: gateway::Limits {
            max_depth: g.max_depth,
            max_aliases: g.max_aliases,
            introspection: g.introspection,
        },
        transport: gateway::transport::TransportOptions {
            default_timeout: Duration::from_secs(g.subgraph_timeout_secs),
            timeouts: g
                .subgraph_timeouts_secs
                .iter()
                .map(|(name, secs)| (name.clone(), Duration::from_secs(*secs)))
                .collect(),
            compression: g.subgraph_compression,
            local: std::collections::HashMap::new(),
        },
        jwt: gateway::auth::JwtOptions::default(),
    }
}

/// The signing key (when identity runs here) and the verifier every service uses: from the
/// configured JWKS URL when set and identity is not local, else from the signing key.
async fn keys(
    settings: &Settings,
    services: &[Service],
) -> anyhow::Result<(Option<KeyPair>, Arc<TokenVerifier>)> {
    let identity_here = services.contains(&Service::Identity);
    if let (Some(url), false) = (&settings.auth.jwks_url, identity_here) {
        let verifier =
            TokenVerifier::from_jwks_url(url, &settings.auth, Duration::from_secs(30)).await?;
        return Ok((None, Arc::new(verifier)));
    }
    let generated_here = settings.auth.signing_key_file.is_none()
        && settings.auth.hmac_secret.is_none()
        && !kernel::auth::default_key_path(&settings.data_dir).exists();
    if !identity_here && generated_here {
        // A key made here would sign nothing: tokens come from identity, running elsewhere.
        anyhow::bail!(
            "without identity in this process, set auth.jwks_url (or auth.signing_key_file) \
             so that tokens can be verified"
        );
    }
    let keys = KeyPair::load(&settings.auth, &settings.data_dir)?;
    let verifier = Arc::new(TokenVerifier::for_keys(&keys, &settings.auth));
    Ok((Some(keys), verifier))
}

/// The event bus the settings ask for: Redis Streams when `events.redis_url` is set, else the
/// in-process bus.
async fn event_bus(settings: &Settings) -> anyhow::Result<Arc<dyn EventBus>> {
    use secrecy::ExposeSecret;
    let events = &settings.events;
    match &events.redis_url {
        Some(url) => {
            let options = kernel::events::redis::RedisOptions {
                namespace: events.namespace.clone(),
                partitions: events.partitions,
                lease: Duration::from_secs(events.lease_secs),
                ..kernel::events::redis::RedisOptions::default()
            };
            // The URL may hold a password: the error names the bus, not the URL.
            let bus = kernel::events::redis::RedisStreamsBus::connect(url.expose_secret(), options)
                .await
                .context("connecting to the Redis event bus")?;
            tracing::info!(partitions = events.partitions, "events on Redis Streams");
            Ok(Arc::new(bus))
        }
        None => Ok(Arc::new(InProcessBus::default())),
    }
}
