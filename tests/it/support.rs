//! Shared helpers: start the real platform on port 0 with its own databases, and talk to it
//! over HTTP. With `TEST_DATABASE_URL` set, every test gets its own PostgreSQL schemas (else
//! its own SQLite files in a temporary folder); with `TEST_REDIS_URL` set, events travel over
//! Redis Streams in a namespace of the test's own (else the in-process bus). `TEST_LOG=1`
//! shows the logs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use better_store::{Listen, Platform, Service};
use kernel::config::{BootstrapAdmin, Settings};
use kernel::events::EventEnvelope;
use kernel::events::bus::EventBus;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "admin@test.betterstore.dev";
pub const ADMIN_PASSWORD: &str = "test-operator-pass-1";

/// A temporary folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir()
            .join(format!("better-store-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Settings for one test: its own data folder and databases, a known first administrator.
pub fn test_settings(dir: &TempDir) -> Settings {
    let mut settings = Settings { data_dir: dir.0.clone(), ..Settings::default() };
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        settings.database.url = Some(url.into());
        settings.database.schema_prefix =
            format!("t{}_", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        // Two tests run at once, some with two platforms (replicas) or consumers of their
        // own, all on one server with PostgreSQL's default of 100 connections. Peak client
        // connections over the whole suite: 86 with three per context, 61 with two (sampled
        // every 20 ms). SQLite passes the same tests with one.
        settings.database.max_connections = Some(2);
    }
    if let Ok(url) = std::env::var("TEST_REDIS_URL") {
        // Events go through Redis Streams, in a namespace of this test's own.
        settings.events.redis_url = Some(url.into());
        settings.events.namespace =
            format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        settings.events.lease_secs = 2;
    }
    // The simulated carrier waits an hour per step unless a test speeds it up: an order
    // stays CONFIRMED while a test looks at it, and parcels move when a test moves them.
    settings.fulfillment.step_secs = 3600;
    settings.identity.bootstrap_admin = Some(BootstrapAdmin {
        email: ADMIN_EMAIL.into(),
        password: ADMIN_PASSWORD.to_string().into(),
        name: "Test Admin".into(),
    });
    if std::env::var("TEST_LOG").is_ok() {
        kernel::telemetry::init(&settings.telemetry);
    }
    settings
}

/// A running platform.
pub struct TestApp {
    pub gateway_url: String,
    pub catalog_url: String,
    pub identity_url: String,
    pub client: reqwest::Client,
    pub bus: Arc<dyn EventBus>,
    pub catalog: Arc<catalog::Catalog>,
    pub identity: Arc<identity::Identity>,
    pub inventory: Arc<inventory::Inventory>,
    pub payments: Arc<payments::Payments>,
    pub carts: Arc<carts::Carts>,
    pub orders: Arc<orders::Orders>,
    pub fulfillment: Arc<fulfillment::Fulfillment>,
    pub notifications: Arc<notifications::Notifications>,
    pub rewards: Arc<rewards::Rewards>,
    pub reporting: Arc<reporting::Reporting>,
    pub payments_url: String,
    pub orders_url: String,
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: TempDir,
}

impl TestApp {
    /// Catalog and identity with empty databases (plus the first administrator).
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], with the demo store loaded.
    pub async fn seeded() -> Self {
        let app = Self::spawn().await;
        better_store::seed::load(&app.identity, &app.catalog, Some(&app.inventory))
            .await
            .expect("seed");
        app
    }

    /// Like [`TestApp::spawn`], after `configure` adjusts the settings.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let dir = TempDir::new();
        let mut settings = test_settings(&dir);
        configure(&mut settings);
        Self::start(settings, dir).await
    }

    /// A second platform process on the same databases, Redis namespace and signing key (the
    /// same data folder), as another replica of every service and of the gateway. Only
    /// meaningful on PostgreSQL and Redis.
    pub async fn replica(&self) -> Self {
        // The folder belongs to the first app: this one must not remove it.
        Self::start(self.settings.clone(), TempDir(PathBuf::new())).await
    }

    /// Stops every service (what was in flight in the process is lost, as in a crash of
    /// everything but the databases and Redis) and starts them again on the same data, after
    /// `configure` adjusts the settings.
    pub async fn restart_with(mut self, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        let dir = std::mem::replace(&mut self._dir, TempDir(PathBuf::new()));
        self.halt().await;
        Self::start(settings, dir).await
    }

    async fn start(settings: Settings, dir: TempDir) -> Self {
        let platform =
            Platform::build(&settings, &[], Listen::Ephemeral).await.expect("platform builds");
        let catalog_url =
            format!("http://{}", platform.addr(Service::Catalog).expect("catalog runs"));
        let identity_url =
            format!("http://{}", platform.addr(Service::Identity).expect("identity runs"));
        let gateway_url = format!("http://{}", platform.gateway_addr().expect("the gateway runs"));
        let bus = platform.bus.clone();
        let catalog = platform.catalog.clone().expect("catalog state");
        let identity = platform.identity.clone().expect("identity state");
        let inventory = platform.inventory.clone().expect("inventory state");
        let payments = platform.payments.clone().expect("payments state");
        let carts = platform.carts.clone().expect("carts state");
        let orders = platform.orders.clone().expect("orders state");
        let fulfillment = platform.fulfillment.clone().expect("fulfillment state");
        let notifications = platform.notifications.clone().expect("notifications state");
        let rewards = platform.rewards.clone().expect("rewards state");
        let reporting = platform.reporting.clone().expect("reporting state");
        let payments_url =
            format!("http://{}", platform.addr(Service::Payments).expect("payments run"));
        let orders_url = format!("http://{}", platform.addr(Service::Orders).expect("orders run"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(platform.run(async move {
            let _ = rx.await;
        }));
        Self {
            gateway_url,
            catalog_url,
            identity_url,
            client: reqwest::Client::new(),
            bus,
            catalog,
            identity,
            inventory,
            payments,
            carts,
            orders,
            fulfillment,
            notifications,
            rewards,
            reporting,
            payments_url,
            orders_url,
            settings,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Stops the platform, waits for every server and relay to finish, and removes what the
    /// test left in Redis.
    pub async fn stop(mut self) {
        self.halt().await;
        // The test's Redis namespace goes with it: Redis outlives test runs.
        if let Some(url) = &self.settings.events.redis_url {
            use secrecy::ExposeSecret;
            let client = redis::Client::open(url.expose_secret()).expect("Redis URL");
            let mut conn = client.get_multiplexed_async_connection().await.expect("Redis");
            let pattern = format!("{}:*", self.settings.events.namespace);
            let keys: Vec<String> =
                redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.expect("keys");
            if !keys.is_empty() {
                let _: i64 =
                    redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.expect("deleted");
            }
        }
    }

    /// Stops a [`TestApp::replica`], leaving the shared Redis namespace to the first app.
    pub async fn stop_replica(mut self) {
        self.halt().await;
    }

    /// Stops the platform and waits for every server and relay to finish.
    async fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("platform stops within the deadline")
                .expect("platform task")
                .expect("platform ran cleanly");
        }
        // A stopped process holds no connection. On PostgreSQL, a pool left open until the
        // test ends would keep its connections: a restarted app then holds twice its share
        // while another test runs beside it, and the server (100 connections by default)
        // turns the next one away.
        for db in [
            &self.catalog.db,
            &self.identity.db,
            &self.inventory.db,
            &self.payments.db,
            &self.carts.db,
            &self.orders.db,
            &self.fulfillment.db,
            &self.notifications.db,
            &self.rewards.db,
            &self.reporting.db,
        ] {
            let _ = db.close_by_ref().await;
        }
    }

    async fn post(&self, base: &str, query: &str, variables: Value, token: Option<&str>) -> Value {
        let body = json!({ "query": query, "variables": variables });
        post_json(&self.client, &format!("{base}/graphql"), &body, token).await
    }

    /// A GraphQL operation through the gateway.
    pub async fn gateway(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        self.post(&self.gateway_url, query, variables, token).await
    }

    /// A GraphQL operation against the catalog.
    pub async fn catalog(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        self.post(&self.catalog_url, query, variables, token).await
    }

    /// A GraphQL operation against payments.
    pub async fn payments(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        self.post(&self.payments_url, query, variables, token).await
    }

    /// A GraphQL operation against identity.
    pub async fn identity(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        self.post(&self.identity_url, query, variables, token).await
    }

    /// Signs up a new customer; returns the full auth payload.
    pub async fn sign_up(&self, email: &str) -> Value {
        let response = self
            .identity(
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken refreshToken customer { id } } }",
                json!({ "input": { "email": email, "password": "a-good-password-1", "name": "Test Customer" } }),
                None,
            )
            .await;
        assert_no_errors(&response);
        response["data"]["signUp"].clone()
    }

    /// A new customer's access token and id.
    pub async fn customer_token(&self, email: &str) -> (String, String) {
        let payload = self.sign_up(email).await;
        (
            payload["accessToken"].as_str().expect("token").to_string(),
            payload["customer"]["id"].as_str().expect("id").to_string(),
        )
    }

    /// The configured first administrator's access token.
    pub async fn admin_token(&self) -> String {
        let response = self
            .identity(
                "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { accessToken } }",
                json!({ "e": ADMIN_EMAIL, "p": ADMIN_PASSWORD }),
                None,
            )
            .await;
        assert_no_errors(&response);
        response["data"]["signIn"]["accessToken"].as_str().expect("token").to_string()
    }

    /// Waits (with a deadline, no sleeping) for an event of `event_type` on the bus.
    pub async fn next_event(
        stream: &mut futures::stream::BoxStream<'static, EventEnvelope>,
        event_type: &str,
    ) -> EventEnvelope {
        use futures::StreamExt;
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let event = stream.next().await.expect("bus open");
                if event.event_type == event_type {
                    assert_follows_schema(&event);
                    return event;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {event_type} event within the deadline"))
    }
}

/// POSTs a JSON body (with a bearer token when given) and returns the JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    token: Option<&str>,
) -> Value {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent").json().await.expect("JSON response")
}

/// GETs a URL and returns the JSON answer.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.expect("request sent").json().await.expect("JSON response")
}

/// Panics with the errors when a response has any.
pub fn assert_no_errors(response: &Value) {
    assert!(response.get("errors").is_none(), "unexpected errors: {response:#}");
}

/// The `extensions.code` of the first error.
pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code: {response:#}"))
}

/// Checks an event against its documented JSON Schema (`schema/events/`): the envelope's
/// fields, and the payload's required properties with their types, enums, bounds and the
/// shared money shape. (A structural check of the subset of JSON Schema those files use.)
pub fn assert_follows_schema(event: &EventEnvelope) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/events");
    let load = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|_| panic!("schema/events/{name} documents this event"));
        serde_json::from_str(&text).expect("schema is JSON")
    };
    let envelope = serde_json::to_value(event).unwrap();
    check(&envelope, &load("envelope.json"), &load, "envelope");
    let name = format!("{}.v{}.json", event.event_type, event.version);
    check(&event.payload, &load(&name), &load, &name);
}

fn check(
    value: &serde_json::Value,
    schema: &serde_json::Value,
    load: &dyn Fn(&str) -> serde_json::Value,
    at: &str,
) {
    if let Some(reference) = schema["$ref"].as_str() {
        return check(value, &load(reference), load, at);
    }
    let types: Vec<&str> = match &schema["type"] {
        serde_json::Value::String(t) => vec![t.as_str()],
        serde_json::Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).collect(),
        _ => vec![],
    };
    let kind = match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    };
    assert!(
        types.is_empty()
            || types.contains(&kind)
            || (kind == "integer" && types.contains(&"number")),
        "{at}: {kind} where the schema says {types:?}"
    );
    if let Some(allowed) = schema["enum"].as_array() {
        assert!(allowed.contains(value), "{at}: {value} is not one of {allowed:?}");
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_i64(), value.as_i64()) {
        assert!(n >= min, "{at}: {n} below {min}");
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_i64(), value.as_i64()) {
        assert!(n <= max, "{at}: {n} above {max}");
    }
    if let (Some(pattern), Some(text)) = (schema["pattern"].as_str(), value.as_str()) {
        let pattern = regex::Regex::new(pattern).expect("schema pattern compiles");
        assert!(pattern.is_match(text), "{at}: {text:?} does not match {pattern}");
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let key = required.as_str().unwrap_or_default();
        assert!(value.get(key).is_some(), "{at}: `{key}` is required");
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (key, property) in properties {
            if let Some(inner) = value.get(key) {
                check(inner, property, load, &format!("{at}.{key}"));
            }
        }
    }
    if schema["additionalProperties"] == serde_json::Value::Bool(false) {
        let known = schema["properties"].as_object();
        for key in value.as_object().into_iter().flat_map(|o| o.keys()) {
            assert!(known.is_some_and(|k| k.contains_key(key)), "{at}: `{key}` is not documented");
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            check(item, items, load, &format!("{at}[{i}]"));
        }
    }
}
