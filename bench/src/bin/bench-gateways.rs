//! `bench-gateways`: the public federation gateways benchmark, run here.
//!
//! Starts our copy of its four subgraphs, then each gateway in turn — ours
//! (`target/release/gateway`) and Hive Router (`hive_router` on the PATH, or `--hive PATH`) —
//! in front of its supergraph, in alternating rounds (a fresh process each time); drives its
//! query at a fixed concurrency (warm-up, then a measured window); checks every response
//! against the reference response; and prints requests/s, p50/p95/p99 latency, peak memory
//! (VmHWM), CPU per request and subgraph requests per request of each, then the medians over
//! the rounds and their ratio. It also prints the cold and warm planning times of the
//! benchmark query in our gateway.
//!
//! Usage: `cargo build --release -p gateway -p bench &&
//!         cargo run --release -p bench --bin bench-gateways -- [--duration 20] [--warmup 5]
//!         [--connections 50] [--rounds 3] [--hive PATH] [--ours-only]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/bench/gateways-benchmark");

struct Options {
    duration: Duration,
    warmup: Duration,
    connections: usize,
    hive: Option<PathBuf>,
    /// How many alternating rounds to run.
    rounds: usize,
    /// Measure our gateway only (for quick iterations; no comparison).
    ours_only: bool,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        duration: Duration::from_secs(20),
        warmup: Duration::from_secs(5),
        connections: 50,
        hive: which("hive_router").or_else(|| which("hive-router")),
        ours_only: false,
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => options.duration = Duration::from_secs(value()?.parse()?),
            "--warmup" => options.warmup = Duration::from_secs(value()?.parse()?),
            "--connections" => options.connections = value()?.parse()?,
            "--hive" => options.hive = Some(PathBuf::from(value()?)),
            "--ours-only" => options.ours_only = true,
            "--rounds" => options.rounds = value()?.parse::<usize>()?.max(1),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) a process has used so far, in milliseconds.
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 on every mainstream configuration.
    Some(ticks as f64 * 10.0)
}

async fn subgraph_requests(client: &reqwest::Client, base: &str) -> Option<u64> {
    client.get(format!("{base}/requests")).send().await.ok()?.text().await.ok()?.parse().ok()
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until_answers(client: &reqwest::Client, url: &str, body: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        if matches!(ok, Ok(ref r) if r.status().is_success()) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Figures {
    requests: u64,
    wrong: u64,
    rps: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    peak_kib: Option<u64>,
    /// Gateway CPU per request, ms.
    gateway_cpu: Option<f64>,
    /// Subgraph CPU per request, ms.
    subgraph_cpu: Option<f64>,
    /// Subgraph requests per gateway request.
    fetches: Option<f64>,
}

async fn load(
    url: &str,
    body: Arc<String>,
    reference: Arc<serde_json::Value>,
    reference_bytes: Arc<Vec<u8>>,
    connections: usize,
    window: Duration,
) -> (Vec<Duration>, u64) {
    // Uncompressed, as in the public benchmark: the client does not send Accept-Encoding.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .no_gzip()
        .no_brotli()
        .build()
        .unwrap_or_default();
    let wrong = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, body, reference, reference_bytes, wrong) = (
            client.clone(),
            url.to_string(),
            body.clone(),
            reference.clone(),
            reference_bytes.clone(),
            wrong.clone(),
        );
        tasks.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.as_str().to_string())
                    .send()
                    .await;
                let bytes = match response {
                    Ok(r) => r.bytes().await.ok(),
                    Err(_) => None,
                };
                samples.push(started.elapsed());
                let correct = match &bytes {
                    Some(b) if b.as_ref() == reference_bytes.as_slice() => true,
                    Some(b) => serde_json::from_slice::<serde_json::Value>(b)
                        .is_ok_and(|v| v == *reference),
                    None => false,
                };
                if !correct {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
            }
            samples
        });
    }
    let mut all = Vec::new();
    while let Some(samples) = tasks.join_next().await {
        all.extend(samples.unwrap_or_default());
    }
    (all, wrong.load(Ordering::Relaxed))
}

/// The process serving the subgraphs, and its base URL.
struct Subgraphs {
    pid: u32,
    base: String,
}

async fn measure(
    name: &str,
    url: &str,
    pid: u32,
    subgraphs: &Subgraphs,
    options: &Options,
) -> anyhow::Result<Figures> {
    let body = Arc::new(std::fs::read_to_string(format!("{SHARED}/request.json"))?);
    let reference_bytes = Arc::new(std::fs::read(format!("{SHARED}/response.json"))?);
    let reference: Arc<serde_json::Value> = Arc::new(serde_json::from_slice(&reference_bytes)?);
    let client = reqwest::Client::new();
    wait_until_answers(&client, url, &body).await?;
    eprintln!("{name}: warming up for {:?}", options.warmup);
    load(
        url,
        body.clone(),
        reference.clone(),
        reference_bytes.clone(),
        options.connections,
        options.warmup,
    )
    .await;
    eprintln!(
        "{name}: measuring for {:?} at {} connections",
        options.duration, options.connections
    );
    let before =
        (cpu_ms(pid), cpu_ms(subgraphs.pid), subgraph_requests(&client, &subgraphs.base).await);
    let started = Instant::now();
    let (mut samples, wrong) =
        load(url, body, reference, reference_bytes, options.connections, options.duration).await;
    let elapsed = started.elapsed();
    let after =
        (cpu_ms(pid), cpu_ms(subgraphs.pid), subgraph_requests(&client, &subgraphs.base).await);
    let n = samples.len().max(1) as f64;
    let per_request = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / n);
    samples.sort();
    let pct = |p: f64| {
        samples
            .get(((samples.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Ok(Figures {
        requests: samples.len() as u64,
        wrong,
        rps: samples.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p95: pct(0.95),
        p99: pct(0.99),
        peak_kib: peak_memory_kib(pid),
        gateway_cpu: per_request(before.0, after.0),
        subgraph_cpu: per_request(before.1, after.1),
        fetches: per_request(before.2.map(|v| v as f64), after.2.map(|v| v as f64)),
    })
}

/// The round with the median requests/s, with the median p99 and the highest peak memory of
/// all rounds.
fn summary(rounds: &[Figures]) -> Figures {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    let rps = median(rounds.iter().map(|f| f.rps).collect());
    let middle = rounds.iter().find(|f| f.rps == rps);
    let per = |pick: fn(&Figures) -> Option<f64>| middle.and_then(pick);
    Figures {
        requests: rounds.iter().map(|f| f.requests).sum(),
        wrong: rounds.iter().map(|f| f.wrong).sum(),
        rps,
        p50: median(rounds.iter().map(|f| f.p50).collect()),
        p95: median(rounds.iter().map(|f| f.p95).collect()),
        p99: median(rounds.iter().map(|f| f.p99).collect()),
        peak_kib: rounds.iter().filter_map(|f| f.peak_kib).max(),
        gateway_cpu: per(|f| f.gateway_cpu),
        subgraph_cpu: per(|f| f.subgraph_cpu),
        fetches: per(|f| f.fetches),
    }
}

fn print(name: &str, f: &Figures) {
    println!(
        "  {name:<12} {:>9.0} req/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  peak RSS {:>7} KiB  requests {:>7}  wrong {}",
        f.rps,
        f.p50,
        f.p95,
        f.p99,
        f.peak_kib.map_or("?".into(), |k| k.to_string()),
        f.requests,
        f.wrong
    );
    let show = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.2}"));
    println!(
        "  {:<12} per request: gateway CPU {} ms, subgraph CPU {} ms, subgraph requests {}",
        "",
        show(f.gateway_cpu),
        show(f.subgraph_cpu),
        show(f.fetches)
    );
}

fn planning_times(supergraph: &str) -> anyhow::Result<()> {
    let request: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{SHARED}/request.json"))?)?;
    let query = request["query"].as_str().context("request.json has a query")?;
    let loaded = Instant::now();
    let sg = gateway::supergraph::Supergraph::load(supergraph)?;
    let load_time = loaded.elapsed();
    let cold = Instant::now();
    sg.planner.prepare(query, None)?;
    let cold = cold.elapsed();
    let warm_runs = 1000;
    let warm = Instant::now();
    for _ in 0..warm_runs {
        sg.planner.prepare(query, None)?;
    }
    let warm = warm.elapsed() / warm_runs;
    println!(
        "planning the benchmark query in our gateway (supergraph load {:.1} ms)",
        load_time.as_secs_f64() * 1e3
    );
    println!("  cold (parse, normalise, plan): {:>9.3} ms", cold.as_secs_f64() * 1e3);
    println!("  warm (plan cache hit):         {:>9.3} µs", warm.as_secs_f64() * 1e6);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = root.join("target/release");
    let work = std::env::temp_dir().join(format!("bench-gateways-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    let subgraph_port = free_port()?;
    let _subgraphs = Guard(
        Command::new(release.join("bench-subgraphs"))
            .args([
                "--listen",
                &format!("127.0.0.1:{subgraph_port}"),
                "--data",
                &format!("{SHARED}/subgraph-data.json"),
            ])
            .stderr(Stdio::null())
            .spawn()
            .context("starting bench-subgraphs (cargo build --release -p bench)")?,
    );
    let subgraphs =
        Subgraphs { pid: _subgraphs.0.id(), base: format!("http://127.0.0.1:{subgraph_port}") };
    let supergraph = std::fs::read_to_string(format!("{SHARED}/supergraph.graphql"))?
        .replace("127.0.0.1:4200", &format!("127.0.0.1:{subgraph_port}"));
    let supergraph_path = work.join("supergraph.graphql");
    std::fs::write(&supergraph_path, &supergraph)?;
    planning_times(&supergraph)?;

    println!(
        "gateways benchmark: {} connections, {:?} warm-up, {:?} measured, same machine, one at a time",
        options.connections, options.warmup, options.duration
    );
    let hive = match (&options.hive, options.ours_only) {
        (_, true) => None,
        (Some(hive), false) => Some(hive.clone()),
        (None, false) => {
            println!(
                "  hive-router  not found: `cargo install hive-router@0.0.41 --locked`, or pass --hive PATH"
            );
            None
        }
    };
    let hive_dir = work.join("hive");
    std::fs::create_dir_all(&hive_dir)?;
    let mut ours_rounds = Vec::new();
    let mut hive_rounds = Vec::new();
    // Rounds alternate between the gateways, each a fresh process, so that a slow patch of
    // the machine does not fall on one gateway only.
    for round in 1..=options.rounds {
        println!("round {round} of {}", options.rounds);
        let ours_port = free_port()?;
        let ours = Guard(
            Command::new(release.join("gateway"))
                .args([
                    "--supergraph",
                    &supergraph_path.to_string_lossy(),
                    "--listen",
                    &format!("127.0.0.1:{ours_port}"),
                ])
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .spawn()
                .context("starting our gateway (cargo build --release -p gateway)")?,
        );
        let url = format!("http://127.0.0.1:{ours_port}/graphql");
        let figures = measure("ours", &url, ours.0.id(), &subgraphs, &options).await?;
        drop(ours);
        print("ours", &figures);
        ours_rounds.push(figures);

        let Some(hive) = &hive else { continue };
        let hive_port = free_port()?;
        std::fs::write(
            hive_dir.join("router.config.yaml"),
            format!(
                "supergraph: {{ source: file, path: {} }}\nhttp: {{ host: 127.0.0.1, port: {hive_port} }}\nlog: {{ level: error }}\ntraffic_shaping: {{ all: {{ dedupe_enabled: true }} }}\n",
                supergraph_path.display()
            ),
        )?;
        let hive_child = Guard(
            Command::new(hive)
                .current_dir(&hive_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting hive-router")?,
        );
        let url = format!("http://127.0.0.1:{hive_port}/graphql");
        let figures = measure("hive-router", &url, hive_child.0.id(), &subgraphs, &options).await?;
        drop(hive_child);
        print("hive-router", &figures);
        hive_rounds.push(figures);
    }
    println!("summary over {} round(s): median req/s and p99, highest peak RSS", options.rounds);
    let ours = summary(&ours_rounds);
    print("ours", &ours);
    if !hive_rounds.is_empty() {
        let hive = summary(&hive_rounds);
        print("hive-router", &hive);
        println!(
            "  ratio ours/hive: {:.2}x req/s, p99 {:.2}x, peak memory {}",
            ours.rps / hive.rps,
            ours.p99 / hive.p99,
            match (ours.peak_kib, hive.peak_kib) {
                (Some(a), Some(b)) => format!("{:.2}x", a as f64 / b as f64),
                _ => "?".into(),
            }
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
