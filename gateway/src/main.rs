//! `gateway`: serve a Federation v2 supergraph.
//!
//! `gateway --supergraph schema/supergraph.graphql --listen 127.0.0.1:4000`, or
//! `gateway --subgraph catalog=http://127.0.0.1:4001/graphql --subgraph …` to compose from the
//! live subgraphs at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A federation gateway for any Federation v2 supergraph.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A supergraph SDL file with `@join__*` directives.
    #[arg(long, conflicts_with = "subgraph")]
    supergraph: Option<PathBuf>,
    /// `name=url` of a subgraph to compose from at start (repeatable).
    #[arg(long)]
    subgraph: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: SocketAddr,
    /// Allowed CORS origins (repeatable; `*` for any).
    #[arg(long)]
    cors_origin: Vec<String>,
    /// Refuse `__schema` and `__type` queries.
    #[arg(long)]
    no_introspection: bool,
    /// Verify bearer tokens with the JWKS at this URL (401 for bad tokens).
    #[arg(long, env = "GATEWAY_JWKS_URL")]
    jwks_url: Option<String>,
    /// Print the query plan of this operation and exit (for debugging plans).
    #[arg(long, value_name = "OPERATION")]
    print_plan: Option<String>,
    /// Seconds to wait for a subgraph before answering without it.
    #[arg(long, default_value_t = 30)]
    subgraph_timeout: u64,
    /// `name=seconds`: a timeout for one subgraph (repeatable).
    #[arg(long, value_name = "NAME=SECONDS")]
    subgraph_timeout_for: Vec<String>,
    /// Do not ask subgraphs for compressed responses.
    #[arg(long)]
    no_subgraph_compression: bool,
    /// Verify bearer tokens with this HS256 secret.
    #[arg(long, env = "GATEWAY_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let args = Args::parse();
    let sdl = match &args.supergraph {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => {
            anyhow::ensure!(
                !args.subgraph.is_empty(),
                "give --supergraph PATH or at least one --subgraph name=url"
            );
            let subgraphs: Vec<(String, String)> = args
                .subgraph
                .iter()
                .map(|s| s.split_once('=').map(|(n, u)| (n.to_string(), u.to_string())))
                .collect::<Option<_>>()
                .context("--subgraph takes name=url")?;
            gateway::compose_live(&subgraphs).await?
        }
    };
    if let Some(operation) = &args.print_plan {
        let supergraph = gateway::supergraph::Supergraph::load(&sdl)?;
        let prepared = supergraph.planner.prepare(operation, None)?;
        println!("{}", prepared.plan);
        if std::env::var_os("PLAN_JSON").is_some() {
            println!("{}", serde_json::to_string_pretty(&prepared.plan)?);
        }
        return Ok(());
    }
    let mut options = gateway::GatewayOptions::default();
    options.http.cors_origins = args.cors_origin;
    options.limits.introspection = !args.no_introspection;
    options.jwt.jwks_url = args.jwks_url;
    options.jwt.hmac_secret = args.jwt_secret;
    options.transport.default_timeout = Duration::from_secs(args.subgraph_timeout);
    options.transport.compression = !args.no_subgraph_compression;
    for entry in &args.subgraph_timeout_for {
        let (name, seconds) = entry
            .split_once('=')
            .and_then(|(n, s)| Some((n.to_string(), s.parse::<u64>().ok()?)))
            .with_context(|| format!("--subgraph-timeout-for takes name=seconds, not {entry}"))?;
        options.transport.timeouts.insert(name, Duration::from_secs(seconds));
    }
    let app = gateway::app(&sdl, &options).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!("gateway listening on http://{}/graphql", listener.local_addr()?);
    gateway::serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
