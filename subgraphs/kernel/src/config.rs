//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables (`BETTER_STORE_` prefix, `__` between levels, e.g.
//! `BETTER_STORE_DATABASE__URL=postgres://…`). Unknown keys are rejected so that a typo is an
//! error at start-up, not a silently ignored setting. Secrets are [`SecretString`]s: they are
//! never printed by `Debug`, so logging the settings cannot leak them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The prefix of every environment variable that overrides a setting.
pub const ENV_PREFIX: &str = "BETTER_STORE_";

/// All settings of the platform. Each service reads the parts it needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Folder for embedded-mode state: SQLite files, the generated signing key.
    /// Default `data`; env `BETTER_STORE_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Where each context keeps its data.
    pub database: DatabaseSettings,
    /// Listening addresses.
    pub server: ServerSettings,
    /// Log format and filter.
    pub telemetry: TelemetrySettings,
    /// Token issuing and verification.
    pub auth: AuthSettings,
    /// Identity context rules.
    pub identity: IdentitySettings,
    /// Catalog context rules.
    pub catalog: CatalogSettings,
    /// Inventory context rules.
    pub inventory: InventorySettings,
    /// Carts context rules.
    pub carts: CartsSettings,
    /// Orders context rules.
    pub orders: OrdersSettings,
    /// Fulfillment context rules (the simulated carrier).
    pub fulfillment: FulfillmentSettings,
    /// Notifications: where e-mail goes and how it is retried.
    pub notifications: NotificationsSettings,
    /// Rewards: the loyalty programme's rules.
    pub rewards: RewardsSettings,
    /// The event bus.
    pub events: EventsSettings,
    /// Demo data.
    pub seed: SeedSettings,
    /// The federation gateway.
    pub gateway: GatewaySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database: DatabaseSettings::default(),
            server: ServerSettings::default(),
            telemetry: TelemetrySettings::default(),
            auth: AuthSettings::default(),
            identity: IdentitySettings::default(),
            catalog: CatalogSettings::default(),
            inventory: InventorySettings::default(),
            carts: CartsSettings::default(),
            orders: OrdersSettings::default(),
            fulfillment: FulfillmentSettings::default(),
            notifications: NotificationsSettings::default(),
            rewards: RewardsSettings::default(),
            events: EventsSettings::default(),
            seed: SeedSettings::default(),
            gateway: GatewaySettings::default(),
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` when given, then `BETTER_STORE_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let settings: Self = figment.extract().map_err(Box::new)?;
        settings.check().map_err(|message| Box::new(figment::Error::from(message)))?;
        Ok(settings)
    }

    /// Refuses values that parse but cannot work: a pool of no connections would make every
    /// query wait forever, no partitions or no lanes would leave events unconsumed, and so on.
    /// Refusing at start-up names the key; clamping would silently run something else.
    pub fn check(&self) -> Result<(), String> {
        let at_least_one: [(&str, u64); 6] = [
            ("database.max_connections", self.database.max_connections.map_or(1, u64::from)),
            ("events.partitions", u64::from(self.events.partitions)),
            ("events.lanes", self.events.lanes as u64),
            ("events.lease_secs", self.events.lease_secs),
            ("events.max_attempts", u64::from(self.events.max_attempts)),
            ("notifications.max_attempts", u64::from(self.notifications.max_attempts)),
        ];
        match at_least_one.iter().find(|(_, value)| *value == 0) {
            Some((key, _)) => Err(format!("{key} must be at least 1")),
            None => Ok(()),
        }
    }
}

/// Where the bounded contexts keep their data.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Unset (default): one SQLite file per context under `data_dir`. A `postgres://` URL: one
    /// schema per context in that database. Env `BETTER_STORE_DATABASE__URL`.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub url: Option<SecretString>,
    /// Prefix for each context's PostgreSQL schema name (default empty: schema `catalog`, …).
    /// Tests use it to give every test its own schemas.
    pub schema_prefix: String,
    /// Connection pool size per context (default 4 on PostgreSQL, 1 on SQLite, where a
    /// single connection queues writes instead of letting them sleep on the file's lock).
    pub max_connections: Option<u32>,
}

/// Listening addresses of the gateway and every subgraph.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Interface to bind (default `127.0.0.1`). Env `BETTER_STORE_SERVER__HOST`.
    pub host: IpAddr,
    /// The gateway's port (default 4000).
    pub gateway_port: u16,
    /// Port of the first subgraph; the others follow in a fixed order (default 4001).
    pub first_subgraph_port: u16,
    /// Largest accepted request body in bytes (default 1 MiB).
    pub body_limit_bytes: usize,
    /// Take the client address from `X-Forwarded-For` (set it only behind a trusted proxy or
    /// the gateway; default false).
    pub trust_forwarded_for: bool,
    /// Services running in one process call each other, and the gateway its subgraphs, in
    /// process rather than over loopback HTTP (default true). Off, every call takes the
    /// network path a split deployment takes.
    pub in_process_calls: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            gateway_port: 4000,
            first_subgraph_port: 4001,
            body_limit_bytes: 1024 * 1024,
            trust_forwarded_for: false,
            in_process_calls: true,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `pretty` for humans (default) or `json` for log collectors.
    pub format: LogFormat,
    /// An `EnvFilter` directive (default `info`); `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { format: LogFormat::Pretty, filter: "info".into() }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Coloured, multi-line, for a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Token issuing (identity) and verification (every subgraph).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// `iss` claim written and required (default `better-store`).
    pub issuer: String,
    /// `aud` claim written and required (default `better-store`).
    pub audience: String,
    /// Access token lifetime in seconds (default 900).
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime in seconds (default 30 days).
    pub refresh_token_ttl_secs: u64,
    /// PEM file with an Ed25519 private key (PKCS#8). Default: `<data_dir>/jwt-ed25519.pem`,
    /// generated on first start. Its public key is served as JWKS by identity.
    pub signing_key_file: Option<PathBuf>,
    /// Sign with HS256 and this shared secret instead of Ed25519 (no JWKS then).
    #[serde(serialize_with = "serialize_secret_opt")]
    pub hmac_secret: Option<SecretString>,
    /// Verify tokens with the keys published at this JWKS URL (a subgraph running apart from
    /// identity), instead of reading the signing key.
    pub jwks_url: Option<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "better-store".into(),
            audience: "better-store".into(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            signing_key_file: None,
            hmac_secret: None,
            jwks_url: None,
        }
    }
}

/// Identity context rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySettings {
    /// The first administrator, created at start-up when no account has this e-mail.
    pub bootstrap_admin: Option<BootstrapAdmin>,
    /// Sign-in attempts allowed per e-mail address per window (default 10).
    pub sign_in_attempts_per_email: u32,
    /// Sign-in attempts allowed per client address per window (default 50).
    pub sign_in_attempts_per_address: u32,
    /// The rate-limit window in seconds (default 300).
    pub sign_in_window_secs: u64,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            bootstrap_admin: None,
            sign_in_attempts_per_email: 10,
            sign_in_attempts_per_address: 50,
            sign_in_window_secs: 300,
        }
    }
}

/// The first administrator account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapAdmin {
    /// The administrator's e-mail.
    pub email: String,
    /// The administrator's initial password.
    #[serde(serialize_with = "serialize_secret")]
    pub password: SecretString,
    /// Display name (default "Administrator").
    #[serde(default = "default_admin_name")]
    pub name: String,
}

fn default_admin_name() -> String {
    "Administrator".into()
}

/// Catalog context rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSettings {
    /// The currency every catalog price is in (default `USD`).
    pub currency: String,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self { currency: "USD".into() }
    }
}

/// Inventory context rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventorySettings {
    /// Seconds a reservation holds before its order is confirmed (default 900).
    pub reservation_ttl_secs: u64,
    /// Seconds between sweeps that release lapsed reservations (default 30).
    pub expiry_sweep_secs: u64,
}

impl Default for InventorySettings {
    fn default() -> Self {
        Self { reservation_ttl_secs: 900, expiry_sweep_secs: 30 }
    }
}

/// Carts context rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CartsSettings {
    /// Seconds a cart may stay untouched before it expires (default 7 days).
    pub idle_expiry_secs: u64,
    /// Base URL of the catalog (default: where it runs in this process, or its default port).
    pub catalog_url: Option<String>,
    /// Base URL of the inventory (default: where it runs in this process, or its default port).
    pub inventory_url: Option<String>,
}

impl Default for CartsSettings {
    fn default() -> Self {
        Self { idle_expiry_secs: 7 * 24 * 3600, catalog_url: None, inventory_url: None }
    }
}

/// Orders context rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersSettings {
    /// Seconds an order may stay `PENDING` unanswered before its checkout is asked again
    /// (default 60).
    pub resume_after_secs: u64,
    /// Base URL of the carts (default: where they run in this process, or their default port).
    pub carts_url: Option<String>,
    /// Base URL of the catalog (default: where it runs in this process, or its default port).
    pub catalog_url: Option<String>,
    /// Base URL of rewards, for points redeemed at checkout (default: where it runs in this
    /// process, or its default port).
    pub rewards_url: Option<String>,
}

impl Default for OrdersSettings {
    fn default() -> Self {
        Self { resume_after_secs: 60, carts_url: None, catalog_url: None, rewards_url: None }
    }
}

/// Rewards: the loyalty programme's rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardsSettings {
    /// Points earned per whole currency unit an order pays (default 10).
    pub earn_per_unit: u32,
    /// Points that make one currency unit of discount (default 100).
    pub points_per_unit: u32,
    /// Days spendable points last (default 365).
    pub expiry_days: u64,
    /// Minutes a redemption waits for its order to be stored before it is given back
    /// (default 15).
    pub hold_minutes: u64,
}

impl Default for RewardsSettings {
    fn default() -> Self {
        Self { earn_per_unit: 10, points_per_unit: 100, expiry_days: 365, hold_minutes: 15 }
    }
}

/// Fulfillment context rules: the simulated carrier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FulfillmentSettings {
    /// The carrier's name on shipments (default `Better Parcel`).
    pub carrier: String,
    /// Seconds the carrier takes for each step: preparing → shipped → out for delivery →
    /// delivered (default 10, so a demo order is delivered within a minute).
    pub step_secs: u64,
}

impl Default for FulfillmentSettings {
    fn default() -> Self {
        Self { carrier: "Better Parcel".into(), step_secs: 10 }
    }
}

/// Notifications: where e-mail goes and how failures are retried.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsSettings {
    /// The `From` of every mail (default `Better Store <orders@betterstore.dev>`).
    pub from: String,
    /// An SMTP server to send through, such as `smtp://user:pass@mail.example.com:587?tls=required`
    /// or `smtps://…:465` (default unset: mail is written as `.eml` files to `mail_dir`).
    /// A secret: never logged.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub smtp_url: Option<SecretString>,
    /// Folder of the `.eml` files when no SMTP server is set (default `<data_dir>/mail`).
    pub mail_dir: Option<PathBuf>,
    /// Attempts before a mail is given up (default 10).
    pub max_attempts: u32,
    /// Milliseconds before the first retry; doubled after each failure, at most 30 minutes
    /// (default 2000).
    pub retry_base_millis: u64,
    /// Base URL of identity, for customers' addresses (default: where it runs in this process,
    /// or its default port).
    pub identity_url: Option<String>,
}

impl Default for NotificationsSettings {
    fn default() -> Self {
        Self {
            from: "Better Store <orders@betterstore.dev>".into(),
            smtp_url: None,
            mail_dir: None,
            max_attempts: 10,
            retry_base_millis: 2000,
            identity_url: None,
        }
    }
}

/// The event bus between contexts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// Unset (default): the in-process bus. A `redis://` URL: Redis Streams.
    /// Env `BETTER_STORE_EVENTS__REDIS_URL`.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key the bus uses (default `better-store`).
    pub namespace: String,
    /// Streams events are spread over, by aggregate (default 8).
    pub partitions: u32,
    /// Seconds a consumer's hold on a partition lasts unrenewed (default 10).
    pub lease_secs: u64,
    /// Attempts before an event goes to the dead letters (default 5).
    pub max_attempts: u32,
    /// Lanes of each consumer: aggregates handled side by side (default 4). Fewer lanes make
    /// bigger batches of waiting events (cheaper per event under load); more let slow
    /// handlers of different aggregates overlap.
    pub lanes: usize,
    /// Milliseconds the events no shopper waits on (carts' clean-up, fulfillment,
    /// notifications, rewards, reporting, payments' capture, inventory keeping and shipping
    /// units) wait for more to handle in the same transaction (default 500; 0: none). This
    /// makes each event cheaper, under load and at a steady trickle alike (a receipt or a
    /// report half a second later is nothing a shopper sees, and fewer, larger units wake
    /// the database less); the checkout's own steps never wait, and one arriving in the same
    /// lane ends the wait.
    pub linger_ms: u64,
    /// Run this process's event consumers (default true). False makes a replica that serves
    /// and publishes but leaves consuming to others (maintenance, read replicas).
    pub consume: bool,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            namespace: "better-store".into(),
            partitions: 8,
            lease_secs: 10,
            max_attempts: 5,
            lanes: 4,
            linger_ms: 500,
            consume: true,
        }
    }
}

/// Demo data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedSettings {
    /// Load the demo catalog and demo accounts when `serve` finds empty databases
    /// (default true; the embedded experience). Turn off in production.
    pub on_first_start: bool,
}

impl Default for SeedSettings {
    fn default() -> Self {
        Self { on_first_start: true }
    }
}

/// The federation gateway in front of the subgraphs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Run the gateway when `serve` runs every subgraph (default true).
    pub enabled: bool,
    /// Seconds to wait for a subgraph before answering without it (default 30).
    pub subgraph_timeout_secs: u64,
    /// Per-subgraph timeouts in seconds, by subgraph name (default none).
    pub subgraph_timeouts_secs: std::collections::BTreeMap<String, u64>,
    /// Ask subgraphs for gzip or Brotli compressed responses (default true).
    pub subgraph_compression: bool,
    /// Origins allowed by CORS; `*` for any (default none: no CORS headers).
    pub cors_origins: Vec<String>,
    /// Deepest field nesting a client operation may have (default 15).
    pub max_depth: usize,
    /// Most aliases a client operation may use (default 30).
    pub max_aliases: usize,
    /// Answer introspection queries (default true).
    pub introspection: bool,
    /// Serve GraphiQL to browsers at `GET /graphql` (default true).
    pub graphiql: bool,
    /// Subscriptions one WebSocket connection may hold at once (default 100).
    pub subscriptions_per_connection: usize,
    /// Live connections (WebSocket) one client address may hold at once (default 1000).
    pub live_connections_per_client: usize,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            subgraph_timeout_secs: 30,
            subgraph_timeouts_secs: std::collections::BTreeMap::new(),
            subgraph_compression: true,
            cors_origins: Vec::new(),
            max_depth: 15,
            max_aliases: 30,
            subscriptions_per_connection: 100,
            live_connections_per_client: 1000,
            introspection: true,
            graphiql: true,
        }
    }
}

// Secrets are written out only so that defaults can seed figment; the real value never is.
fn serialize_secret_opt<S: serde::Serializer>(
    value: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => serialize_secret(v, s),
        None => s.serialize_none(),
    }
}

fn serialize_secret<S: serde::Serializer>(value: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    s.serialize_str(value.expose_secret())
}

#[cfg(test)]
// figment's `Jail` fixes the closure's error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "store.toml",
                "[catalog]\ncurrency = \"EUR\"\n[server]\ngateway_port = 5000\n",
            )?;
            jail.set_env("BETTER_STORE_SERVER__GATEWAY_PORT", "6000");
            jail.set_env("BETTER_STORE_DATABASE__URL", "postgres://u:hunter2@db/store");
            let s = Settings::load(Some(Path::new("store.toml"))).expect("settings load");
            assert_eq!(s.catalog.currency, "EUR");
            assert_eq!(s.server.gateway_port, 6000);
            assert_eq!(s.server.first_subgraph_port, 4001);
            let url = s.database.url.as_ref().expect("url");
            assert_eq!(url.expose_secret(), "postgres://u:hunter2@db/store");
            assert!(!format!("{s:?}").contains("hunter2"), "secrets must not reach Debug output");
            Ok(())
        });
    }

    #[test]
    fn settings_that_cannot_work_are_refused_by_name() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("store.toml", "[events]\npartitions = 0\n")?;
            let error = Settings::load(Some(Path::new("store.toml"))).expect_err("refused");
            assert!(error.to_string().contains("events.partitions"), "{error}");
            jail.set_env("BETTER_STORE_EVENTS__PARTITIONS", "2");
            jail.set_env("BETTER_STORE_DATABASE__MAX_CONNECTIONS", "0");
            let error = Settings::load(Some(Path::new("store.toml"))).expect_err("refused");
            assert!(error.to_string().contains("database.max_connections"), "{error}");
            jail.set_env("BETTER_STORE_DATABASE__MAX_CONNECTIONS", "3");
            let settings = Settings::load(Some(Path::new("store.toml"))).expect("loads");
            assert_eq!(settings.events.partitions, 2);
            assert_eq!(settings.database.max_connections, Some(3));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("store.toml", "[server]\ngateway_prot = 5000\n")?;
            assert!(Settings::load(Some(Path::new("store.toml"))).is_err());
            Ok(())
        });
    }
}
