//! Better Store's federation gateway. It knows nothing about commerce: it serves any
//! Federation v2 supergraph.
//!
//! The modules follow a request: [`http`] receives it, [`pipeline`] validates it against the
//! API schema, [`planning`] plans it (the one place that knows the planner crate),
//! [`execution`] runs the plan through [`transport`] and projects the client's selection.
//! [`compose`] builds supergraphs from subgraph SDLs; [`supergraph`] loads one.

pub mod auth;
pub mod compose;
pub mod execution;
pub mod http;
pub mod live;
pub mod pipeline;
pub mod planning;
pub mod supergraph;
pub mod transport;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

pub use http::HttpOptions;
pub use pipeline::{Gateway, Limits};

/// Everything needed to start a gateway.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// HTTP behaviour.
    pub http: HttpOptions,
    /// Operation limits.
    pub limits: Limits,
    /// Timeouts and compression towards the subgraphs.
    pub transport: transport::TransportOptions,
    /// Token verification at the edge (off when no key source is set).
    pub jwt: auth::JwtOptions,
}

/// Builds the gateway's HTTP application for a supergraph SDL.
pub async fn app(supergraph_sdl: &str, options: &GatewayOptions) -> anyhow::Result<axum::Router> {
    let supergraph = Arc::new(supergraph::Supergraph::load(supergraph_sdl)?);
    let transport =
        transport::Transport::new(supergraph.subgraph_urls.clone(), options.transport.clone())?;
    let gateway = Arc::new(Gateway::new(supergraph, transport, options.limits.clone()));
    let jwt = match options.jwt.enabled() {
        true => Some(auth::JwtVerifier::new(options.jwt.clone()).await?),
        false => None,
    };
    Ok(http::router(gateway, jwt, options.http.clone()))
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Fetches each subgraph's SDL from its live `_service { sdl }` and composes them.
pub async fn compose_live(subgraphs: &[(String, String)]) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let mut sdls = Vec::new();
    for (name, url) in subgraphs {
        let response: serde_json::Value = client
            .post(url)
            .json(&serde_json::json!({ "query": "{ _service { sdl } }" }))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("fetching the SDL of `{name}` from {url}"))?
            .json()
            .await
            .with_context(|| format!("reading the SDL of `{name}`"))?;
        let sdl = response["data"]["_service"]["sdl"]
            .as_str()
            .with_context(|| format!("`{name}` did not return `_service {{ sdl }}`"))?;
        sdls.push(compose::SubgraphSdl {
            name: name.clone(),
            url: url.clone(),
            sdl: sdl.to_string(),
        });
    }
    Ok(compose::compose(&sdls)?)
}
