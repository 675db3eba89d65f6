//! `bench-catalog`: starts the release launcher on a fresh data folder and prints
//!
//! - start-up time to ready, cold (migrations and demo store loaded) and warm (restart);
//! - latency of a ranked, filtered, faceted product search, next to the baseline of the
//!   cheapest possible request (`{ __typename }`) through the same HTTP path, sequentially
//!   and with concurrent clients;
//! - shutdown time after SIGINT.
//!
//! Usage: `cargo build --release && cargo run --release -p bench -- [requests] [clients]`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const SEARCH: &str = r#"{ products(search: "trail runner", filter: { maxPrice: "250" }, first: 20) {
    totalCount nodes { id name slug price { amount currency } rating { average count } category { name } }
    facets { categories { category { slug } count } priceBands { count } ratings { minRating count } } } }"#;
const BASELINE: &str = "{ __typename }";

/// Subgraphs the launcher serves, on consecutive ports; the gateway takes the next one.
const SERVICES: u16 = 6;

fn free_port_run() -> anyhow::Result<u16> {
    // Consecutive free ports: the subgraphs on the first ones, the gateway on the last.
    for _ in 0..100 {
        let a = TcpListener::bind("127.0.0.1:0")?;
        let port = a.local_addr()?.port();
        if port > u16::MAX - SERVICES {
            continue;
        }
        if (1..=SERVICES).all(|i| TcpListener::bind(("127.0.0.1", port + i)).is_ok()) {
            return Ok(port);
        }
    }
    anyhow::bail!("no run of {} consecutive free ports", SERVICES + 1)
}

fn launch(binary: &Path, data: &Path, port: u16) -> anyhow::Result<Child> {
    Ok(Command::new(binary)
        .env("BETTER_STORE_DATA_DIR", data)
        .env("BETTER_STORE_SERVER__FIRST_SUBGRAPH_PORT", port.to_string())
        .env("BETTER_STORE_SERVER__GATEWAY_PORT", (port + SERVICES).to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?)
}

async fn wait_ready(client: &reqwest::Client, port: u16) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    for p in (port..port + SERVICES).chain([port + SERVICES]) {
        loop {
            let ok = client
                .get(format!("http://127.0.0.1:{p}/ready"))
                .send()
                .await
                .map(|r| r.status().is_success());
            if matches!(ok, Ok(true)) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "service on {p} not ready in 60 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(started.elapsed())
}

fn stop(child: &mut Child) -> anyhow::Result<Duration> {
    let started = Instant::now();
    Command::new("kill").args(["-INT", &child.id().to_string()]).status()?;
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "launcher exited with {status}");
    Ok(started.elapsed())
}

async fn query(client: &reqwest::Client, url: &str, q: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let body: serde_json::Value =
        client.post(url).json(&json!({ "query": q })).send().await?.json().await?;
    anyhow::ensure!(body.get("errors").is_none(), "query failed: {body}");
    Ok(started.elapsed())
}

fn summary(name: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e3;
    println!(
        "  {name:<34} n={:<6} mean {mean:>7.3} ms  p50 {:>7.3}  p95 {:>7.3}  p99 {:>7.3}  {:>8.0} req/s",
        samples.len(),
        pct(0.5),
        pct(0.95),
        pct(0.99),
        samples.len() as f64 / wall.as_secs_f64()
    );
}

async fn measure(
    client: &reqwest::Client,
    url: &str,
    q: &str,
    requests: usize,
    clients: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, url, q) = (client.clone(), url.to_string(), q.to_string());
        let share = requests / clients + usize::from(c < requests % clients);
        tasks.spawn(async move {
            let mut out = Vec::with_capacity(share);
            for _ in 0..share {
                out.push(query(&client, &url, &q).await?);
            }
            anyhow::Ok(out)
        });
    }
    let mut samples = Vec::with_capacity(requests);
    while let Some(r) = tasks.join_next().await {
        samples.extend(r??);
    }
    Ok((samples, started.elapsed()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = root.join("target/release/better-store");
    anyhow::ensure!(binary.exists(), "build it first: cargo build --release");
    let data = std::env::temp_dir().join(format!("better-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let client = reqwest::Client::new();
    let port = free_port_run()?;

    println!("better-store start-up ({})", binary.display());
    let mut child = launch(&binary, &data, port)?;
    let cold = wait_ready(&client, port).await?;
    println!("  cold start to ready (migrate + demo store): {:>8.1} ms", cold.as_secs_f64() * 1e3);
    let stopped = stop(&mut child)?;
    println!(
        "  shutdown after SIGINT:                      {:>8.1} ms",
        stopped.as_secs_f64() * 1e3
    );
    let mut child = launch(&binary, &data, port)?;
    let warm = wait_ready(&client, port).await?;
    println!("  warm start to ready:                        {:>8.1} ms", warm.as_secs_f64() * 1e3);

    let url = format!("http://127.0.0.1:{port}/graphql");
    // Warm the connection pools and caches before measuring.
    measure(&client, &url, SEARCH, 100, 4).await?;
    println!("catalog latency, one client (baseline: {BASELINE})");
    let (s, w) = measure(&client, &url, BASELINE, requests, 1).await?;
    summary("baseline { __typename }", s, w);
    let (s, w) = measure(&client, &url, SEARCH, requests, 1).await?;
    summary("search + filter + facets", s, w);
    println!("catalog latency, {clients} concurrent clients");
    let (s, w) = measure(&client, &url, BASELINE, requests, clients).await?;
    summary("baseline { __typename }", s, w);
    let (s, w) = measure(&client, &url, SEARCH, requests, clients).await?;
    summary("search + filter + facets", s, w);

    stop(&mut child)?;
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
