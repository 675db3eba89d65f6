//! Calling another context over HTTP, the way an anti-corruption layer should: answers cached
//! as the server allows (`Cache-Control: max-age`, revalidated with `ETag` /
//! `If-None-Match`, nothing kept for `no-store`), idempotent calls retried with backoff, and a
//! circuit breaker that stops calling a context that keeps failing until it has had time to
//! recover. Each context wraps this in a client that speaks its own model. A context running
//! in the same process is called through its router, with all of the above unchanged.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderName, IF_NONE_MATCH};
use axum::http::{HeaderMap, Method, StatusCode};

/// Why a call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The breaker is open: the other context failed repeatedly just now.
    #[error("{0} is unavailable (circuit open)")]
    CircuitOpen(String),
    /// No answer after every attempt.
    #[error("{0} did not answer: {1}")]
    Unreachable(String, String),
    /// The other side has no such thing (404).
    #[error("{0} has no such resource")]
    NotFound(String),
    /// An answer that is not what was asked for (another 4xx, or an unreadable body).
    #[error("{0} answered unexpectedly: {1}")]
    Unexpected(String, String),
    /// The other side understood the request and refused it (422), saying why in words meant
    /// for the person who asked.
    #[error("{0} refused: {1}")]
    Refused(String, String),
}

/// Tuning of a [`ServiceClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Attempts per idempotent call (the first included).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Consecutive failed calls that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before one trial call.
    pub open_for: Duration,
    /// Cached answers kept.
    pub cache_entries: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_millis(25),
            timeout: Duration::from_secs(5),
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
            cache_entries: 1024,
        }
    }
}

struct Cached {
    body: Bytes,
    etag: Option<String>,
    fresh_until: Instant,
}

#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// Where another context answers.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// Over HTTP, at this base URL (e.g. `http://127.0.0.1:4001`).
    Url(String),
    /// In this process: requests go to the context's router without a connection (the
    /// same requests and answers, with no TCP send through the kernel and no HTTP encoding
    /// at either end).
    Local(axum::Router),
}

impl From<&str> for Endpoint {
    fn from(base: &str) -> Self {
        Endpoint::Url(base.to_string())
    }
}

impl From<String> for Endpoint {
    fn from(base: String) -> Self {
        Endpoint::Url(base)
    }
}

/// How requests reach the other context.
enum Link {
    Http { client: reqwest::Client, base: String },
    Local(axum::Router),
}

/// One answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client of one other context.
pub struct ServiceClient {
    name: String,
    link: Link,
    options: ClientOptions,
    cache: Mutex<lru::LruCache<String, Cached>>,
    breaker: Mutex<Breaker>,
}

/// What `Cache-Control` allows: keep the answer at all, and for how long without asking.
fn cache_policy(value: Option<&str>) -> (bool, Duration) {
    let mut store = true;
    let mut max_age = Duration::ZERO;
    for directive in value.unwrap_or("").split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" {
            store = false;
        } else if let Some(age) = lower.strip_prefix("max-age=") {
            max_age = Duration::from_secs(age.parse().unwrap_or(0));
        } else if lower == "no-cache" {
            max_age = Duration::ZERO;
        }
    }
    (store, max_age)
}

impl ServiceClient {
    /// A client of the context `name` at `endpoint` (a base URL such as
    /// `http://127.0.0.1:4001`, or its router when it runs in this process).
    pub fn new(name: &str, endpoint: impl Into<Endpoint>, options: ClientOptions) -> Self {
        let link = match endpoint.into() {
            Endpoint::Url(base) => Link::Http {
                client: reqwest::Client::builder()
                    .timeout(options.timeout)
                    .pool_max_idle_per_host(32)
                    .build()
                    .unwrap_or_default(),
                base: base.trim_end_matches('/').to_string(),
            },
            Endpoint::Local(router) => Link::Local(router),
        };
        let entries = NonZeroUsize::new(options.cache_entries).unwrap_or(NonZeroUsize::MIN);
        Self {
            name: name.to_string(),
            link,
            options,
            cache: Mutex::new(lru::LruCache::new(entries)),
            breaker: Mutex::default(),
        }
    }

    /// GETs `path` (with its query) and reads the JSON answer: from the cache while fresh,
    /// revalidated once stale, retried when the other side fails.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, CallError> {
        let body = self.get(path).await?;
        serde_json::from_slice(&body).map_err(|e| {
            CallError::Unexpected(self.name.clone(), format!("unreadable answer: {e}"))
        })
    }

    /// [`Self::get_json`], with a 404 read as `None`: the thing asked for does not exist.
    pub async fn find_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, CallError> {
        match self.get_json(path).await {
            Ok(found) => Ok(Some(found)),
            Err(CallError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// `PUT`s `body` as JSON and reads the JSON answer. Only for idempotent requests (the
    /// same `PUT` twice has the effect of one): it is retried like a `GET`. A `422` is
    /// [`CallError::Refused`] with the answer's text.
    pub async fn put_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| CallError::Unexpected(self.name.clone(), e.to_string()))?;
        let answer = self.send(Method::PUT, path, Some(body)).await?;
        serde_json::from_slice(&answer)
            .map_err(|e| CallError::Unexpected(self.name.clone(), e.to_string()))
    }

    /// `DELETE`s `path` (idempotent, retried); a `404` counts as done.
    pub async fn delete(&self, path: &str) -> Result<(), CallError> {
        match self.send(Method::DELETE, path, None).await {
            Ok(_) | Err(CallError::NotFound(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// One request and its whole answer, over HTTP or in process; `Err` when there was no
    /// answer (unreachable, timed out, cut off).
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        etag: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Answer, String> {
        match &self.link {
            Link::Http { client, base } => {
                let mut request = client.request(method, format!("{base}{path}"));
                if let Some(etag) = etag {
                    request = request.header(IF_NONE_MATCH, etag);
                }
                if let Some(body) = body {
                    request = request.header(CONTENT_TYPE, "application/json").body(body.to_vec());
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                let (status, headers) = (response.status(), response.headers().clone());
                let body = response.bytes().await.map_err(|e| e.to_string())?;
                Ok(Answer { status, headers, body })
            }
            Link::Local(router) => {
                use tower::ServiceExt;
                let mut request = axum::http::Request::builder().method(method).uri(path);
                if let Some(etag) = etag {
                    request = request.header(IF_NONE_MATCH, etag);
                }
                if body.is_some() {
                    request = request.header(CONTENT_TYPE, "application/json");
                }
                let body = body.map_or_else(axum::body::Body::empty, |b| b.to_vec().into());
                let mut request = request.body(body).map_err(|e| e.to_string())?;
                // What a served router learns of the connection: here, that it is local.
                let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                let exchange = async {
                    let Ok(response) = router.clone().oneshot(request).await;
                    let (parts, body) = response.into_parts();
                    let body =
                        axum::body::to_bytes(body, usize::MAX).await.map_err(|e| e.to_string())?;
                    Ok(Answer { status: parts.status, headers: parts.headers, body })
                };
                tokio::time::timeout(self.options.timeout, exchange)
                    .await
                    .map_err(|_| format!("no answer within {:?}", self.options.timeout))?
            }
        }
    }

    /// An uncached idempotent call, with the `GET`'s retries and breaker.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, CallError> {
        self.admit()?;
        let mut wait = self.options.backoff;
        let mut last_error = String::new();
        for attempt in 1..=self.options.attempts.max(1) {
            match self.exchange(method.clone(), path, None, body.as_deref()).await {
                Ok(answer) if answer.status.is_success() => {
                    self.succeeded();
                    return Ok(answer.body);
                }
                Ok(answer) if answer.status.is_client_error() => return Err(self.refusal(answer)),
                Ok(answer) => last_error = format!("HTTP {}", answer.status),
                Err(e) => last_error = e,
            }
            if attempt < self.options.attempts {
                tracing::debug!(service = %self.name, attempt, error = %last_error, "retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        self.failed();
        Err(CallError::Unreachable(self.name.clone(), last_error))
    }

    async fn get(&self, path: &str) -> Result<Bytes, CallError> {
        let etag = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(path) {
                Some(hit) if hit.fresh_until > Instant::now() => return Ok(hit.body.clone()),
                Some(hit) => hit.etag.clone(),
                None => None,
            }
        };
        self.admit()?;
        let mut wait = self.options.backoff;
        let mut last_error = String::new();
        for attempt in 1..=self.options.attempts.max(1) {
            match self.exchange(Method::GET, path, etag.as_deref(), None).await {
                Ok(answer) if answer.status == StatusCode::NOT_MODIFIED => {
                    self.succeeded();
                    let policy = cache_policy(answer.header(CACHE_CONTROL));
                    let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(hit) = cache.get_mut(path) {
                        hit.fresh_until = Instant::now() + policy.1;
                        return Ok(hit.body.clone());
                    }
                    last_error = "304 for an answer no longer cached".into();
                }
                Ok(answer) if answer.status.is_success() => {
                    self.succeeded();
                    let policy = cache_policy(answer.header(CACHE_CONTROL));
                    let new_etag = answer.header(ETAG).map(str::to_string);
                    let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    if policy.0 && (new_etag.is_some() || !policy.1.is_zero()) {
                        let fresh_until = Instant::now() + policy.1;
                        let entry =
                            Cached { body: answer.body.clone(), etag: new_etag, fresh_until };
                        cache.put(path.to_string(), entry);
                    } else {
                        cache.pop(path);
                    }
                    return Ok(answer.body);
                }
                Ok(answer) if answer.status.is_client_error() => return Err(self.refusal(answer)),
                Ok(answer) => last_error = format!("HTTP {}", answer.status),
                Err(e) => last_error = e,
            }
            if attempt < self.options.attempts {
                tracing::debug!(service = %self.name, attempt, error = %last_error, "retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        self.failed();
        Err(CallError::Unreachable(self.name.clone(), last_error))
    }

    /// A `4xx`: the other side understood and refused. Retrying will not change that, and it
    /// says nothing about its health.
    fn refusal(&self, answer: Answer) -> CallError {
        self.succeeded();
        match answer.status {
            StatusCode::NOT_FOUND => CallError::NotFound(self.name.clone()),
            StatusCode::UNPROCESSABLE_ENTITY => CallError::Refused(
                self.name.clone(),
                String::from_utf8_lossy(&answer.body).into_owned(),
            ),
            other => CallError::Unexpected(self.name.clone(), other.to_string()),
        }
    }

    /// Refuses at once while the breaker is open; lets one call through once it has been
    /// open long enough.
    fn admit(&self) -> Result<(), CallError> {
        let mut breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match breaker.open_until {
            Some(until) if Instant::now() < until => Err(CallError::CircuitOpen(self.name.clone())),
            Some(_) => {
                // Half open: this call is the trial; others wait for its outcome's effect.
                breaker.open_until = Some(Instant::now() + self.options.open_for);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn succeeded(&self) {
        let mut breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        breaker.failures = 0;
        breaker.open_until = None;
    }

    fn failed(&self) {
        let mut breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        breaker.failures += 1;
        if breaker.failures >= self.options.failure_threshold {
            tracing::warn!(service = %self.name, failures = breaker.failures, "circuit opened");
            breaker.open_until = Some(Instant::now() + self.options.open_for);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::response::IntoResponse;

    /// A context whose answers each test shapes: counts requests, fails the first `failing`.
    fn context(
        failing: u32,
        cache_control: &'static str,
    ) -> (axum::Router, Arc<AtomicU32>, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let not_modified = Arc::new(AtomicU32::new(0));
        let (c, n) = (calls.clone(), not_modified.clone());
        let app = axum::Router::new()
            .route(
                "/prices",
                axum::routing::get(move |headers: HeaderMap| {
                    let (c, n) = (c.clone(), n.clone());
                    async move {
                        let call = c.fetch_add(1, Ordering::SeqCst) + 1;
                        if call <= failing {
                            return StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        if headers.get("if-none-match").is_some_and(|v| v == "\"v1\"") {
                            n.fetch_add(1, Ordering::SeqCst);
                            return (StatusCode::NOT_MODIFIED, [("cache-control", cache_control)])
                                .into_response();
                        }
                        ([("etag", "\"v1\""), ("cache-control", cache_control)], "{\"price\":42}")
                            .into_response()
                    }
                }),
            )
            .route(
                "/holds/{id}",
                axum::routing::put(|body: axum::Json<serde_json::Value>| async move {
                    match body["points"].as_i64() {
                        Some(points) if points <= 100 => {
                            axum::Json(serde_json::json!({ "held": points })).into_response()
                        }
                        _ => {
                            (StatusCode::UNPROCESSABLE_ENTITY, "not enough points").into_response()
                        }
                    }
                }),
            );
        (app, calls, not_modified)
    }

    /// `app` over HTTP on a free port (`local` false), or its router itself.
    async fn endpoint(app: axum::Router, local: bool) -> Endpoint {
        if local {
            return Endpoint::Local(app);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Endpoint::Url(base)
    }

    fn fast() -> ClientOptions {
        ClientOptions { backoff: Duration::from_millis(1), ..ClientOptions::default() }
    }

    /// Asks `client` for `/prices` `times` times, each answered with the price.
    async fn ask_for_prices(client: &ServiceClient, times: usize) {
        for _ in 0..times {
            let v: serde_json::Value = client.get_json("/prices").await.unwrap();
            assert_eq!(v["price"], 42);
        }
    }

    #[tokio::test]
    async fn fresh_answers_come_from_the_cache_and_stale_ones_are_revalidated() {
        for local in [false, true] {
            let (app, calls, _) = context(0, "max-age=60");
            let client = ServiceClient::new("catalog", endpoint(app, local).await, fast());
            ask_for_prices(&client, 3).await;
            assert_eq!(calls.load(Ordering::SeqCst), 1, "max-age: asked once (local: {local})");

            let (app, calls, not_modified) = context(0, "no-cache");
            let client = ServiceClient::new("catalog", endpoint(app, local).await, fast());
            ask_for_prices(&client, 3).await;
            assert_eq!(calls.load(Ordering::SeqCst), 3, "no-cache: asked every time ({local})");
            assert_eq!(
                not_modified.load(Ordering::SeqCst),
                2,
                "304 once it had the ETag ({local})"
            );
        }
    }

    #[tokio::test]
    async fn failures_are_retried_and_a_failing_service_opens_the_circuit() {
        for local in [false, true] {
            let (app, calls, _) = context(2, "no-store");
            let client = ServiceClient::new("inventory", endpoint(app, local).await, fast());
            let v: serde_json::Value = client.get_json("/prices").await.unwrap();
            assert_eq!(v["price"], 42);
            assert_eq!(calls.load(Ordering::SeqCst), 3, "two failures, then the answer ({local})");

            let (app, calls, _) = context(u32::MAX, "no-store");
            let options = ClientOptions {
                failure_threshold: 2,
                open_for: Duration::from_secs(600),
                ..fast()
            };
            let client = ServiceClient::new("inventory", endpoint(app, local).await, options);
            for _ in 0..2 {
                let failed = client.get_json::<serde_json::Value>("/prices").await;
                assert!(matches!(failed, Err(CallError::Unreachable(..))));
            }
            let asked = calls.load(Ordering::SeqCst);
            let refused = client.get_json::<serde_json::Value>("/prices").await;
            assert!(matches!(refused, Err(CallError::CircuitOpen(_))), "{refused:?}");
            assert_eq!(calls.load(Ordering::SeqCst), asked, "an open circuit does not call");
        }
    }

    #[tokio::test]
    async fn a_put_carries_its_body_and_a_refusal_brings_back_its_words() {
        for local in [false, true] {
            let (app, _, _) = context(0, "no-store");
            let client = ServiceClient::new("rewards", endpoint(app, local).await, fast());
            let held: serde_json::Value =
                client.put_json("/holds/1", &serde_json::json!({ "points": 40 })).await.unwrap();
            assert_eq!(held["held"], 40, "local: {local}");
            let refused = client
                .put_json::<_, serde_json::Value>("/holds/1", &serde_json::json!({ "points": 400 }))
                .await;
            assert_eq!(
                refused.unwrap_err(),
                CallError::Refused("rewards".into(), "not enough points".into()),
                "local: {local}"
            );
            let missing = client.find_json::<serde_json::Value>("/nothing-here").await;
            assert_eq!(missing, Ok(None), "a 404 is nothing found (local: {local})");
        }
    }

    #[test]
    fn cache_control_is_read() {
        assert_eq!(cache_policy(Some("public, max-age=30")), (true, Duration::from_secs(30)));
        assert_eq!(cache_policy(Some("no-store")), (false, Duration::ZERO));
        assert_eq!(cache_policy(Some("max-age=5, no-cache")), (true, Duration::ZERO));
        assert_eq!(cache_policy(None), (true, Duration::ZERO));
    }
}
