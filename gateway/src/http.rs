//! GraphQL over HTTP, as the GraphQL-over-HTTP specification describes it: POST with a JSON
//! body, GET for queries, `application/graphql-response+json` (with its status codes) or
//! `application/json` (always 200 once the request is well-formed), GraphiQL for browsers,
//! `/health` and `/ready`, CORS, a body size limit and graceful shutdown.

use std::sync::Arc;

use apollo_compiler::response::{GraphQLError, JsonMap};
use axum::Router;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::JwtVerifier;
use crate::live::{self, Clients, LiveLimits};
use crate::pipeline::{Gateway, GraphQLRequest, Outcome, RequestErrorKind, ResponseData};
use crate::transport::ForwardedHeaders;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// HTTP options of the gateway.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest accepted request body in bytes.
    pub body_limit_bytes: usize,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Serve GraphiQL to browsers at `GET /graphql`.
    pub graphiql: bool,
    /// Limits on subscriptions and live connections.
    pub live: LiveLimits,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            body_limit_bytes: 2 * 1024 * 1024,
            cors_origins: Vec::new(),
            graphiql: true,
            live: LiveLimits::default(),
        }
    }
}

struct AppState {
    gateway: Arc<Gateway>,
    jwt: Option<Arc<JwtVerifier>>,
    options: HttpOptions,
    clients: Arc<Clients>,
}

/// The gateway's router.
pub fn router(gateway: Arc<Gateway>, jwt: Option<JwtVerifier>, options: HttpOptions) -> Router {
    let body_limit = options.body_limit_bytes;
    let cors = cors_layer(&options.cors_origins);
    let jwt = jwt.map(Arc::new);
    let state = Arc::new(AppState { gateway, jwt, options, clients: Arc::default() });
    let router = Router::new()
        .route("/graphql", get(get_graphql).post(post_graphql))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(|| async { "ready" }))
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit));
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT]),
    )
}

/// Which response media type the client accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MediaType {
    GraphQLResponse,
    Json,
}

fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    let mut json = false;
    for part in accept.split(',') {
        let media = part.split(';').next().unwrap_or("").trim();
        match media {
            GRAPHQL_RESPONSE => return Some(MediaType::GraphQLResponse),
            "application/json" | "application/*" | "*/*" => json = true,
            _ => {}
        }
    }
    json.then_some(MediaType::Json)
}

fn error_response(status: StatusCode, media: MediaType, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message }] });
    respond(status, media, body.to_string())
}

fn respond(status: StatusCode, media: MediaType, body: impl Into<axum::body::Body>) -> Response {
    let content_type = match media {
        MediaType::GraphQLResponse => "application/graphql-response+json; charset=utf-8",
        MediaType::Json => "application/json; charset=utf-8",
    };
    (status, [(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

fn forwarded(headers: &HeaderMap, peer: SocketAddr) -> ForwardedHeaders {
    let request_id = headers
        .get("x-request-id")
        .cloned()
        .or_else(|| HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok());
    ForwardedHeaders {
        authorization: headers.get(header::AUTHORIZATION).cloned(),
        request_id,
        traceparent: headers.get("traceparent").cloned(),
        forwarded_for: HeaderValue::from_str(&peer.ip().to_string()).ok(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostBody {
    query: Option<serde_json::Value>,
    operation_name: Option<serde_json::Value>,
    variables: Option<serde_json::Value>,
}

async fn post_graphql(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let streaming = live::streaming(&headers);
    let Some(media) = negotiate(&headers).or(streaming.map(|_| MediaType::Json)) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            MediaType::Json,
            "Accept a GraphQL response media type.",
        );
    };
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json")
    {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "Send the request as application/json.",
        );
    }
    let parsed: PostBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                media,
                "The request body is not valid JSON.",
            );
        }
    };
    let request = match request_from(parsed.query, parsed.operation_name, parsed.variables) {
        Ok(r) => r,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, media, &message),
    };
    if let Some(kind) = streaming {
        if let Some(refusal) = verify(&state, &headers, media).await {
            return refusal;
        }
        let gateway = state.gateway.clone();
        let keep_alive = state.options.live.keep_alive;
        return live::respond(gateway, request, forwarded(&headers, peer), kind, keep_alive).await;
    }
    run(&state, request, &headers, peer, media, false).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
}

async fn get_graphql(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    params: Query<GetParams>,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return live::upgrade(
            state.gateway.clone(),
            state.jwt.clone(),
            state.clients.clone(),
            state.options.live.clone(),
            upgrade,
            &headers,
            forwarded(&headers, peer),
            peer.ip(),
        );
    }
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if params.query.is_none() && wants_html && state.options.graphiql {
        return Html(GRAPHIQL).into_response();
    }
    let Some(media) = negotiate(&headers) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            MediaType::Json,
            "Accept a GraphQL response media type.",
        );
    };
    let variables = match params.variables.as_deref().map(serde_json::from_str::<serde_json::Value>)
    {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                media,
                "`variables` is not valid JSON.",
            );
        }
    };
    let query = params.0.query.map(serde_json::Value::String);
    let name = params.0.operation_name.map(serde_json::Value::String);
    let request = match request_from(query, name, variables) {
        Ok(r) => r,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, media, &message),
    };
    run(&state, request, &headers, peer, media, true).await
}

pub(crate) fn request_from(
    query: Option<serde_json::Value>,
    operation_name: Option<serde_json::Value>,
    variables: Option<serde_json::Value>,
) -> Result<GraphQLRequest, String> {
    let query = match query {
        Some(serde_json::Value::String(q)) => q,
        Some(_) => return Err("`query` must be a string.".into()),
        None => return Err("The request has no `query`.".into()),
    };
    let operation_name = match operation_name {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(n)) => Some(n),
        Some(_) => return Err("`operationName` must be a string.".into()),
    };
    let variables: JsonMap = match variables {
        None | Some(serde_json::Value::Null) => JsonMap::new(),
        Some(v @ serde_json::Value::Object(_)) => {
            serde_json::from_value(v).map_err(|_| "`variables` is not valid.".to_string())?
        }
        Some(_) => return Err("`variables` must be an object.".into()),
    };
    Ok(GraphQLRequest { query, operation_name, variables })
}

/// A `401` when the request carries a token that does not verify; `None` to go on.
async fn verify(state: &AppState, headers: &HeaderMap, media: MediaType) -> Option<Response> {
    let (Some(jwt), Some(authorization)) = (&state.jwt, headers.get(header::AUTHORIZATION)) else {
        return None;
    };
    let verdict = match authorization.to_str() {
        Ok(value) => jwt.verify(value).await,
        Err(_) => Err("malformed Authorization header".to_string()),
    };
    let reason = verdict.err()?;
    let body = serde_json::json!({ "errors": [{ "message": reason, "extensions": { "code": "UNAUTHENTICATED" } }] });
    let mut response = respond(StatusCode::UNAUTHORIZED, media, body.to_string());
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

async fn run(
    state: &AppState,
    request: GraphQLRequest,
    headers: &HeaderMap,
    peer: SocketAddr,
    media: MediaType,
    is_get: bool,
) -> Response {
    if let Some(refusal) = verify(state, headers, media).await {
        return refusal;
    }
    let forwarded = forwarded(headers, peer);
    match state.gateway.execute(request, &forwarded, is_get).await {
        Outcome::RequestError(kind, errors) => {
            let status = match (kind, media) {
                (RequestErrorKind::MutationOverGet, _) => StatusCode::METHOD_NOT_ALLOWED,
                (RequestErrorKind::Invalid, MediaType::GraphQLResponse) => StatusCode::BAD_REQUEST,
                (RequestErrorKind::Invalid, MediaType::Json) => StatusCode::OK,
            };
            let mut response =
                respond(status, media, body(ResponseData::Tree(None), &errors, false));
            if kind == RequestErrorKind::MutationOverGet {
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            response
        }
        Outcome::Executed { data, errors } => {
            respond(StatusCode::OK, media, body(data, &errors, true))
        }
    }
}

/// A GraphQL response body; serialised straight from the response tree so key order is the
/// projection's (the client's) order.
#[derive(serde::Serialize)]
struct ResponseBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Option<&'a JsonMap>>,
    #[serde(skip_serializing_if = "<[GraphQLError]>::is_empty")]
    errors: &'a [GraphQLError],
}

pub(crate) fn body(data: ResponseData, errors: &[GraphQLError], with_data: bool) -> Vec<u8> {
    let failed = || br#"{"errors":[{"message":"internal error"}]}"#.to_vec();
    match data {
        ResponseData::Tree(tree) => {
            let body = ResponseBody { data: with_data.then_some(tree.as_ref()), errors };
            serde_json::to_vec(&body).unwrap_or_else(|_| failed())
        }
        ResponseData::Raw(raw) => {
            // The projection already wrote `data`; only the envelope and errors remain.
            let mut out = Vec::with_capacity(raw.as_ref().map_or(0, Vec::len) + 32);
            out.extend_from_slice(b"{\"data\":");
            match raw {
                Some(raw) => out.extend_from_slice(&raw),
                None => out.extend_from_slice(b"null"),
            }
            if !errors.is_empty() {
                out.extend_from_slice(b",\"errors\":");
                if serde_json::to_writer(&mut out, errors).is_err() {
                    return failed();
                }
            }
            out.push(b'}');
            out
        }
    }
}

/// GraphiQL, loaded from a CDN, pointed at this endpoint.
const GRAPHIQL: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <title>Better Store — GraphiQL</title>
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3.8.3/graphiql.min.css" />
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script crossorigin src="https://unpkg.com/react@18.3.1/umd/react.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphiql@3.8.3/graphiql.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphql-ws@5.16.0/umd/graphql-ws.min.js"></script>
  <script>
    // Subscriptions go over WebSocket to this same address (graphql-transport-ws).
    const wsUrl = window.location.href.replace(/^http/, 'ws').split('?')[0].split('#')[0];
    const fetcher = GraphiQL.createFetcher({
      url: window.location.pathname,
      wsClient: graphqlWs.createClient({ url: wsUrl, lazy: true }),
    });
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true })
    );
  </script>
</body>
</html>
"#;
