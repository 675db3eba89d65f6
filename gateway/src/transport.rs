//! Talking to subgraphs: one pooled keep-alive HTTP client, a timeout per subgraph, and the
//! caller's `Authorization`, request id and W3C trace context passed along. A subgraph served
//! by the gateway's own process is called in process: the same request and answer, handed to
//! its router without a connection.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use axum::body::Bytes;
use axum::http::HeaderValue;

/// Headers forwarded from the client's request to every subgraph fetch.
#[derive(Debug, Clone, Default)]
pub struct ForwardedHeaders {
    /// The caller's `Authorization`, forwarded so subgraphs verify it themselves.
    pub authorization: Option<HeaderValue>,
    /// `x-request-id`: the client's, or one made up by the gateway.
    pub request_id: Option<HeaderValue>,
    /// W3C `traceparent`.
    pub traceparent: Option<HeaderValue>,
    /// `x-forwarded-for`: the client's address, so subgraphs can rate-limit per client.
    pub forwarded_for: Option<HeaderValue>,
}

impl ForwardedHeaders {
    /// The headers that are set, by name, as every fetch passes them on.
    fn present(&self) -> impl Iterator<Item = (&'static str, &HeaderValue)> {
        [
            ("authorization", &self.authorization),
            ("x-request-id", &self.request_id),
            ("traceparent", &self.traceparent),
            ("x-forwarded-for", &self.forwarded_for),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_ref()?)))
    }
}

/// One fetch.
pub struct SubgraphRequest<'a> {
    /// Subgraph name.
    pub service: &'a str,
    /// The GraphQL request body (`query` and `variables`), already JSON.
    pub body: Vec<u8>,
    /// Headers to forward.
    pub headers: &'a ForwardedHeaders,
    /// Share the answer with identical fetches already in flight (queries only).
    pub dedupe: bool,
}

/// A subgraph's HTTP answer: its status and body, unparsed (each execution parses its own
/// copy into values that borrow from the body; deduplicated fetches share the bytes).
#[derive(Debug, Clone)]
pub struct SubgraphResponse {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// Why a fetch produced no GraphQL response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The plan names a subgraph the supergraph has no URL for.
    #[error("unknown subgraph")]
    UnknownSubgraph,
    /// No answer within the subgraph's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Connection refused, reset, …
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// An HTTP status without a GraphQL body.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// A body that is not a GraphQL response.
    #[error("sent an invalid response: {0}")]
    InvalidResponse(String),
}

/// Why the subgraph client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportConfigError {
    /// A per-subgraph setting names a subgraph the supergraph does not have.
    #[error("a subgraph timeout is set for `{0}`, which the supergraph does not have")]
    UnknownSubgraph(String),
    /// A subgraph served in process that the supergraph does not have.
    #[error("a subgraph served in process is given as `{0}`, which the supergraph does not have")]
    UnknownLocal(String),
    /// The HTTP client could not be built.
    #[error("building the subgraph HTTP client: {0}")]
    Client(String),
}

type SharedFetch = Shared<BoxFuture<'static, Result<SubgraphResponse, TransportError>>>;

/// How the gateway talks to its subgraphs.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// How long to wait for a subgraph that has no timeout of its own.
    pub default_timeout: Duration,
    /// Timeouts of particular subgraphs, by name.
    pub timeouts: HashMap<String, Duration>,
    /// Ask subgraphs for compressed responses (gzip or Brotli) and decompress them.
    pub compression: bool,
    /// Subgraphs served by this process, by name (each answering at `/graphql`, as ours do):
    /// their routers are called directly. On loopback every fetch costs two TCP sends through
    /// the kernel and an HTTP encoding and parse at each end, on the way of every request; in
    /// process it costs a function call.
    pub local: HashMap<String, axum::Router>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(30),
            timeouts: HashMap::new(),
            compression: true,
            local: HashMap::new(),
        }
    }
}

/// The subgraph client.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    urls: Arc<HashMap<String, String>>,
    local: Arc<HashMap<String, axum::Router>>,
    timeouts: Arc<HashMap<String, Duration>>,
    default_timeout: Duration,
    in_flight: Arc<Mutex<HashMap<u64, SharedFetch>>>,
}

impl Transport {
    /// A client for the subgraphs at `urls` (name → URL). A timeout given for a subgraph
    /// the supergraph does not have is refused: it is a mistake in configuration.
    pub fn new(
        urls: HashMap<String, String>,
        options: TransportOptions,
    ) -> Result<Self, TransportConfigError> {
        if let Some(unknown) = options.timeouts.keys().find(|name| !urls.contains_key(*name)) {
            return Err(TransportConfigError::UnknownSubgraph(unknown.clone()));
        }
        if let Some(unknown) = options.local.keys().find(|name| !urls.contains_key(*name)) {
            return Err(TransportConfigError::UnknownLocal(unknown.clone()));
        }
        // Without compression the client must not advertise it: reqwest's defaults follow its
        // enabled features.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .gzip(options.compression)
            .brotli(options.compression)
            .build()
            .map_err(|e| TransportConfigError::Client(e.to_string()))?;
        Ok(Self {
            client,
            urls: Arc::new(urls),
            local: Arc::new(options.local),
            timeouts: Arc::new(options.timeouts),
            default_timeout: options.default_timeout,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Sends one fetch; identical in-flight queries (same subgraph, body and credentials)
    /// share one subgraph request.
    pub async fn execute(
        &self,
        request: SubgraphRequest<'_>,
    ) -> Result<SubgraphResponse, TransportError> {
        let url = self.urls.get(request.service).ok_or(TransportError::UnknownSubgraph)?.clone();
        let timeout = self.timeouts.get(request.service).copied().unwrap_or(self.default_timeout);
        let body = request.body;
        let service = request.service;
        if !request.dedupe {
            return self.send(service, url, timeout, body, request.headers.clone()).await;
        }
        let key = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            request.service.hash(&mut hasher);
            body.hash(&mut hasher);
            request.headers.authorization.as_ref().map(|h| h.as_bytes()).hash(&mut hasher);
            hasher.finish()
        };
        let shared = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            match in_flight.get(&key) {
                Some(existing) => existing.clone(),
                None => {
                    let this = self.clone();
                    let headers = request.headers.clone();
                    let service = service.to_string();
                    let fut: BoxFuture<'static, _> = Box::pin(async move {
                        let result = this.send(&service, url, timeout, body, headers).await;
                        // Whoever drives the fetch to its end retires it, so a finished answer
                        // is never handed to a later request (even if the first caller left).
                        this.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                        result
                    });
                    let shared = fut.shared();
                    in_flight.insert(key, shared.clone());
                    shared
                }
            }
        };
        shared.await
    }

    async fn send(
        &self,
        service: &str,
        url: String,
        timeout: Duration,
        body: Vec<u8>,
        h: ForwardedHeaders,
    ) -> Result<SubgraphResponse, TransportError> {
        if let Some(router) = self.local.get(service) {
            return call_local(router.clone(), timeout, body, &h).await;
        }
        let mut http = self
            .client
            .post(&url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json, application/json")
            .body(body);
        for (name, value) in h.present() {
            http = http.header(name, value.clone());
        }
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                TransportError::Timeout(timeout)
            } else {
                TransportError::Unreachable(e.to_string())
            }
        };
        let response = http.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(failed)?;
        Ok(SubgraphResponse { status, body })
    }
}

/// One fetch from a subgraph served in process: the request the HTTP client would send, as
/// if from loopback, and the whole answer.
async fn call_local(
    router: axum::Router,
    timeout: Duration,
    body: Vec<u8>,
    h: &ForwardedHeaders,
) -> Result<SubgraphResponse, TransportError> {
    use tower::ServiceExt;
    let mut request = axum::http::Request::post("/graphql")
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json, application/json");
    for (name, value) in h.present() {
        request = request.header(name, value.clone());
    }
    let mut request = request
        .body(axum::body::Body::from(body))
        .map_err(|e| TransportError::Unreachable(e.to_string()))?;
    // What a served router learns of the connection: here, that it is local.
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    let exchange = async {
        let Ok(response) = router.oneshot(request).await;
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| TransportError::InvalidResponse(e.to_string()))?;
        Ok(SubgraphResponse { status, body })
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| TransportError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A subgraph that counts requests and answers only when released.
    async fn held_subgraph() -> (String, Arc<AtomicUsize>, Arc<tokio::sync::Semaphore>) {
        let count = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let (c, r) = (count.clone(), release.clone());
        let app = axum::Router::new().route(
            "/graphql",
            axum::routing::post(move || {
                let (c, r) = (c.clone(), r.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    let _permit = r.acquire().await;
                    axum::Json(serde_json::json!({ "data": { "ok": true } }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/graphql", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, count, release)
    }

    fn client(url: String, options: TransportOptions) -> Transport {
        Transport::new(HashMap::from([("s".to_string(), url)]), options).unwrap()
    }

    fn request(headers: &ForwardedHeaders) -> SubgraphRequest<'_> {
        let body = br#"{"query":"{ ok }"}"#.to_vec();
        SubgraphRequest { service: "s", body, headers, dedupe: false }
    }

    #[tokio::test]
    async fn each_subgraph_can_have_its_own_timeout() {
        let (url, _count, _never_released) = held_subgraph().await;
        let short = Duration::from_millis(100);
        let options = TransportOptions {
            default_timeout: Duration::from_secs(600),
            timeouts: HashMap::from([("s".to_string(), short)]),
            compression: true,
            local: HashMap::new(),
        };
        let headers = ForwardedHeaders::default();
        let result = client(url, options).execute(request(&headers)).await;
        assert!(matches!(result, Err(TransportError::Timeout(t)) if t == short), "{result:?}");
        // A timeout for a subgraph the supergraph lacks is a configuration mistake.
        let options = TransportOptions {
            timeouts: HashMap::from([("typo".to_string(), short)]),
            ..TransportOptions::default()
        };
        let refused = Transport::new(HashMap::from([("s".to_string(), String::new())]), options);
        assert!(
            matches!(refused, Err(TransportConfigError::UnknownSubgraph(name)) if name == "typo")
        );
    }

    /// A subgraph that compresses when asked, and records what it was asked.
    async fn compressing_subgraph() -> (String, Arc<Mutex<Option<String>>>) {
        let asked = Arc::new(Mutex::new(None));
        let seen = asked.clone();
        let app = axum::Router::new()
            .route(
                "/graphql",
                axum::routing::post(move |headers: axum::http::HeaderMap| {
                    let seen = seen.clone();
                    async move {
                        let encoding = headers.get("accept-encoding").and_then(|v| v.to_str().ok());
                        *seen.lock().unwrap() = encoding.map(str::to_string);
                        let filler = "x".repeat(4096);
                        axum::Json(serde_json::json!({ "data": { "ok": filler } }))
                    }
                }),
            )
            .layer(tower_http::compression::CompressionLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/graphql", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, asked)
    }

    #[tokio::test]
    async fn compressed_answers_are_asked_for_and_decompressed() {
        let headers = ForwardedHeaders::default();
        for compression in [true, false] {
            let (url, asked) = compressing_subgraph().await;
            let options = TransportOptions { compression, ..TransportOptions::default() };
            let response = client(url, options).execute(request(&headers)).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(body["data"]["ok"].as_str().map(str::len), Some(4096));
            let asked = asked.lock().unwrap().clone().unwrap_or_default();
            assert_eq!(asked.contains("gzip"), compression, "accept-encoding: {asked:?}");
        }
    }

    async fn fire(dedupe: bool) -> usize {
        let (url, count, release) = held_subgraph().await;
        let transport = client(url, TransportOptions::default());
        let headers = ForwardedHeaders::default();
        let calls = (0..5).map(|_| {
            transport.execute(SubgraphRequest {
                service: "s",
                body: br#"{"query":"{ ok }"}"#.to_vec(),
                headers: &headers,
                dedupe,
            })
        });
        let all = futures::future::join_all(calls);
        let releaser = async {
            // Release once the expected requests have arrived (polled, with a deadline).
            let expected = if dedupe { 1 } else { 5 };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while count.load(Ordering::SeqCst) < expected && tokio::time::Instant::now() < deadline
            {
                tokio::task::yield_now().await;
            }
            release.add_permits(5);
        };
        let (results, ()) = tokio::join!(all, releaser);
        assert!(results.iter().all(|r| r.as_ref().is_ok_and(|r| r.body.starts_with(b"{\"data\""))));
        count.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn identical_queries_in_flight_share_one_subgraph_request() {
        assert_eq!(fire(true).await, 1);
        assert_eq!(fire(false).await, 5);
    }

    #[tokio::test]
    async fn a_finished_fetch_is_not_reused_by_later_requests() {
        let (url, count, release) = held_subgraph().await;
        release.add_permits(10);
        let transport = client(url, TransportOptions::default());
        let headers = ForwardedHeaders::default();
        for expected in 1..=2 {
            let request = SubgraphRequest {
                service: "s",
                body: br#"{"query":"{ ok }"}"#.to_vec(),
                headers: &headers,
                dedupe: true,
            };
            assert!(transport.execute(request).await.is_ok());
            assert_eq!(
                count.load(Ordering::SeqCst),
                expected,
                "each later request asks the subgraph again"
            );
        }
    }

    /// A subgraph router that answers with what it received: the forwarded headers, the
    /// body, and the address it believes the request came from.
    fn echoing_router() -> axum::Router {
        axum::Router::new().route(
            "/graphql",
            axum::routing::post(
                |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
                    std::net::SocketAddr,
                >,
                 headers: axum::http::HeaderMap,
                 body: String| async move {
                    let header = |name: &str| {
                        headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
                    };
                    let echo = serde_json::json!({
                        "authorization": header("authorization"),
                        "requestId": header("x-request-id"),
                        "forwardedFor": header("x-forwarded-for"),
                        "contentType": header("content-type"),
                        "peerIsLoopback": peer.ip().is_loopback(),
                        "body": body,
                    });
                    (
                        axum::http::StatusCode::ACCEPTED,
                        axum::Json(serde_json::json!({ "data": echo })),
                    )
                },
            ),
        )
    }

    #[tokio::test]
    async fn a_subgraph_served_in_process_gets_the_same_request_without_a_connection() {
        let options = TransportOptions {
            local: HashMap::from([("s".to_string(), echoing_router())]),
            ..TransportOptions::default()
        };
        // The URL leads nowhere: only the in-process call can answer.
        let transport = client("http://127.0.0.1:1/graphql".to_string(), options);
        let headers = ForwardedHeaders {
            authorization: Some(HeaderValue::from_static("Bearer t0ken")),
            request_id: Some(HeaderValue::from_static("req-1")),
            traceparent: None,
            forwarded_for: Some(HeaderValue::from_static("203.0.113.9")),
        };
        let response = transport.execute(request(&headers)).await.unwrap();
        assert_eq!(response.status, 202, "the subgraph's own status");
        let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        let echo = &echo["data"];
        assert_eq!(echo["authorization"], "Bearer t0ken");
        assert_eq!(echo["requestId"], "req-1");
        assert_eq!(echo["forwardedFor"], "203.0.113.9");
        assert_eq!(echo["contentType"], "application/json");
        assert_eq!(echo["peerIsLoopback"], true);
        assert_eq!(echo["body"], r#"{"query":"{ ok }"}"#);

        // A router given for a subgraph the supergraph lacks is a configuration mistake.
        let options = TransportOptions {
            local: HashMap::from([("typo".to_string(), echoing_router())]),
            ..TransportOptions::default()
        };
        let refused = Transport::new(HashMap::from([("s".to_string(), String::new())]), options);
        assert!(matches!(refused, Err(TransportConfigError::UnknownLocal(name)) if name == "typo"));
    }

    #[tokio::test]
    async fn a_subgraph_served_in_process_is_held_to_its_timeout() {
        let stuck = axum::Router::new()
            .route("/graphql", axum::routing::post(std::future::pending::<String>));
        let short = Duration::from_millis(50);
        let options = TransportOptions {
            default_timeout: short,
            local: HashMap::from([("s".to_string(), stuck)]),
            ..TransportOptions::default()
        };
        let transport = client("http://127.0.0.1:1/graphql".to_string(), options);
        let headers = ForwardedHeaders::default();
        let result = transport.execute(request(&headers)).await;
        assert!(matches!(result, Err(TransportError::Timeout(t)) if t == short), "{result:?}");
    }
}
