//! `bench-checkout`: checkouts per second through the gateway, and the time from
//! `placeOrder` to `CONFIRMED`.
//!
//! Starts the whole platform in this process (embedded: SQLite files and the in-process bus;
//! or PostgreSQL with `--database-url` and/or Redis Streams with `--redis-url`), loads the demo
//! store, stocks `--products` products (one by default) generously, then runs checkouts from
//! `--clients` concurrent shoppers for `--duration` seconds (after a warm-up): each creates a
//! guest cart, adds one of the products, and places the order with a test card. Every
//! order's confirmation is watched on the event bus. Prints confirmed checkouts per second and
//! the p50/p95/p99 time from the `placeOrder` request to `order.confirmed`, with the
//! `placeOrder` response time beside it.
//!
//! With `--rate N`, checkouts start at N per second (an open loop: the latency of a load the
//! platform sustains); without it, every client starts its next checkout as soon as the last
//! one was placed (the throughput at saturation, where confirmations queue up behind).
//!
//! Usage: `cargo build --release -p bench && ./target/release/bench-checkout
//!         [--clients 32] [--duration 20] [--warmup 3] [--rate N]
//!         [--database-url URL] [--redis-url URL] [--lanes N] [--linger MS] [--products 1]
//!         [--timeline] [--hops] [--carrier-step 3600] [--db-connections N] [--partitions N]
//!         [--over-http]`
//!
//! `--over-http` turns in-process calls off (`server.in_process_calls`): the gateway reaches
//! the subgraphs, and orders and carts the contexts they ask, over loopback HTTP, as when
//! each service runs on its own. The baseline for what calling in process saves.
//!
//! The simulated carrier moves each parcel one step (shipped, out for delivery, delivered)
//! every `--carrier-step` seconds. By default an hour, as a real carrier is no faster: the
//! run measures checkouts, and the parcels they create stay in the warehouse. The demo's own
//! setting, `--carrier-step 10`, also ships and delivers every order within the run, which
//! adds three parcel moves and their events to each checkout.
//!
//! `--timeline` also prints, for each second of the measured window, how many checkouts were
//! placed in it and their p50/p99/slowest time to `CONFIRMED`: a stall shows as one bad second.
//!
//! `--hops` also watches the saga's events (`order.placed`, `stock.reserved`,
//! `order.payment_requested`, `payment.authorized`, `order.confirmed`) and prints how long each
//! step took, from one event's creation to the next (that is: the commit, the relay, the bus,
//! the next consumer's queue and its work up to the new event), as p50 and p99 over every
//! checkout and on average over the slowest 1%: which step a slow checkout waited in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bench::checkout::{configure, parse_args};
use better_store::platform::{Listen, Platform};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn gql(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let response: Value = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(response.get("errors").is_none(), "GraphQL errors: {response}");
    Ok(response["data"].clone())
}

/// When each order was placed, and when it was confirmed.
#[derive(Default)]
struct Timings {
    placed: HashMap<String, Instant>,
    confirmed: HashMap<String, Instant>,
    responses: Vec<Duration>,
    /// With `--hops`: when each order's saga events were created, by order id, in [`STEPS`]
    /// order (the first is the `placeOrder` request, by the clock events are stamped with).
    steps: HashMap<String, [Option<DateTime<Utc>>; STEPS.len()]>,
}

/// The saga's steps as `--hops` names them: the request, then the events in the order the saga
/// creates them.
const STEPS: [&str; 6] = [
    "placeOrder",
    "order.placed",
    "stock.reserved",
    "order.payment_requested",
    "payment.authorized",
    "order.confirmed",
];

/// Records when `event` (of the saga) was created.
fn record_step(t: &mut Timings, event: &kernel::events::EventEnvelope) {
    let Some(step) = STEPS.iter().position(|s| *s == event.event_type) else { return };
    if let Some(order) = event.payload["orderId"].as_str() {
        t.steps.entry(order.to_string()).or_default()[step] = Some(event.occurred_at);
    }
}

/// Each step's duration (from the one before), as p50/p99 over every checkout seen whole and
/// as the mean over the slowest 1% of them (by the time from request to `order.confirmed`).
fn print_hops(t: &Timings) {
    let whole: Vec<[f64; STEPS.len() - 1]> = t
        .steps
        .iter()
        .filter(|(id, _)| t.placed.contains_key(*id))
        .filter_map(|(_, at)| {
            let mut hops = [0.0; STEPS.len() - 1];
            for (n, hop) in hops.iter_mut().enumerate() {
                let (from, to) = (at[n]?, at[n + 1]?);
                *hop = (to - from).num_microseconds()? as f64 / 1e3;
            }
            Some(hops)
        })
        .collect();
    if whole.is_empty() {
        println!("  no checkout's saga was seen whole");
        return;
    }
    let mut slowest = whole.clone();
    slowest.sort_by(|a, b| b.iter().sum::<f64>().total_cmp(&a.iter().sum::<f64>()));
    slowest.truncate((whole.len() / 100).max(1));
    println!("  step (from the one before)       p50 ms   p99 ms   slowest 1%: mean ms");
    for n in 0..STEPS.len() - 1 {
        let mut hop: Vec<f64> = whole.iter().map(|h| h[n]).collect();
        hop.sort_by(f64::total_cmp);
        let at = |p: f64| hop[((hop.len() - 1) as f64 * p).round() as usize];
        let mean = slowest.iter().map(|h| h[n]).sum::<f64>() / slowest.len() as f64;
        println!("  {:<30} {:>7.1}  {:>7.1}  {:>7.1}", STEPS[n + 1], at(0.5), at(0.99), mean);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Each second's checkouts (by when they were placed) and their time to `CONFIRMED`.
fn print_timeline(t: &Timings, started: Instant) {
    let mut seconds: std::collections::BTreeMap<u64, Vec<Duration>> = Default::default();
    for (id, placed) in &t.placed {
        let second = placed.saturating_duration_since(started).as_secs();
        let waited = t.confirmed.get(id).map(|c| c.saturating_duration_since(*placed));
        seconds.entry(second).or_default().extend(waited);
    }
    println!("  second  placed  p50 ms  p99 ms  max ms");
    for (second, mut waits) in seconds {
        waits.sort();
        let max = waits.last().map_or(0.0, |d| d.as_secs_f64() * 1e3);
        println!(
            "  {second:>6}  {:>6}  {:>6.1}  {:>6.1}  {max:>6.1}",
            waits.len(),
            percentile(&waits, 0.5),
            percentile(&waits, 0.99)
        );
    }
}

async fn checkout(
    client: &reqwest::Client,
    url: &str,
    product: &str,
    method: &str,
    key: &str,
) -> anyhow::Result<(String, Instant, DateTime<Utc>, Duration)> {
    let cart = gql(client, url, "mutation { createCart { id } }", json!({})).await?;
    let cart = cart["createCart"]["id"].as_str().context("cart id")?.to_string();
    gql(
        client,
        url,
        "mutation($c: ID, $p: ID!) { addToCart(cartId: $c, productId: $p, quantity: 1) { id } }",
        json!({ "c": cart, "p": product }),
    )
    .await?;
    let started = Instant::now();
    let stamped = Utc::now();
    let placed = gql(
        client,
        url,
        "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }",
        json!({ "input": {
            "cartId": cart, "paymentMethodId": method, "idempotencyKey": key,
            "shippingAddress": { "name": "Bench Shopper", "line1": "1 Load Street", "city": "Testville",
                                 "postalCode": "12345", "country": "US" } } }),
    )
    .await?;
    let id = placed["placeOrder"]["id"].as_str().context("order id")?.to_string();
    Ok((id, started, stamped, started.elapsed()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(options) = parse_args(std::env::args().skip(1))? else {
        print!("{}", bench::checkout::USAGE);
        return Ok(());
    };
    let data = std::env::temp_dir().join(format!("bench-checkout-{}", std::process::id()));
    let mut settings = kernel::config::Settings { data_dir: data.clone(), ..Default::default() };
    // Quiet by default; `BENCH_LOG=warn` shows retries and the like.
    settings.telemetry.filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "error".into());
    bench::leftovers::isolate(
        &mut settings,
        "bench",
        options.database_url.as_deref(),
        options.redis_url.as_deref(),
    );
    configure(&options, &mut settings);
    let mode = match (&options.database_url, &options.redis_url) {
        (Some(_), Some(_)) => "PostgreSQL + Redis Streams",
        (None, None) => "embedded (SQLite + in-process bus)",
        (Some(_), None) => "PostgreSQL + in-process bus",
        (None, Some(_)) => "SQLite + Redis Streams",
    };
    kernel::telemetry::init(&settings.telemetry);
    let platform = Platform::build(&settings, &[], Listen::Ephemeral).await?;
    let catalog_db = match &options.database_url {
        Some(_) => platform.catalog.as_ref().map(|c| c.db.clone()),
        None => None,
    };
    let (identity, catalog, inventory) = (
        platform.identity.clone().context("identity")?,
        platform.catalog.clone().context("catalog")?,
        platform.inventory.clone().context("inventory")?,
    );
    better_store::seed::load(&identity, &catalog, Some(&inventory)).await?;
    let url = format!("http://{}/graphql", platform.gateway_addr().context("gateway")?);
    let topics: &[&str] = if options.hops { &["order", "stock", "payment"] } else { &["order"] };
    let mut confirmations = platform.bus.subscribe("bench-checkout", topics);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(platform.run(async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder().pool_max_idle_per_host(options.clients).build()?;
    let listed = gql(
        &client,
        &url,
        "query($n: Int!) { products(first: $n) { nodes { id } } }",
        json!({ "n": options.products }),
    )
    .await?;
    let products: Vec<String> = listed["products"]["nodes"]
        .as_array()
        .context("products")?
        .iter()
        .filter_map(|p| p["id"].as_str().map(str::to_string))
        .collect();
    anyhow::ensure!(products.len() == options.products, "the demo store has too few products");
    for product in &products {
        inventory::stock::set_on_hand(&inventory, product.parse()?, 100_000_000)
            .await
            .map_err(|e| anyhow::anyhow!("stocking: {e:?}"))?;
    }
    let products = Arc::new(products);
    let method = gql(
        &client,
        &url,
        "mutation { tokenizeCard(input: { number: \"4242424242424242\", expMonth: 12, expYear: 2031, cvc: \"123\" }) { id } }",
        json!({}),
    )
    .await?;
    let method = method["tokenizeCard"]["id"].as_str().context("card")?.to_string();

    let timings = Arc::new(Mutex::new(Timings::default()));
    let watcher = {
        let timings = timings.clone();
        let hops = options.hops;
        tokio::spawn(async move {
            while let Some(event) = confirmations.next().await {
                if hops {
                    record_step(&mut timings.lock().unwrap_or_else(|p| p.into_inner()), &event);
                }
                if event.event_type == "order.confirmed"
                    && let Some(id) = event.payload["orderId"].as_str()
                {
                    let mut t = timings.lock().unwrap_or_else(|p| p.into_inner());
                    t.confirmed.insert(id.to_string(), Instant::now());
                }
            }
        })
    };

    println!(
        "checkout benchmark: {mode}{}, {} clients, {} product(s), carrier step {} s, {}, {:?} warm-up, {:?} measured",
        if options.over_http { ", services over HTTP" } else { "" },
        options.clients,
        options.products,
        options.carrier_step,
        options.rate.map_or("closed loop".to_string(), |r| format!("{r} checkouts/s offered")),
        options.warmup,
        options.duration
    );
    let rate = options.rate;
    let run = |window: Duration, record: bool| {
        let (client, url, products, method, timings) =
            (client.clone(), url.clone(), products.clone(), method.clone(), timings.clone());
        async move {
            let deadline = Instant::now() + window;
            // Open loop: a pacer hands out one start per 1/rate seconds.
            let permits = rate.map(|per_second| {
                let (tx, rx) = tokio::sync::mpsc::channel::<()>(1024);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
                    while Instant::now() < deadline && tx.send(()).await.is_ok() {
                        tick.tick().await;
                    }
                });
                Arc::new(tokio::sync::Mutex::new(rx))
            });
            let mut tasks = tokio::task::JoinSet::new();
            for worker in 0..options.clients {
                let (client, url, products, method, timings) = (
                    client.clone(),
                    url.clone(),
                    products.clone(),
                    method.clone(),
                    timings.clone(),
                );
                let permits = permits.clone();
                tasks.spawn(async move {
                    let mut n = 0u64;
                    let mut failures = 0u64;
                    while Instant::now() < deadline {
                        if let Some(permits) = &permits
                            && permits.lock().await.recv().await.is_none()
                        {
                            break;
                        }
                        n += 1;
                        let key = format!("bench-{record}-{worker}-{n}");
                        let product = &products[(worker + n as usize) % products.len()];
                        match checkout(&client, &url, product, &method, &key).await {
                            Ok((id, started, stamped, response)) if record => {
                                let mut t = timings.lock().unwrap_or_else(|p| p.into_inner());
                                t.steps.entry(id.clone()).or_default()[0] = Some(stamped);
                                t.placed.insert(id, started);
                                t.responses.push(response);
                            }
                            Ok(_) => {}
                            Err(_) => failures += 1,
                        }
                    }
                    failures
                });
            }
            let mut failures = 0;
            while let Some(result) = tasks.join_next().await {
                failures += result.unwrap_or(0);
            }
            failures
        }
    };
    run(options.warmup, false).await;
    let cpu_before = bench::machine::CpuTicks::now();
    let processes_before = bench::machine::ProcessTicks::now();
    let started = Instant::now();
    let failures = run(options.duration, true).await;
    let placing = started.elapsed();
    // Wait (with a deadline) for the saga to finish the orders placed in the window.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (placed, done) = {
            let t = timings.lock().unwrap_or_else(|p| p.into_inner());
            (t.placed.len(), t.placed.keys().filter(|id| t.confirmed.contains_key(*id)).count())
        };
        if done == placed || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_after = bench::machine::CpuTicks::now();
    let processes_after = bench::machine::ProcessTicks::now();
    {
        let t = timings.lock().unwrap_or_else(|p| p.into_inner());
        let mut to_confirmed: Vec<Duration> = t
            .placed
            .iter()
            .filter_map(|(id, placed)| {
                t.confirmed.get(id).map(|c| c.saturating_duration_since(*placed))
            })
            .collect();
        to_confirmed.sort();
        let mut responses = t.responses.clone();
        responses.sort();
        let last_confirmation = t.confirmed.values().max().copied().unwrap_or_else(Instant::now);
        let span = last_confirmation.saturating_duration_since(started).max(placing);
        println!(
            "  checkouts placed {:>6}, confirmed {:>6}, failed {}",
            t.placed.len(),
            to_confirmed.len(),
            failures
        );
        println!(
            "  {:>8.0} confirmed checkouts/s (over {:.1} s, placing to last confirmation)",
            to_confirmed.len() as f64 / span.as_secs_f64(),
            span.as_secs_f64()
        );
        println!(
            "  placeOrder -> CONFIRMED  p50 {:>7.1} ms  p95 {:>7.1} ms  p99 {:>7.1} ms",
            percentile(&to_confirmed, 0.5),
            percentile(&to_confirmed, 0.95),
            percentile(&to_confirmed, 0.99)
        );
        println!(
            "  placeOrder response      p50 {:>7.1} ms  p95 {:>7.1} ms  p99 {:>7.1} ms",
            percentile(&responses, 0.5),
            percentile(&responses, 0.95),
            percentile(&responses, 0.99)
        );
        if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
            println!("  {}", after.since(&before, to_confirmed.len(), "confirmed checkout"));
        }
        if let (Some(before), Some(after)) = (processes_before, processes_after) {
            println!("  {}", after.since(&before, to_confirmed.len(), "confirmed checkout"));
            println!("  {}", after.switches_since(&before, to_confirmed.len(), "checkout"));
        }
        if options.timeline {
            print_timeline(&t, started);
        }
        if options.hops {
            print_hops(&t);
        }
    }
    watcher.abort();
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
    let _ = std::fs::remove_dir_all(&data);
    bench::leftovers::remove(
        catalog_db.as_ref(),
        &settings.database.schema_prefix,
        options.redis_url.as_deref(),
        &settings.events.namespace,
    )
    .await?;
    Ok(())
}
