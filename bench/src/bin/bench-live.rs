//! `bench-live`: live order tracking through the gateway at scale.
//!
//! Starts the whole platform in this process (embedded, or `--database-url`/`--redis-url`),
//! creates `--subscriptions` orders of one customer, then starts a second process of this
//! program (the clients, so that their memory is not counted) which opens one WebSocket per
//! order to the gateway (`graphql-transport-ws`) and subscribes to
//! `orderStatusChanged(orderId) { status at }`. Once every subscription has reached the
//! orders subgraph, the platform's resident memory is read again: the difference per
//! subscription is the platform's (gateway and orders) cost of one live subscriber. Then
//! orders move through PAYMENT_AUTHORIZED → CONFIRMED → SHIPPED → OUT_FOR_DELIVERY →
//! DELIVERED by the real transition (`orders::checkout::advance`, one commit per change) at
//! `--rate` changes per second. The writers note the time each commit returned, the clients
//! the time each change arrived (both processes read the same clock), and this process
//! prints subscriptions held, memory per subscription, changes published and received, and
//! the p50/p99/max delay from commit to client (and, for comparison, from the transition's
//! own time `at`, taken inside the transaction before it commits).
//!
//! Usage: `cargo build --release -p bench && ./target/release/bench-live
//!         [--subscriptions 10000] [--rate 1000] [--database-url URL] [--redis-url URL]
//!         [--writers 16] [--db-connections N]`
//!
//! `--writers` is how many transitions may be committing at once (a PostgreSQL commit waits
//! for its WAL flush, so reaching the rate there takes more of them than on SQLite);
//! `--db-connections` overrides `database.max_connections`.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use better_store::platform::{Listen, Platform};
use futures::{SinkExt, StreamExt};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    subscriptions: usize,
    rate: f64,
    database_url: Option<String>,
    redis_url: Option<String>,
    db_connections: Option<u32>,
    writers: usize,
}

fn parse_args(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        subscriptions: 10_000,
        rate: 1000.0,
        database_url: None,
        redis_url: None,
        db_connections: None,
        writers: 16,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--subscriptions" => options.subscriptions = value()?.parse()?,
            "--rate" => options.rate = value()?.parse()?,
            "--database-url" => options.database_url = Some(value()?),
            "--redis-url" => options.redis_url = Some(value()?),
            "--db-connections" => options.db_connections = Some(value()?.parse()?),
            "--writers" => options.writers = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if args.first().map(String::as_str) == Some("--clients") {
        return runtime.block_on(clients(&args[1..]));
    }
    runtime.block_on(platform(parse_args(&args)?))
}

/// The platform side.
async fn platform(options: Options) -> anyhow::Result<()> {
    use orders::domain::Status;
    use sea_orm::TransactionTrait;

    let data = std::env::temp_dir().join(format!("bench-live-{}", std::process::id()));
    let mut settings = kernel::config::Settings { data_dir: data.clone(), ..Default::default() };
    settings.telemetry.filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "error".into());
    settings.gateway.live_connections_per_client = options.subscriptions + 100;
    // The carrier and the sweeps stay out of the way: this benchmark moves the orders.
    settings.fulfillment.step_secs = 24 * 3600;
    settings.orders.resume_after_secs = 24 * 3600;
    if let Some(connections) = options.db_connections {
        settings.database.max_connections = Some(connections);
    }
    bench::leftovers::isolate(
        &mut settings,
        "benchlive",
        options.database_url.as_deref(),
        options.redis_url.as_deref(),
    );
    kernel::telemetry::init(&settings.telemetry);
    let platform = Platform::build(&settings, &[], Listen::Ephemeral).await?;
    let identity = platform.identity.clone().context("identity")?;
    let orders = platform.orders.clone().context("orders")?;
    let orders_db = orders.db.clone();
    let gateway = format!("http://{}", platform.gateway_addr().context("gateway")?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(platform.run(async {
        let _ = stopped.await;
    }));

    let session =
        identity::accounts::sign_up(&identity, "live@bench.test", "bench-password-1", "Bench")
            .await
            .map_err(|e| anyhow::anyhow!("sign-up: {e:?}"))?;
    let verifier = kernel::auth::TokenVerifier::for_keys(identity.issuer.keys(), &settings.auth);
    let authentication = verifier.authenticate(Some(&format!("Bearer {}", session.access_token)));
    let customer =
        authentication.caller().ok().flatten().context("the bench customer's token")?.customer_id;
    let ids = create_orders(&orders, customer, options.subscriptions).await?;
    println!(
        "live benchmark: {} orders of one customer, {} changes/s, {}",
        ids.len(),
        options.rate,
        match (&options.database_url, &options.redis_url) {
            (Some(_), Some(_)) => "PostgreSQL + Redis",
            (None, None) => "embedded (SQLite + in-process)",
            _ => "mixed backends",
        }
    );

    // Settle, then the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss();
    let list = data.join("orders.txt");
    std::fs::write(&list, ids.iter().map(|id| format!("{id}\n")).collect::<String>())?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--clients")
        .arg(&gateway)
        .arg(&session.access_token)
        .arg(&list)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    while orders.feed.subscribers() < ids.len() {
        anyhow::ensure!(Instant::now() < deadline, "only {} subscribed", orders.feed.subscribers());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let subscribed_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss();
    let per = after.saturating_sub(before) as f64 / ids.len() as f64;
    println!(
        "subscriptions held: {} (all open in {:.1} s); platform RSS {:.0} → {:.0} MiB: {:.1} KiB per subscription (gateway + orders subgraph)",
        ids.len(),
        subscribed_in.as_secs_f64(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per / 1024.0
    );

    // Changes at the rate, one commit each, round robin over the orders, step by step.
    let steps = [
        Status::PaymentAuthorized,
        Status::Confirmed,
        Status::Shipped,
        Status::OutForDelivery,
        Status::Delivered,
    ];
    let total = ids.len() * steps.len();
    // Jobs step by step over all orders (an order's next step comes ten thousand jobs later),
    // handed out at the rate to a few concurrent writers: a database commit takes longer
    // than a thousandth of a second, and the rate is what is measured against.
    let jobs: Vec<(uuid::Uuid, Status)> =
        steps.iter().flat_map(|step| ids.iter().map(move |id| (*id, *step))).collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<(uuid::Uuid, Status)>(64);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let rate = options.rate;
    let pacer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for job in jobs {
            tick.tick().await;
            if tx.send(job).await.is_err() {
                break;
            }
        }
    });
    let began = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..options.writers {
        let (rx, orders) = (rx.clone(), orders.clone());
        writers.spawn(async move {
            let mut committed = Vec::new();
            loop {
                let Some((id, step)) = rx.lock().await.recv().await else { return Ok(committed) };
                let txn = orders.db.begin().await?;
                let done = orders::checkout::advance(&txn, id, &[step], None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                txn.commit().await?;
                let at = chrono::Utc::now();
                orders.relay.wake();
                if done.is_some() {
                    committed.push(((id, step.as_str()), at));
                }
            }
        });
    }
    let mut commits = std::collections::HashMap::with_capacity(total);
    while let Some(result) = writers.join_next().await {
        commits.extend(result?.map_err(|e: anyhow::Error| e)?);
    }
    let published = commits.len();
    pacer.await?;
    let took = began.elapsed();
    println!(
        "changes published: {published} of {total} in {:.1} s ({:.0}/s)",
        took.as_secs_f64(),
        published as f64 / took.as_secs_f64()
    );

    // The clients report once they have every change (or after a grace period).
    let mut stdin = child.stdin.take().context("stdin")?;
    writeln!(stdin, "{published}")?;
    drop(stdin);
    let stdout = child.stdout.take().context("stdout")?;
    let mut from_commit = Vec::with_capacity(published);
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        // `E <order> <status> <received, µs since the epoch>`: one change as it arrived.
        let Some(arrival) = line.strip_prefix("E ") else {
            println!("{line}");
            continue;
        };
        let mut parts = arrival.split(' ');
        let (Some(id), Some(status), Some(micros)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(id), Ok(micros)) = (id.parse::<uuid::Uuid>(), micros.parse::<i64>()) else {
            continue;
        };
        if let Some(at) = commits.get(&(id, status)) {
            from_commit.push((micros - at.timestamp_micros()) as f64 / 1000.0);
        }
    }
    child.wait()?;
    let (p50, p99, max) = percentiles(&mut from_commit);
    println!(
        "delay commit → client ({} changes): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        from_commit.len()
    );
    let _ = stop.send(());
    running.await??;
    let _ = std::fs::remove_dir_all(&data);
    bench::leftovers::remove(
        options.database_url.is_some().then_some(&orders_db),
        &settings.database.schema_prefix,
        options.redis_url.as_deref(),
        &settings.events.namespace,
    )
    .await
}

/// p50, p99 and max of `values`, in their unit.
fn percentiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        values.get(((values.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0.0)
    };
    (at(0.5), at(0.99), values.last().copied().unwrap_or(0.0))
}

/// Orders of `customer`, PENDING, stored directly (this benchmark is about what follows).
async fn create_orders(
    orders: &orders::Orders,
    customer: uuid::Uuid,
    count: usize,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    use entities::orders::order;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let now = chrono::Utc::now();
    let mut ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<order::ActiveModel> = chunk
            .iter()
            .map(|i| {
                let id = uuid::Uuid::new_v4();
                ids.push(id);
                order::ActiveModel {
                    id: Set(id),
                    number: Set(format!("BS-{:08}", i)),
                    customer_id: Set(Some(customer)),
                    cart_id: Set(uuid::Uuid::new_v4()),
                    status: Set("PENDING".into()),
                    cancel_reason: Set(None),
                    currency: Set("USD".into()),
                    subtotal_minor: Set(1000),
                    discount_minor: Set(0),
                    points_redeemed: Set(0),
                    total_minor: Set(1000),
                    shipping_address: Set(json!({ "name": "Bench", "line1": "1 Load St", "city": "Testville", "postalCode": "12345", "country": "US" })),
                    email: Set(None),
                    payment_method_id: Set(uuid::Uuid::new_v4()),
                    idempotency_key: Set(format!("bench-live-{i}")),
                    request_hash: Set(String::new()),
                    payment_requested_at: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
            })
            .collect();
        order::Entity::insert_many(rows).exec_without_returning(&orders.db).await?;
    }
    Ok(ids)
}

/// The client side: one WebSocket per order, each subscribed to its order's changes.
async fn clients(args: &[String]) -> anyhow::Result<()> {
    let [gateway, token, list] = args else { anyhow::bail!("--clients GATEWAY TOKEN LIST") };
    let ids: Vec<String> = std::fs::read_to_string(list)?.lines().map(str::to_string).collect();
    let url = format!("{}/graphql", gateway.replacen("http", "ws", 1));
    // Per change: its order, its status, when it arrived (µs) and its delay from `at`.
    let (delays_tx, mut delays_rx) =
        tokio::sync::mpsc::unbounded_channel::<(std::sync::Arc<str>, String, i64, f64)>();
    let query = "subscription($id: ID!) { orderStatusChanged(orderId: $id) { status at } }";
    let connect = futures::stream::iter(ids.into_iter().map(|id| {
        let (url, token, delays) = (url.clone(), token.clone(), delays_tx.clone());
        let order: std::sync::Arc<str> = id.clone().into();
        async move {
            use tokio_tungstenite::tungstenite::Message;
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut request = url.into_client_request()?;
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                tokio_tungstenite::tungstenite::http::HeaderValue::from_static("graphql-transport-ws"),
            );
            let (socket, _) = tokio_tungstenite::connect_async(request).await?;
            let (mut sink, mut stream) = socket.split();
            let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
            sink.send(Message::text(init.to_string())).await?;
            let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": { "id": id } } });
            sink.send(Message::text(subscribe.to_string())).await?;
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    let Message::Text(text) = frame else { continue };
                    let received = chrono::Utc::now();
                    let message: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    match message["type"].as_str() {
                        Some("next") => {
                            let change = &message["payload"]["data"]["orderStatusChanged"];
                            let at = change["at"]
                                .as_str()
                                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
                            if let (Some(at), Some(status)) = (at, change["status"].as_str()) {
                                let delay = (received - at.with_timezone(&chrono::Utc))
                                    .num_microseconds()
                                    .unwrap_or(0) as f64
                                    / 1000.0;
                                let _ = delays.send((
                                    order.clone(),
                                    status.to_string(),
                                    received.timestamp_micros(),
                                    delay,
                                ));
                            }
                        }
                        Some("ping") => {
                            let _ = sink.send(Message::text(json!({ "type": "pong" }).to_string())).await;
                        }
                        Some("complete") => break,
                        _ => {}
                    }
                }
            });
            Ok::<_, anyhow::Error>(())
        }
    }))
    .buffer_unordered(256)
    .collect::<Vec<_>>()
    .await;
    let failed = connect.iter().filter(|r| r.is_err()).count();
    drop(delays_tx);
    // Wait for the platform to say how many changes it published.
    let expected: usize = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok();
        line.trim().parse().unwrap_or(0)
    })
    .await?;
    let mut arrivals = Vec::with_capacity(expected);
    let grace = Instant::now() + Duration::from_secs(30);
    while arrivals.len() < expected && Instant::now() < grace {
        match tokio::time::timeout(Duration::from_secs(1), delays_rx.recv()).await {
            Ok(Some(arrival)) => arrivals.push(arrival),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    while let Ok(arrival) = delays_rx.try_recv() {
        arrivals.push(arrival);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (order, status, received, _) in &arrivals {
        writeln!(out, "E {order} {status} {received}")?;
    }
    let mut delays: Vec<f64> = arrivals.iter().map(|a| a.3).collect();
    let (p50, p99, max) = percentiles(&mut delays);
    writeln!(
        out,
        "changes received: {} of {expected} ({failed} connections failed); delay from the transition's time `at` (before its commit) → client: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        delays.len(),
    )?;
    out.flush()?;
    Ok(())
}
