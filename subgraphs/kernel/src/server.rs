//! The HTTP server every subgraph runs on: GraphQL over HTTP at `/graphql` (POST, and GET for
//! queries), subscriptions over WebSocket at the same address (`graphql-transport-ws` and the
//! legacy `graphql-ws`; the token comes from the `connection_init` payload or the upgrade
//! request's `Authorization` header), `GET /health` (the process answers) and `GET /ready`
//! (its database answers).
//!
//! [`run`] is a function of a bound listener, an application and a shutdown future, so tests
//! bind `127.0.0.1:0`, spawn the real server and talk to it over the wire.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_graphql::Executor;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::auth::{Authentication, TokenVerifier};

/// The network address of the client that sent a request (for rate limits and audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// What the GraphQL endpoint needs besides the schema.
#[derive(Clone)]
pub struct EndpointOptions {
    /// Verifies bearer tokens.
    pub verifier: Arc<TokenVerifier>,
    /// Databases that must answer for `/ready` to say yes.
    pub databases: Vec<DatabaseConnection>,
    /// Take the client address from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Largest accepted request body in bytes.
    pub body_limit_bytes: usize,
}

struct Endpoint<E> {
    executor: E,
    options: EndpointOptions,
}

/// The router of one subgraph: `/graphql`, `/health`, `/ready`.
pub fn subgraph_router<E: Executor>(executor: E, options: EndpointOptions) -> Router {
    let body_limit = options.body_limit_bytes;
    let state = Arc::new(Endpoint { executor, options });
    Router::new()
        .route("/graphql", get(graphql_get::<E>).post(graphql::<E>))
        .route("/health", get(health))
        .route("/ready", get(ready::<E>))
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
}

async fn graphql<E: Executor>(
    State(endpoint): State<Arc<Endpoint<E>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let options = &endpoint.options;
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let authentication = options.verifier.authenticate(authorization);
    let client = client_address(&headers, peer, options.trust_forwarded_for);
    let request = request.into_inner().data(authentication).data(client);
    endpoint.executor.execute(request).await.into()
}

/// `GET /graphql`: a WebSocket upgrade for subscriptions, else a query in the URL.
async fn graphql_get<E: Executor>(
    State(endpoint): State<Arc<Endpoint<E>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    protocol: Result<GraphQLProtocol, StatusCode>,
    request: Request,
) -> Response {
    let (Ok(upgrade), Ok(protocol)) = (upgrade, protocol) else {
        return match GraphQLRequest::from_request(request, &()).await {
            Ok(query) => {
                graphql(State(endpoint), ConnectInfo(peer), headers, query).await.into_response()
            }
            Err(rejection) => rejection.into_response(),
        };
    };
    let options = &endpoint.options;
    let verifier = options.verifier.clone();
    let client = client_address(&headers, peer, options.trust_forwarded_for);
    let header_token =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let executor = endpoint.executor.clone();
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| async move {
        use futures::{SinkExt, StreamExt};
        let (sink, stream) = socket.split();
        // A refused `connection_init` closes with 4403, as graphql-transport-ws asks, not with
        // the generic protocol error.
        let sink = sink.with(|message: Message| async move {
            Ok::<_, axum::Error>(match message {
                Message::Close(Some(frame))
                    if frame.code == 1002 && frame.reason.starts_with(FORBIDDEN) =>
                {
                    Message::Close(Some(CloseFrame { code: 4403, reason: frame.reason }))
                }
                other => other,
            })
        });
        GraphQLWebSocket::new_with_pair(sink, stream, executor, protocol)
            .on_connection_init(move |payload| async move {
                let token = token_in(&payload).or(header_token);
                let authentication = verifier.authenticate(token.as_deref());
                if let Authentication::Rejected(why) = &authentication {
                    return Err(async_graphql::Error::new(format!("{FORBIDDEN} {why}")));
                }
                let mut data = async_graphql::Data::default();
                data.insert(authentication);
                data.insert(client);
                Ok(data)
            })
            .serve()
            .await
    })
}

/// How a refused `connection_init` begins its close reason.
const FORBIDDEN: &str = "Forbidden:";

/// The `Authorization` value a `connection_init` payload carries, in the shapes clients send:
/// `{ "Authorization": "Bearer …" }` (either case), `{ "headers": { "Authorization": … } }`,
/// or `{ "token": "…" }`.
pub fn token_in(payload: &serde_json::Value) -> Option<String> {
    let field = |object: &serde_json::Value| {
        object
            .get("Authorization")
            .or_else(|| object.get("authorization"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    field(payload)
        .or_else(|| payload.get("headers").and_then(field))
        .or_else(|| payload.get("token").and_then(|v| v.as_str()).map(|t| format!("Bearer {t}")))
}

fn client_address(
    headers: &HeaderMap,
    peer: SocketAddr,
    trust_forwarded_for: bool,
) -> ClientAddress {
    if trust_forwarded_for {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ClientAddress(ip);
        }
    }
    ClientAddress(peer.ip())
}

async fn health() -> &'static str {
    "ok"
}

async fn ready<E: Executor>(State(endpoint): State<Arc<Endpoint<E>>>) -> impl IntoResponse {
    for db in &endpoint.options.databases {
        if !crate::db::ping(db).await {
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
        }
    }
    (StatusCode::OK, "ready")
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
