//! `bench-subgraphs [--listen 127.0.0.1:4200] [--data PATH]`: serves the gateways benchmark's
//! four subgraphs.

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut listen = "127.0.0.1:4200".to_string();
    let mut data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/bench/gateways-benchmark/subgraph-data.json"
    )
    .to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().context("--listen needs an address")?,
            "--data" => data = args.next().context("--data needs a path")?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let data: bench::subgraphs::Data = serde_json::from_str(
        &std::fs::read_to_string(&data).with_context(|| format!("reading {data}"))?,
    )?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "benchmark subgraphs on http://{}/{{accounts,inventory,products,reviews}}",
        listener.local_addr()?
    );
    axum::serve(listener, bench::subgraphs::router(data)).await?;
    Ok(())
}
