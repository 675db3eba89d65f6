//! Talking to subgraphs: one pooled keep-alive HTTP client, a timeout per subgraph, and the
//! caller's `Authorization`, request id and W3C trace context passed along.

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

type SharedFetch = Shared<BoxFuture<'static, Result<SubgraphResponse, TransportError>>>;

/// The subgraph client.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    urls: Arc<HashMap<String, String>>,
    timeouts: Arc<HashMap<String, Duration>>,
    default_timeout: Duration,
    in_flight: Arc<Mutex<HashMap<u64, SharedFetch>>>,
}

impl Transport {
    /// A client for the subgraphs at `urls` (name → URL).
    pub fn new(
        urls: HashMap<String, String>,
        default_timeout: Duration,
        timeouts: HashMap<String, Duration>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        Self {
            client,
            urls: Arc::new(urls),
            timeouts: Arc::new(timeouts),
            default_timeout,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        }
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
        if !request.dedupe {
            return self.send(url, timeout, body, request.headers.clone()).await;
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
                    let fut: BoxFuture<'static, _> = Box::pin(async move {
                        let result = this.send(url, timeout, body, headers).await;
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
        url: String,
        timeout: Duration,
        body: Vec<u8>,
        h: ForwardedHeaders,
    ) -> Result<SubgraphResponse, TransportError> {
        let mut http = self
            .client
            .post(&url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json, application/json")
            .body(body);
        for (name, value) in [
            ("authorization", &h.authorization),
            ("x-request-id", &h.request_id),
            ("traceparent", &h.traceparent),
            ("x-forwarded-for", &h.forwarded_for),
        ] {
            if let Some(value) = value {
                http = http.header(name, value.clone());
            }
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

    async fn fire(dedupe: bool) -> usize {
        let (url, count, release) = held_subgraph().await;
        let transport = Transport::new(
            HashMap::from([("s".to_string(), url)]),
            Duration::from_secs(10),
            HashMap::new(),
        );
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
        let transport = Transport::new(
            HashMap::from([("s".to_string(), url)]),
            Duration::from_secs(10),
            HashMap::new(),
        );
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
}
