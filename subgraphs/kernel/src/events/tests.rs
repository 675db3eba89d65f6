//! The event backbone's contract, run against the in-process bus always and against Redis
//! Streams when `TEST_REDIS_URL` is set; the inbox on SQLite, or on PostgreSQL when
//! `TEST_DATABASE_URL` is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Schema, Statement};

use super::EventEnvelope;
use super::bus::{EventBus, InProcessBus, Member};
use super::consumer::{Consumer, ConsumerOptions, EventHandler, Permanent};
use super::inbox::{self, Handled, Work};
use super::redis::{RedisOptions, RedisStreamsBus};
use super::unit::Unit;
use crate::config::DatabaseSettings;

struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()[20..].to_string()
}

/// A database with an inbox table, on SQLite or (with `TEST_DATABASE_URL`) PostgreSQL.
async fn database() -> (DatabaseConnection, Scratch) {
    let dir = std::env::temp_dir().join(format!("bs-events-{}", unique()));
    let mut settings = DatabaseSettings::default();
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        settings.url = Some(url.into());
        settings.schema_prefix = format!("t{}_", unique());
        settings.max_connections = Some(4);
    }
    let db = crate::db::connect(&settings, &dir, "events").await.unwrap();
    let backend = db.get_database_backend();
    let create = Schema::new(backend).create_table_from_entity(inbox::entity::Entity);
    db.execute(&create).await.unwrap();
    // What handlers did, written in their transaction: gone again when it rolls back.
    let effects = match backend {
        DbBackend::Postgres => {
            "CREATE TABLE effects (n BIGSERIAL PRIMARY KEY, aggregate TEXT NOT NULL, seq BIGINT NOT NULL)"
        }
        _ => {
            "CREATE TABLE effects (n INTEGER PRIMARY KEY AUTOINCREMENT, aggregate TEXT NOT NULL, seq BIGINT NOT NULL)"
        }
    };
    db.execute_unprepared(effects).await.unwrap();
    (db, Scratch(dir))
}

/// [`database`], with an outbox table too.
pub(super) async fn database_with_outbox() -> (DatabaseConnection, impl Drop) {
    let (db, scratch) = database().await;
    let create = Schema::new(db.get_database_backend())
        .create_table_from_entity(super::outbox::entity::Entity);
    db.execute(&create).await.unwrap();
    (db, scratch)
}

/// Runs a consumer of `handler` without a relay until `true` is sent on the returned stop.
fn consume(
    bus: &Arc<dyn EventBus>,
    db: &DatabaseConnection,
    handler: Arc<dyn EventHandler>,
    options: ConsumerOptions,
) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let consuming = Consumer {
        bus: bus.clone(),
        db: db.clone(),
        handler,
        name: format!("c-{}", unique()),
        options,
        relay: None,
    }
    .spawn(async move {
        let _ = stopped.changed().await;
    });
    (stop, consuming)
}

/// `consumer` joining the recorder's group for `events`, without lingering.
fn member<'a>(consumer: &'a str, events: &'a [&'a str]) -> Member<'a> {
    Member { group: "recorder", consumer, events, linger: Duration::ZERO }
}

/// The next delivery of `deliveries`, within the tests' deadline.
async fn next_delivery(
    deliveries: &mut futures::stream::BoxStream<'static, super::bus::Delivery>,
) -> super::bus::Delivery {
    let next = tokio::time::timeout(Duration::from_secs(20), deliveries.next());
    next.await.expect("delivered within the deadline").expect("stream open")
}

/// Every bus to hold to the contract: in-process, and Redis when available.
async fn buses() -> Vec<(&'static str, Arc<dyn EventBus>)> {
    let mut buses: Vec<(&'static str, Arc<dyn EventBus>)> =
        vec![("in-process", Arc::new(InProcessBus::default()))];
    if let Ok(url) = std::env::var("TEST_REDIS_URL") {
        let options = RedisOptions {
            namespace: format!("test-{}", unique()),
            partitions: 4,
            lease: Duration::from_millis(600),
            ..RedisOptions::default()
        };
        buses.push(("redis", Arc::new(RedisStreamsBus::connect(&url, options).await.unwrap())));
    }
    buses
}

/// Applies events by writing (aggregate, seq) to `effects` in the handler's transaction;
/// fails the first `failures` attempts in all, and always (permanently) for `thing.poisoned`.
struct Recorder {
    attempts: AtomicU32,
    failures: u32,
    /// Put the write off to the commit: the unit then needs no transaction block.
    defer: bool,
}

impl Recorder {
    fn new(failures: u32) -> Arc<Self> {
        Arc::new(Self { attempts: AtomicU32::new(0), failures, defer: false })
    }

    /// A recorder whose only write is put off to the commit.
    fn deferring() -> Arc<Self> {
        Arc::new(Self { attempts: AtomicU32::new(0), failures: 0, defer: true })
    }
}

/// The effects applied (committed), in the order they were applied.
async fn seen(db: &DatabaseConnection) -> Vec<(String, i64)> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT aggregate, seq FROM effects ORDER BY n",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| (row.try_get("", "aggregate").unwrap(), row.try_get("", "seq").unwrap()))
        .collect()
}

impl EventHandler for Recorder {
    fn group(&self) -> &str {
        "recorder"
    }

    fn events(&self) -> &[&'static str] {
        &["thing.changed", "thing.poisoned"]
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if event.event_type == "thing.poisoned" {
                return Err(Permanent("cannot read this payload".into()).into());
            }
            if attempt <= self.failures {
                anyhow::bail!("transient failure {attempt}");
            }
            let seq = event.payload["seq"].as_i64().unwrap_or(-1);
            if self.defer {
                use sea_orm::sea_query::{Alias, Query};
                let insert = Query::insert()
                    .into_table(Alias::new("effects"))
                    .columns([Alias::new("aggregate"), Alias::new("seq")])
                    .values_panic([event.aggregate_id.clone().into(), seq.into()])
                    .to_owned();
                super::outbox::write_later(txn, insert).await?;
                return Ok(());
            }
            let backend = txn.get_database_backend();
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    DbBackend::Postgres => "INSERT INTO effects (aggregate, seq) VALUES ($1, $2)",
                    _ => "INSERT INTO effects (aggregate, seq) VALUES (?, ?)",
                },
                [event.aggregate_id.clone().into(), seq.into()],
            ))
            .await?;
            Ok(())
        })
    }
}

fn event(event_type: &str, aggregate: &str, seq: i64) -> EventEnvelope {
    EventEnvelope::new(event_type, 1, aggregate, serde_json::json!({ "seq": seq }))
}

fn consumer(bus: &Arc<dyn EventBus>, db: &DatabaseConnection, handler: Arc<Recorder>) -> Consumer {
    Consumer {
        bus: bus.clone(),
        db: db.clone(),
        handler,
        name: format!("c-{}", unique()),
        options: ConsumerOptions {
            max_attempts: 3,
            backoff: Duration::from_millis(5),
            lanes: 4,
            ..ConsumerOptions::default()
        },
        relay: None,
    }
}

/// Polls `check` until it holds, or fails after a deadline.
async fn eventually<F: Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within the deadline");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn each_event_is_handled_once_in_order_per_aggregate_even_when_published_twice() {
    // Writing at once (in a transaction), and putting the write off (one statement with the
    // inbox rows, no transaction block on PostgreSQL): a duplicate's inbox row undoes either.
    let mut cases = Vec::new();
    for defer in [false, true] {
        for (name, bus) in buses().await {
            cases.push((name, bus, if defer { Recorder::deferring() } else { Recorder::new(0) }));
        }
    }
    for (name, bus, recorder) in cases {
        let name = &format!("{name}, deferred: {}", recorder.defer);
        let (db, _scratch) = database().await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = consumer(&bus, &db, recorder.clone()).spawn(async {
            let _ = stopped.await;
        });
        let mut published = Vec::new();
        for seq in 0..20 {
            for aggregate in ["a", "b"] {
                let e = event("thing.changed", aggregate, seq);
                bus.publish(&e).await.unwrap();
                published.push(e);
            }
        }
        // Of a topic the group reads, but not a type it handles; and of a topic it does not
        // read at all.
        bus.publish(&event("thing.ignored", "a", 99)).await.unwrap();
        bus.publish(&event("other.changed", "a", 98)).await.unwrap();
        // A relay that crashed after publishing but before deleting its row publishes again.
        for e in &published[..5] {
            bus.publish(e).await.unwrap();
        }
        // Last in each aggregate: once they are handled, so are the duplicates before them.
        for aggregate in ["a", "b"] {
            bus.publish(&event("thing.changed", aggregate, 100)).await.unwrap();
        }
        eventually(name, || async { seen(&db).await.len() >= 42 }).await;
        let applied = seen(&db).await;
        for aggregate in ["a", "b"] {
            let mut order: Vec<i64> =
                applied.iter().filter(|(a, _)| a == aggregate).map(|(_, s)| *s).collect();
            if recorder.defer {
                // Writes put off by one batch go out as one statement, all at once: the serial
                // numbers PostgreSQL hands out inside it follow no order. Each once is the
                // claim here; the order of batches is the in-transaction case's.
                order.sort_unstable();
            }
            let expected: Vec<i64> = (0..20).chain([100]).collect();
            assert_eq!(order, expected, "{name}: aggregate {aggregate}");
        }
        let _ = stop.send(());
        running.await.unwrap();
        // The duplicates settled, and what handling them did was undone by their inbox rows.
        assert_eq!(seen(&db).await.len(), 42, "{name}");
        // Settled, not retried into the dead letters.
        assert!(bus.dead_letters("recorder").await.unwrap().is_empty(), "{name}");
    }
}

/// Records like [`Recorder`], but fails (retryably) when the event's effect is already
/// there: a handler that cannot apply an event twice.
struct OnceOnly;

impl EventHandler for OnceOnly {
    fn group(&self) -> &str {
        "recorder"
    }

    fn events(&self) -> &[&'static str] {
        &["thing.changed"]
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move {
            let seq = event.payload["seq"].as_i64().unwrap_or(-1);
            let backend = txn.get_database_backend();
            let (find, insert) = match backend {
                DbBackend::Postgres => (
                    "SELECT n FROM effects WHERE aggregate = $1 AND seq = $2",
                    "INSERT INTO effects (aggregate, seq) VALUES ($1, $2)",
                ),
                _ => (
                    "SELECT n FROM effects WHERE aggregate = ? AND seq = ?",
                    "INSERT INTO effects (aggregate, seq) VALUES (?, ?)",
                ),
            };
            let values = [event.aggregate_id.clone().into(), seq.into()];
            let there = txn
                .query_one_raw(Statement::from_sql_and_values(backend, find, values.clone()))
                .await?;
            anyhow::ensure!(there.is_none(), "already applied");
            txn.execute_raw(Statement::from_sql_and_values(backend, insert, values)).await?;
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_redelivery_the_handler_cannot_apply_again_is_settled_not_dead_lettered() {
    for (name, bus) in buses().await {
        let (db, _scratch) = database().await;
        let options = ConsumerOptions {
            max_attempts: 2,
            backoff: Duration::from_millis(5),
            ..ConsumerOptions::default()
        };
        let (stop, running) = consume(&bus, &db, Arc::new(OnceOnly), options);
        let first = event("thing.changed", "a", 1);
        bus.publish(&first).await.unwrap();
        eventually(name, || async { seen(&db).await.len() == 1 }).await;
        // Published again (a relay that died before deleting its row), then the next event.
        bus.publish(&first).await.unwrap();
        bus.publish(&event("thing.changed", "a", 2)).await.unwrap();
        eventually(name, || async { seen(&db).await.len() == 2 }).await;
        assert_eq!(seen(&db).await, vec![("a".to_string(), 1), ("a".to_string(), 2)], "{name}");
        let _ = stop.send(true);
        running.await.unwrap();
        // The inbox told the consumer the failing redelivery had been handled before.
        assert!(bus.dead_letters("recorder").await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_and_nothing_half_done_stays() {
    for (name, bus) in buses().await {
        let (db, _scratch) = database().await;
        // Two transient failures, then success: within the three attempts allowed.
        let recorder = Recorder::new(2);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = consumer(&bus, &db, recorder.clone()).spawn(async {
            let _ = stopped.await;
        });
        bus.publish(&event("thing.changed", "a", 1)).await.unwrap();
        let poison = event("thing.poisoned", "p", 0);
        bus.publish(&poison).await.unwrap();
        bus.publish(&event("thing.changed", "a", 2)).await.unwrap();
        eventually(name, || async { seen(&db).await.len() == 2 }).await;
        assert_eq!(seen(&db).await, vec![("a".to_string(), 1), ("a".to_string(), 2)], "{name}");
        let mut dead = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while dead.is_empty() && tokio::time::Instant::now() < deadline {
            dead = bus.dead_letters("recorder").await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(dead.len(), 1, "{name}");
        assert_eq!(dead[0].0.id, poison.id);
        assert!(dead[0].1.contains("cannot read this payload"), "{name}: {}", dead[0].1);
        let _ = stop.send(());
        running.await.unwrap();
        // The poison event's inbox row was rolled back with its failed handling.
        let handled = inbox::handle_once(&db, "recorder", &poison, |_| Box::pin(async { Ok(()) }));
        assert_eq!(handled.await.unwrap(), Handled::Now, "{name}");
    }
}

#[tokio::test]
async fn an_event_handled_but_never_acknowledged_is_redelivered_and_not_applied_twice() {
    for (name, bus) in buses().await {
        let (db, _scratch) = database().await;
        let recorder = Recorder::new(0);
        let e = event("thing.changed", "a", 7);
        // The first consumer handles the event and commits, then dies before acknowledging.
        let dying = format!("dying-{}", unique());
        let mut first = bus.consume(member(&dying, recorder.events()));
        bus.publish(&e).await.unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(20), first.next())
            .await
            .expect("delivered")
            .expect("stream open");
        let handler = recorder.clone();
        let applied = inbox::handle_once(&db, "recorder", &delivery.event, move |txn| {
            Box::pin(async move { handler.handle(txn, &e).await })
        });
        assert_eq!(applied.await.unwrap(), Handled::Now);
        drop(delivery);
        drop(first);
        // A new consumer (another process) gets it again; the inbox keeps it from applying
        // twice, and it is acknowledged this time.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = consumer(&bus, &db, recorder.clone()).spawn(async {
            let _ = stopped.await;
        });
        bus.publish(&event("thing.changed", "a", 8)).await.unwrap();
        eventually(name, || async { seen(&db).await.len() == 2 }).await;
        assert_eq!(seen(&db).await, vec![("a".to_string(), 7), ("a".to_string(), 8)], "{name}");
        let _ = stop.send(());
        running.await.unwrap();
    }
}

#[tokio::test]
async fn a_group_is_handed_only_the_types_it_handles_and_the_others_are_settled_unseen() {
    for (name, bus) in buses().await {
        let first = format!("narrow-{}", unique());
        let mut deliveries = bus.consume(member(&first, &["thing.changed"]));
        bus.publish(&event("thing.noticed", "a", 1)).await.unwrap();
        bus.publish(&event("thing.changed", "a", 2)).await.unwrap();
        let delivery = next_delivery(&mut deliveries).await;
        assert_eq!(delivery.event.event_type, "thing.changed", "{name}: the other type skipped");
        delivery.ack().await.unwrap();
        drop(deliveries);
        // A member of the same group that handles both types later (another version, after
        // the first one stopped) is not handed the skipped event: the group settled it.
        let second = format!("wide-{}", unique());
        let mut deliveries = bus.consume(member(&second, &["thing.changed", "thing.noticed"]));
        bus.publish(&event("thing.changed", "a", 3)).await.unwrap();
        let delivery = next_delivery(&mut deliveries).await;
        assert_eq!(delivery.event.payload["seq"], 3, "{name}: nothing owed before it");
        delivery.ack().await.unwrap();
    }
}

#[tokio::test]
async fn a_lingering_member_is_handed_every_event_in_order() {
    for (name, bus) in buses().await {
        let consumer = format!("lingering-{}", unique());
        let mut deliveries = bus.consume(Member {
            linger: Duration::from_millis(30),
            ..member(&consumer, &["thing.changed"])
        });
        let mut seen = Vec::new();
        // One at a time, then two at once: reads that bring one entry, reads that bring two.
        for published in [&[0][..], &[1, 2], &[3], &[4, 5]] {
            for seq in published {
                bus.publish(&event("thing.changed", "a", *seq)).await.unwrap();
            }
            for _ in published {
                let delivery = next_delivery(&mut deliveries).await;
                seen.push(delivery.event.payload["seq"].as_i64().unwrap());
                delivery.ack().await.unwrap();
            }
        }
        assert_eq!(seen, (0..6).collect::<Vec<i64>>(), "{name}");
    }
}

#[tokio::test]
async fn events_that_wait_are_handled_together_and_a_failing_batch_is_undone_then_redone_one_by_one()
 {
    for (name, bus) in buses().await {
        let (db, _scratch) = database().await;
        let recorder = Recorder::new(0);
        let consumer = consumer(&bus, &db, recorder.clone());
        let mut deliveries = bus.consume(member(&consumer.name, recorder.events()));
        let poison = event("thing.poisoned", "c", 0);
        let published =
            [event("thing.changed", "a", 1), poison.clone(), event("thing.changed", "a", 2)];
        for e in &published {
            bus.publish(e).await.unwrap();
        }
        // Three deliveries waiting in a lane at once.
        let mut waiting = Vec::new();
        while waiting.len() < published.len() {
            let next = tokio::time::timeout(Duration::from_secs(20), deliveries.next());
            waiting.push(next.await.expect("delivered").expect("stream open"));
        }
        // Redis gives different aggregates' entries in any order: where the poison stands
        // decides how far the batch got before it failed.
        let poison_at = waiting.iter().position(|d| d.event.id == poison.id).unwrap();
        consumer.settle_all(waiting).await;
        assert_eq!(
            seen(&db).await,
            vec![("a".to_string(), 1), ("a".to_string(), 2)],
            "{name}: each applied once, in order, nothing of the failed batch left"
        );
        // The batch up to the poison (which rolled it back), then all three one by one (the
        // poison dead-lettered at once).
        assert_eq!(recorder.attempts.load(Ordering::SeqCst) as usize, poison_at + 1 + 3, "{name}");
        let dead = bus.dead_letters("recorder").await.unwrap();
        assert_eq!(dead.len(), 1, "{name}");
        assert_eq!(dead[0].0.id, poison.id, "{name}");
    }
}

/// A feed that keeps what it is handed.
#[derive(Default)]
struct KeptFeed(std::sync::Mutex<Vec<uuid::Uuid>>);

impl super::outbox::LocalFeed for KeptFeed {
    fn types(&self) -> &[&'static str] {
        &["thing.noticed"]
    }

    fn deliver<'a>(
        &'a self,
        events: &'a [EventEnvelope],
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        self.0.lock().unwrap().extend(events.iter().map(|e| e.id));
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_relay_hands_feed_events_to_the_feed_and_the_rest_to_the_bus_without_failing_on_either_alone()
 {
    use super::outbox::{self, OutboxRelay};
    for (name, bus) in buses().await {
        let (db, _scratch) = database_with_outbox().await;
        let feed = Arc::new(KeptFeed::default());
        let relay = OutboxRelay::new(db.clone(), bus.clone()).with_feed(feed.clone());
        let mut watched = bus.subscribe("test", &["thing"]);

        // Feed events only: nothing for the bus, and no failure (Redis refuses an empty
        // pipeline; the relay used to send one and report the batch as failed).
        let noticed = [event("thing.noticed", "a", 1), event("thing.noticed", "a", 2)];
        outbox::append_all(&db, &noticed).await.unwrap();
        assert_eq!(relay.drain().await.unwrap(), 2, "{name}");
        assert_eq!(*feed.0.lock().unwrap(), vec![noticed[0].id, noticed[1].id], "{name}");
        assert!(bus.publish_all(&[]).await.1.is_none(), "{name}: publishing nothing");

        // Bus events only, then both kinds in one batch.
        let changed = event("thing.changed", "a", 3);
        outbox::append(&db, &changed).await.unwrap();
        assert_eq!(relay.drain().await.unwrap(), 1, "{name}");
        let mixed = [event("thing.noticed", "a", 4), event("thing.changed", "a", 5)];
        outbox::append_all(&db, &mixed).await.unwrap();
        assert_eq!(relay.drain().await.unwrap(), 2, "{name}");
        assert_eq!(relay.drain().await.unwrap(), 0, "{name}: nothing left pending");
        assert_eq!(feed.0.lock().unwrap().len(), 3, "{name}");
        for expected in [changed.id, mixed[1].id] {
            let next = tokio::time::timeout(Duration::from_secs(20), watched.next());
            assert_eq!(next.await.expect("published").expect("open").id, expected, "{name}");
        }
    }
}

/// Answers every `thing.changed` with a `reply.sent` recorded in its outbox, and nothing else.
struct Replier;

impl EventHandler for Replier {
    fn group(&self) -> &str {
        "replier"
    }

    fn events(&self) -> &[&'static str] {
        &["thing.changed", "thing.noticed"]
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move {
            if event.event_type == "thing.changed" {
                let seq = event.payload["seq"].as_i64().unwrap_or(-1);
                let reply = EventEnvelope::new(
                    "reply.sent",
                    1,
                    event.aggregate_id.clone(),
                    serde_json::json!({ "seq": seq }),
                );
                super::outbox::append(txn, &reply.caused_by(event)).await?;
            }
            Ok(())
        })
    }
}

#[tokio::test]
async fn what_a_handler_records_goes_out_after_its_commit_without_waiting_for_the_sweep() {
    use super::outbox::OutboxRelay;
    for (name, bus) in buses().await {
        let (db, _scratch) = database_with_outbox().await;
        let relay = OutboxRelay::new(db.clone(), bus.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut relay_stop = stopped.clone();
        // A sweep far beyond the deadline: only a wake after the commit sends the replies.
        let relaying = tokio::spawn(relay.clone().run(Duration::from_secs(3600), async move {
            let _ = relay_stop.changed().await;
        }));
        let mut replies = bus.subscribe("test", &["reply"]);
        let mut consumer_stop = stopped.clone();
        let consuming = Consumer {
            bus: bus.clone(),
            db: db.clone(),
            handler: Arc::new(Replier),
            name: format!("c-{}", unique()),
            options: ConsumerOptions { lanes: 1, ..ConsumerOptions::default() },
            relay: Some(relay),
        }
        .spawn(async move {
            let _ = consumer_stop.changed().await;
        });
        // One at a time (handled alone), then a burst (handled together in one transaction),
        // with events that record nothing in between.
        let mut expected = Vec::new();
        for seq in 0..12 {
            bus.publish(&event("thing.noticed", "a", seq)).await.unwrap();
            bus.publish(&event("thing.changed", "a", seq)).await.unwrap();
            expected.push(seq);
            if seq == 0 {
                let first = tokio::time::timeout(Duration::from_secs(20), replies.next()).await;
                assert_eq!(first.expect("replied").expect("open").payload["seq"], 0, "{name}");
            }
        }
        let mut got = vec![0];
        while got.len() < expected.len() {
            let next = tokio::time::timeout(Duration::from_secs(20), replies.next()).await;
            let reply = next.unwrap_or_else(|_| panic!("{name}: replies {got:?} only")).unwrap();
            got.push(reply.payload["seq"].as_i64().unwrap());
        }
        assert_eq!(got, expected, "{name}: one reply per change, in order");
        let _ = stop.send(true);
        consuming.await.unwrap();
        relaying.await.unwrap();
    }
}

/// A bus that refuses the first `failures` publications, then carries on as `inner`.
struct Flaky {
    inner: Arc<dyn EventBus>,
    failures: AtomicU32,
}

impl EventBus for Flaky {
    fn publish<'a>(
        &'a self,
        event: &'a EventEnvelope,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Box::pin(async { Err(anyhow::anyhow!("the bus is down")) });
        }
        self.inner.publish(event)
    }

    fn subscribe(
        &self,
        name: &str,
        topics: &[&str],
    ) -> futures::stream::BoxStream<'static, EventEnvelope> {
        self.inner.subscribe(name, topics)
    }

    fn consume(
        &self,
        member: super::bus::Member<'_>,
    ) -> futures::stream::BoxStream<'static, super::bus::Delivery> {
        self.inner.consume(member)
    }

    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<Vec<(EventEnvelope, String)>>> {
        self.inner.dead_letters(group)
    }

    fn still_owed(&self, ids: &[uuid::Uuid]) -> std::collections::HashSet<uuid::Uuid> {
        self.inner.still_owed(ids)
    }
}

#[tokio::test]
async fn committed_events_go_out_in_order_without_a_sweep_and_after_a_bus_failure() {
    use super::outbox::{self, OutboxRelay};
    use sea_orm::{EntityTrait, TransactionTrait};
    for (name, bus) in buses().await {
        let (db, _scratch) = database_with_outbox().await;
        // Part way, the bus refuses one publication: the relay must then read the outbox,
        // in order, rather than let later events overtake the one that failed.
        let flaky = Arc::new(Flaky { inner: bus.clone(), failures: AtomicU32::new(0) });
        let relay = OutboxRelay::new(db.clone(), flaky.clone());
        let mut watched = bus.subscribe("test", &["thing"]);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        // A sweep far beyond the deadline: what goes out, goes out because it was handed over
        // (or because a failure made the relay read).
        let relaying = tokio::spawn(relay.clone().run(Duration::from_secs(3600), async move {
            let _ = stopped.changed().await;
        }));
        let mut sent = Vec::new();
        for seq in 0..6 {
            if seq == 2 {
                flaky.failures.store(1, Ordering::SeqCst);
            }
            let txn = db.begin().await.unwrap();
            // Appended inside `deferring`, one by one and several at once, as handlers do.
            let ((), events) = outbox::deferring(async {
                outbox::append(&txn, &event("thing.changed", "a", seq * 2)).await.unwrap();
                let more = [event("thing.changed", "a", seq * 2 + 1)];
                outbox::append_all(&txn, &more).await.unwrap();
            })
            .await;
            sent.extend(events.events.iter().map(|e| e.id));
            relay.commit(txn, events).await.unwrap();
        }
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let next = tokio::time::timeout(Duration::from_secs(20), watched.next()).await;
            let event =
                next.unwrap_or_else(|_| panic!("{name}: {} of {} only", got.len(), sent.len()));
            let id = event.expect("open").id;
            // A failure may send an event twice (at least once); never out of order.
            if got.last() != Some(&id) && !got.contains(&id) {
                got.push(id);
            }
        }
        assert_eq!(got, sent, "{name}: every event once, in commit order");
        // Deleted soon after, so that a later reading does not send them again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let pending = outbox::entity::Entity::find().all(&db).await.unwrap().len();
            if pending == 0 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{name}: {pending} rows left");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(true);
        relaying.await.unwrap();
    }
}

/// Handles the `thing.changed` events with an even `seq` only: the others ask nothing of it.
#[derive(Default)]
struct Picky(std::sync::Mutex<Vec<i64>>);

impl EventHandler for Picky {
    fn group(&self) -> &str {
        "picky"
    }

    fn events(&self) -> &[&'static str] {
        &["thing.changed"]
    }

    fn concerns(&self, event: &EventEnvelope) -> bool {
        event.payload["seq"].as_i64().is_some_and(|seq| seq % 2 == 0)
    }

    fn handle<'t>(&'t self, _txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        self.0.lock().unwrap().push(event.payload["seq"].as_i64().unwrap_or(-1));
        Box::pin(async { Ok(()) })
    }
}

/// The ids of the first `n` events `relay` sends to `watched` (reading the outbox once at
/// start), the relay stopped after.
async fn relayed(
    relay: &super::outbox::OutboxRelay,
    watched: &mut futures::stream::BoxStream<'static, EventEnvelope>,
    n: usize,
) -> Vec<uuid::Uuid> {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let relaying = tokio::spawn(relay.clone().run(Duration::from_secs(3600), async move {
        let _ = stopped.changed().await;
    }));
    let mut got = Vec::new();
    while got.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(20), watched.next()).await;
        got.push(next.expect("an event in time").expect("open").id);
    }
    let _ = stop.send(true);
    relaying.await.unwrap();
    got
}

#[tokio::test]
async fn a_units_put_off_writes_commit_with_its_events_or_not_at_all() {
    use super::outbox::{self, OutboxRelay};
    use sea_orm::sea_query::{Alias, Query};
    use sea_orm::{EntityTrait, TransactionTrait};
    let (db, _scratch) = database_with_outbox().await;
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let mut watched = bus.subscribe("test", &["thing"]);
    let effect = |n: i64, aggregate: &str| {
        Query::insert()
            .into_table(Alias::new("effects"))
            .columns([Alias::new("n"), Alias::new("aggregate"), Alias::new("seq")])
            .values_panic([n.into(), aggregate.into(), n.into()])
            .to_owned()
    };
    let effects = |aggregate: &'static str| {
        let db = db.clone();
        async move {
            let sql = format!("SELECT COUNT(*) AS n FROM effects WHERE aggregate = '{aggregate}'");
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap()
        }
    };
    let outbox_rows = || async { outbox::entity::Entity::find().all(&db).await.unwrap().len() };

    // Put off inside a unit of work: nothing is written until the commit, then all of it.
    let first = event("thing.changed", "a", 1);
    let ((), unit) = outbox::deferring(async {
        outbox::write_later(&db, effect(1, "a")).await.unwrap();
        outbox::append(&db, &first).await.unwrap();
        outbox::write_later(&db, effect(2, "a")).await.unwrap();
    })
    .await;
    assert_eq!(effects("a").await, 0, "a put-off write waits for the commit");
    assert_eq!((unit.writes.len(), unit.events.len()), (2, 1));
    relay.commit_alone(unit).await.unwrap();
    assert_eq!(effects("a").await, 2);
    assert_eq!(outbox_rows().await, 1);

    // A unit one of whose writes fails (a taken key) leaves nothing: no write, no outbox row,
    // no event.
    let failed = event("thing.changed", "b", 1);
    let unit = outbox::Deferred {
        writes: vec![effect(3, "b").into(), effect(1, "b").into()],
        events: vec![failed.clone()],
        ..outbox::Deferred::default()
    };
    assert!(relay.commit_alone(unit).await.is_err(), "the taken key fails the unit");
    assert_eq!(effects("b").await, 0, "the unit's other write is undone too");
    assert_eq!(outbox_rows().await, 1);

    // In a transaction, put-off writes go with the commit as well.
    let last = event("thing.changed", "c", 1);
    let txn = db.begin().await.unwrap();
    let ((), unit) = outbox::deferring(async {
        outbox::write_later(&txn, effect(4, "c")).await.unwrap();
        outbox::append(&txn, &last).await.unwrap();
    })
    .await;
    relay.commit(txn, unit).await.unwrap();
    assert_eq!(effects("c").await, 1);
    assert_eq!(outbox_rows().await, 2);

    // Outside a unit of work, a put-off write is simply written.
    outbox::write_later(&db, effect(5, "d")).await.unwrap();
    assert_eq!(effects("d").await, 1);

    // The relay sends what committed, and nothing of the failed unit.
    assert_eq!(relayed(&relay, &mut watched, 2).await, vec![first.id, last.id]);
}

/// The `effects` table as an entity, for guards (which name their table).
mod effect {
    use sea_orm::entity::prelude::*;

    /// One effect row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "effects")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub n: i64,
        pub aggregate: String,
        pub seq: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Effect row `n` at `seq`.
fn effect_row(n: i64, seq: i64) -> effect::ActiveModel {
    use sea_orm::ActiveValue::Set;
    effect::ActiveModel { n: Set(n), aggregate: Set("x".into()), seq: Set(seq) }
}

/// Moves effect row `n` from `from` to `from + 1`, if it is still at `from`.
fn moving(n: i64, from: i64) -> sea_orm::UpdateMany<effect::Entity> {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    effect::Entity::update_many()
        .col_expr(effect::Column::Seq, Expr::value(from + 1))
        .filter(effect::Column::N.eq(n))
        .filter(effect::Column::Seq.eq(from))
}

/// The `seq` of effect row `n`, if it is there.
async fn effect_seq(db: &sea_orm::DatabaseConnection, n: i64) -> Option<i64> {
    use sea_orm::EntityTrait;
    effect::Entity::find_by_id(n).one(db).await.unwrap().map(|r| r.seq)
}

#[tokio::test]
async fn a_guarded_change_is_written_only_if_its_update_still_changes_a_row() {
    use super::outbox::{self, Guard, OutboxRelay};
    use sea_orm::EntityTrait;
    let (db, _scratch) = database_with_outbox().await;
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let mut watched = bus.subscribe("test", &["thing"]);
    effect::Entity::insert(effect_row(1, 0)).exec_without_returning(&db).await.unwrap();
    // Moves row 1 from `from` to `from + 1`; with it, row `made` and `event`.
    let guard = |from: i64, made: i64, event: &EventEnvelope| {
        let update = moving(1, from);
        Guard::new(update).insert([effect_row(made, from + 1)]).append([event.clone()])
    };
    let seq_of = |n: i64| effect_seq(&db, n);
    let recorded = |id: uuid::Uuid| {
        let db = db.clone();
        async move { outbox::entity::Entity::find_by_id(id).one(&db).await.unwrap().is_some() }
    };

    // A unit that only read puts the guard off to its commit: one statement on PostgreSQL.
    let first = event("thing.changed", "a", 1);
    let unit = Unit::new(db.clone());
    let (seq, deferred) = outbox::deferring(async {
        let seen = effect::Entity::find_by_id(1).one(&unit).await.unwrap().map(|r| r.seq);
        outbox::write_guarded(&unit, guard(0, 10, &first)).await.unwrap();
        // A read of another table leaves the guard waiting (and begins nothing).
        inbox::entity::Entity::find().all(&unit).await.unwrap();
        seen
    })
    .await;
    assert_eq!(seq, Some(0));
    assert_eq!(deferred.guards.len(), 1, "the guard waits for the commit");
    match unit.into_begun() {
        // On SQLite every statement begins the transaction.
        Some(txn) => {
            assert_ne!(db.get_database_backend(), DbBackend::Postgres, "reads alone begin none");
            relay.commit(txn, deferred).await.unwrap();
        }
        None => {
            assert_eq!(seq_of(10).await, None, "nothing is written before the commit");
            relay.commit_alone(deferred).await.unwrap();
        }
    }
    assert_eq!((seq_of(1).await, seq_of(10).await), (Some(1), Some(1)));
    assert!(recorded(first.id).await);

    // The same change again no longer applies: neither its row nor its event is written,
    // while an unguarded event of the same commit is; and a guard that applies, beside it
    // in the same commit, is.
    let (stale, plain, fresh) = (
        event("thing.changed", "a", 2),
        event("thing.changed", "b", 1),
        event("thing.changed", "a", 3),
    );
    let unit = Unit::new(db.clone());
    let ((), deferred) = outbox::deferring(async {
        outbox::write_guarded(&unit, guard(0, 11, &stale)).await.unwrap();
        outbox::append(&unit, &plain).await.unwrap();
        outbox::write_guarded(&unit, guard(1, 12, &fresh)).await.unwrap();
    })
    .await;
    relay.commit_alone(deferred).await.unwrap();
    assert_eq!((seq_of(1).await, seq_of(11).await, seq_of(12).await), (Some(2), None, Some(2)));
    assert!(!recorded(stale.id).await, "the stale change records nothing");
    assert!(recorded(plain.id).await && recorded(fresh.id).await);

    // A later statement of the unit that names the guard's table sees the guard applied.
    let last = event("thing.changed", "a", 4);
    let unit = Unit::new(db.clone());
    let (seq, deferred) = outbox::deferring(async {
        outbox::write_guarded(&unit, guard(2, 13, &last)).await.unwrap();
        effect::Entity::find_by_id(1).one(&unit).await.unwrap().map(|r| r.seq)
    })
    .await;
    assert_eq!(seq, Some(3), "the read saw the guarded update");
    let txn = unit.into_begun().expect("applying the guard began the transaction");
    relay.commit(txn, deferred).await.unwrap();
    assert_eq!((seq_of(1).await, seq_of(13).await), (Some(3), Some(3)));
    assert!(recorded(last.id).await);

    // Outside a unit of work, a guard is applied at once.
    let once = event("thing.changed", "a", 5);
    outbox::write_guarded(&db, guard(3, 14, &once)).await.unwrap();
    outbox::write_guarded(&db, guard(3, 15, &event("thing.changed", "a", 6))).await.unwrap();
    assert_eq!((seq_of(14).await, seq_of(15).await), (Some(4), None));

    // The relay sends exactly what was recorded, in order.
    let got = relayed(&relay, &mut watched, 5).await;
    assert_eq!(got, vec![first.id, plain.id, fresh.id, last.id, once.id]);
}

#[tokio::test]
async fn a_refused_guard_records_its_otherwise_events_and_one_whose_work_was_done_records_nothing()
{
    use super::outbox::{self, Guard, OutboxRelay};
    use sea_orm::sea_query::{Expr, Query};
    use sea_orm::{ColumnTrait, EntityTrait, QueryOrder};
    let (db, _scratch) = database_with_outbox().await;
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let mut watched = bus.subscribe("test", &["thing"]);
    let rows = [effect_row(1, 0), effect_row(2, 0), effect_row(3, 0)];
    effect::Entity::insert_many(rows).exec_without_returning(&db).await.unwrap();
    // Moves row `n` from `from` to `from + 1` and makes row `made`, with `done` if it
    // changed a row, `refused` if not; nothing at all when row `unless` is there.
    let guard = |n: i64, from: i64, made: i64, unless: i64, outcome: [&EventEnvelope; 2]| {
        let update = moving(n, from);
        let found = Query::select()
            .expr(Expr::val(1))
            .from(effect::Entity)
            .and_where(effect::Column::N.eq(unless))
            .to_owned();
        Guard::new(update)
            .insert([effect_row(made, from + 1)])
            .append([outcome[0].clone()])
            .otherwise([outcome[1].clone()])
            .unless(found)
    };
    let seq_of = |n: i64| effect_seq(&db, n);
    let events: Vec<EventEnvelope> = (1..=8).map(|seq| event("thing.changed", "a", seq)).collect();

    // In one commit (one statement on PostgreSQL): a guard that applies records its events,
    // one whose condition no longer holds records its refusal, one whose work was done
    // records neither and changes nothing, though its update would apply.
    let unit = Unit::new(db.clone());
    let ((), deferred) = outbox::deferring(async {
        let applies = guard(1, 0, 10, 99, [&events[0], &events[1]]);
        let refused = guard(2, 5, 11, 99, [&events[2], &events[3]]);
        let done_before = guard(3, 0, 12, 1, [&events[4], &events[5]]);
        for guard in [applies, refused, done_before] {
            outbox::write_guarded(&unit, guard).await.unwrap();
        }
    })
    .await;
    assert!(unit.into_begun().is_none() || db.get_database_backend() != DbBackend::Postgres);
    relay.commit_alone(deferred).await.unwrap();
    let seqs = [seq_of(1).await, seq_of(2).await, seq_of(3).await];
    assert_eq!(seqs, [Some(1), Some(0), Some(0)], "only the applying guard's update ran");
    let made = [seq_of(10).await, seq_of(11).await, seq_of(12).await];
    assert_eq!(made, [Some(1), None, None], "only the applying guard's row was made");

    // Applied at once, outside a unit of work, alike.
    outbox::write_guarded(&db, guard(2, 5, 13, 99, [&events[6], &events[7]])).await.unwrap();
    outbox::write_guarded(&db, guard(2, 0, 14, 10, [&events[6], &events[7]])).await.unwrap();
    assert_eq!((seq_of(2).await, seq_of(13).await, seq_of(14).await), (Some(0), None, None));

    let recorded = outbox::entity::Entity::find()
        .order_by_asc(outbox::entity::Column::Id)
        .all(&db)
        .await
        .unwrap();
    let recorded: Vec<uuid::Uuid> = recorded.into_iter().map(|row| row.id).collect();
    assert_eq!(recorded, vec![events[0].id, events[3].id, events[7].id]);
    let got = relayed(&relay, &mut watched, 3).await;
    assert_eq!(got, recorded, "the relay sends them in order");
}

#[tokio::test]
async fn guards_about_different_aggregates_wait_for_one_commit_and_one_about_the_same_is_applied_first()
 {
    use super::outbox::{self, Guard, OutboxRelay};
    use sea_orm::EntityTrait;
    let (db, _scratch) = database_with_outbox().await;
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let mut watched = bus.subscribe("test", &["thing"]);
    let rows = [effect_row(1, 0), effect_row(2, 0)];
    effect::Entity::insert_many(rows).exec_without_returning(&db).await.unwrap();
    // Moves row `n` from `from` to `from + 1`, recording `event`.
    let guard = |n: i64, from: i64, event: &EventEnvelope| {
        let update = moving(n, from);
        Guard::new(update).append([event.clone()])
    };
    async fn read(unit: &Unit, n: i64) -> Option<i64> {
        effect::Entity::find_by_id(n).one(unit).await.unwrap().map(|r| r.seq)
    }
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    let (one, two, again) = (
        event("thing.changed", "1", 1),
        event("thing.changed", "2", 1),
        event("thing.changed", "1", 2),
    );

    // Work about row 1, then work about row 2 reading the same table: the first guard is
    // not applied before the second's read, so both wait for the commit's one statement
    // and nothing begins a transaction on PostgreSQL.
    let unit = Unit::new(db.clone());
    let (seen, deferred) = outbox::deferring(async {
        outbox::about("1", async {
            assert_eq!(read(&unit, 1).await, Some(0));
            outbox::write_guarded(&unit, guard(1, 0, &one)).await.unwrap();
        })
        .await;
        outbox::about("2", async {
            let seen = read(&unit, 2).await;
            outbox::write_guarded(&unit, guard(2, 0, &two)).await.unwrap();
            seen
        })
        .await
    })
    .await;
    assert_eq!(seen, Some(0));
    assert_eq!(deferred.guards.len(), 2, "both guards wait for the commit");
    match unit.into_begun() {
        Some(txn) => {
            assert!(!postgres, "reads about other rows begin nothing on PostgreSQL");
            relay.commit(txn, deferred).await.unwrap();
        }
        None => relay.commit_alone(deferred).await.unwrap(),
    }
    assert_eq!((effect_seq(&db, 1).await, effect_seq(&db, 2).await), (Some(1), Some(1)));

    // Work about row 1 again: its read sees its own waiting guard applied; and so does work
    // about no aggregate in particular.
    for scoped in [true, false] {
        let unit = Unit::new(db.clone());
        let from = effect_seq(&db, 1).await.unwrap();
        let event = if scoped { again.clone() } else { event("thing.changed", "1", 3) };
        let work = async {
            outbox::write_guarded(&unit, guard(1, from, &event)).await.unwrap();
            read(&unit, 1).await
        };
        let (seen, deferred) = outbox::deferring(async {
            if scoped { outbox::about("1", work).await } else { work.await }
        })
        .await;
        assert_eq!(seen, Some(from + 1), "the read saw the guard about its own row");
        let txn = unit.into_begun().expect("applying the guard began the transaction");
        relay.commit(txn, deferred).await.unwrap();
    }
    assert_eq!(effect_seq(&db, 1).await, Some(3));
    let got = relayed(&relay, &mut watched, 4).await;
    assert_eq!(got.len(), 4);
    assert_eq!(&got[..3], &[one.id, two.id, again.id]);
}

#[tokio::test]
async fn events_that_ask_nothing_of_a_consumer_are_acknowledged_without_touching_its_database() {
    use sea_orm::{EntityTrait, PaginatorTrait};
    for (name, bus) in buses().await {
        let (db, _scratch) = database().await;
        let picky = Arc::new(Picky::default());
        let options = ConsumerOptions { lanes: 1, ..ConsumerOptions::default() };
        let (stop, consuming) = consume(&bus, &db, picky.clone(), options);
        for seq in [0, 1, 2, 3, 5, 100] {
            bus.publish(&event("thing.changed", "a", seq)).await.unwrap();
        }
        // One lane, in order: once the last one is handled, the others were settled.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !picky.0.lock().unwrap().contains(&100) {
            assert!(tokio::time::Instant::now() < deadline, "{name}: the last event never came");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*picky.0.lock().unwrap(), vec![0, 2, 100], "{name}");
        // The handler saw the last event before its transaction committed: wait for the commit.
        let rows = loop {
            let rows = inbox::entity::Entity::find().count(&db).await.unwrap();
            if rows >= 3 || tokio::time::Instant::now() > deadline {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(rows, 3, "{name}: inbox rows for the handled events only");
        let _ = stop.send(true);
        consuming.await.unwrap();
        assert!(bus.dead_letters("picky").await.unwrap().is_empty(), "{name}");
    }
}

/// Does nothing with `events`, and lets those of `lingering` wait: a read model no one waits
/// on, or a context with a follow-up no one waits on beside a step of the checkout.
struct Idle {
    group: &'static str,
    events: &'static [&'static str],
    lingering: &'static [&'static str],
}

impl EventHandler for Idle {
    fn group(&self) -> &str {
        self.group
    }

    fn events(&self) -> &[&'static str] {
        self.events
    }

    fn may_linger(&self, event_type: &str) -> bool {
        self.lingering.contains(&event_type)
    }

    fn handle<'t>(&'t self, _txn: &'t Unit, _event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async { Ok(()) })
    }
}

/// One lane (so every event meets the others in it) that lingers `linger`.
fn one_lane_lingering(linger: Duration) -> ConsumerOptions {
    ConsumerOptions { lanes: 1, linger, ..ConsumerOptions::default() }
}

/// The inbox rows of `db` once there are `count` of them (within the tests' deadline).
async fn inbox_rows(
    what: &str,
    db: &DatabaseConnection,
    count: usize,
) -> Vec<inbox::entity::Model> {
    use sea_orm::EntityTrait;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = inbox::entity::Entity::find().all(db).await.unwrap();
        if rows.len() == count {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} of {count} handled",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_consumer_that_may_linger_handles_events_arriving_close_together_in_one_transaction() {
    for (name, bus) in buses().await {
        let (db, _scratch) = database().await;
        // Far longer than publishing the eight events takes.
        let options = one_lane_lingering(Duration::from_secs(2));
        let patient =
            Idle { group: "patient", events: &["thing.changed"], lingering: &["thing.changed"] };
        let (stop, consuming) = consume(&bus, &db, Arc::new(patient), options);
        // A little apart, as events come under load: each would be handled alone at once.
        for seq in 0..8 {
            bus.publish(&event("thing.changed", &format!("agg-{seq}"), seq)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let rows = inbox_rows(name, &db, 8).await;
        // One transaction writes all its inbox rows with one timestamp.
        let mut commits: Vec<_> = rows.iter().map(|r| r.handled_at).collect();
        commits.dedup();
        assert_eq!(commits.len(), 1, "{name}: handled together, not one by one");
        let _ = stop.send(true);
        consuming.await.unwrap();
    }
}

#[tokio::test]
async fn an_event_someone_waits_on_ends_the_lingering_of_those_before_it() {
    for (name, bus) in buses().await {
        let (db, _scratch) = database().await;
        // Far longer than the test's deadline: only an early end lets it pass.
        let options = one_lane_lingering(Duration::from_secs(600));
        let hurried = Idle {
            group: "hurried",
            events: &["thing.changed", "thing.noticed"],
            lingering: &["thing.noticed"],
        };
        let (stop, consuming) = consume(&bus, &db, Arc::new(hurried), options);
        bus.publish(&event("thing.noticed", "a", 1)).await.unwrap();
        // Published once the noticed event is surely lingering in the lane.
        tokio::time::sleep(Duration::from_millis(50)).await;
        bus.publish(&event("thing.changed", "b", 2)).await.unwrap();
        let rows = inbox_rows(name, &db, 2).await;
        assert_eq!(rows[0].handled_at, rows[1].handled_at, "{name}: handled together");
        let _ = stop.send(true);
        consuming.await.unwrap();
    }
}

#[tokio::test]
async fn the_relay_deletes_any_number_of_published_rows() {
    use super::outbox::{self, OutboxRelay};
    use sea_orm::EntityTrait;
    let (db, _scratch) = database_with_outbox().await;
    let relay = OutboxRelay::new(db.clone(), Arc::new(InProcessBus::default()));
    let kept = [event("thing.changed", "a", 1), event("thing.changed", "a", 2)];
    outbox::append_all(&db, &kept).await.unwrap();
    // More than one statement may carry (SQLite takes 32,766 parameters): what piled up
    // while the database was slow.
    let mut ids: Vec<uuid::Uuid> = (0..40_000).map(|_| uuid::Uuid::now_v7()).collect();
    ids.extend(kept.iter().map(|e| e.id));
    let other = event("thing.changed", "b", 1);
    outbox::append(&db, &other).await.unwrap();
    relay.forget(&ids).await.expect("deleted in several statements");
    let rows = outbox::entity::Entity::find().all(&db).await.unwrap();
    let left: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    assert_eq!(left, vec![other.id], "every published row deleted, the pending one kept");
}

/// Counts how many of its handlings overlap, and allows one lane only.
#[derive(Default)]
struct OneAtATime {
    running: AtomicU32,
    most: AtomicU32,
    handled: AtomicU32,
}

impl EventHandler for OneAtATime {
    fn group(&self) -> &str {
        "one-at-a-time"
    }

    fn events(&self) -> &[&'static str] {
        &["thing.changed"]
    }

    fn max_lanes(&self) -> Option<usize> {
        Some(1)
    }

    fn handle<'t>(&'t self, _txn: &'t Unit, _event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            // Long enough for other lanes, were there any, to start theirs meanwhile.
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// Telling on PostgreSQL (CI), where four lanes would overlap; on SQLite the pool's one
/// connection serializes every handling anyway.
#[tokio::test]
async fn a_handler_limited_to_one_lane_never_handles_two_aggregates_at_once() {
    for (name, bus) in buses().await {
        let (db, _scratch) = database().await;
        let handler = Arc::new(OneAtATime::default());
        let options = ConsumerOptions { lanes: 4, ..ConsumerOptions::default() };
        let (stop, consuming) = consume(&bus, &db, handler.clone(), options);
        for seq in 0..16 {
            bus.publish(&event("thing.changed", &format!("agg-{seq}"), seq)).await.unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while handler.handled.load(Ordering::SeqCst) < 16 {
            assert!(tokio::time::Instant::now() < deadline, "{name}: not all handled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(handler.most.load(Ordering::SeqCst), 1, "{name}: one lane, one at a time");
        let _ = stop.send(true);
        consuming.await.unwrap();
    }
}

#[tokio::test]
async fn a_unit_begins_its_transaction_at_its_first_write_or_locking_read() {
    let (db, _scratch) = database().await;
    let backend = db.get_database_backend();
    let count = |sql: &'static str| Statement::from_string(backend, sql);
    let rows = |found: Option<sea_orm::QueryResult>| {
        found.and_then(|row| row.try_get_by_index::<i64>(0).ok()).unwrap_or(-1)
    };

    // On PostgreSQL reads alone begin nothing: they run on the pool. (On SQLite, whose one
    // connection serializes writers, they begin it.)
    let unit = Unit::new(db.clone());
    let read = unit.query_one_raw(count("SELECT COUNT(*) FROM effects")).await.unwrap();
    assert_eq!(rows(read), 0);
    let began = unit.into_begun();
    assert_eq!(began.is_some(), backend != DbBackend::Postgres, "a plain read's transaction");
    drop(began);

    // A write begins it; the unit's later reads go to it and see the write, which no one
    // else sees before the commit.
    let unit = Unit::new(db.clone());
    let insert = "INSERT INTO effects (aggregate, seq) VALUES ('u', 1)";
    unit.execute_unprepared(insert).await.unwrap();
    let inside = unit.query_one_raw(count("SELECT COUNT(*) FROM effects")).await.unwrap();
    assert_eq!(rows(inside), 1, "the unit reads its own write");
    if backend == DbBackend::Postgres {
        // (SQLite's one connection is the transaction's until it ends.)
        let outside = db.query_one_raw(count("SELECT COUNT(*) FROM effects")).await.unwrap();
        assert_eq!(rows(outside), 0, "not committed yet");
    }
    unit.into_begun().expect("the write began a transaction").commit().await.unwrap();
    let after = db.query_one_raw(count("SELECT COUNT(*) FROM effects")).await.unwrap();
    assert_eq!(rows(after), 1);

    // A read that locks rows holds them until the commit: it begins the transaction too.
    if backend == DbBackend::Postgres {
        let unit = Unit::new(db.clone());
        let locking = count("SELECT seq FROM effects WHERE aggregate = 'u' FOR UPDATE");
        unit.query_all_raw(locking).await.unwrap();
        let txn = unit.into_begun().expect("a locking read began a transaction");
        txn.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn an_in_process_event_left_unhandled_by_a_stop_is_relayed_again_at_the_next_start() {
    use super::outbox::{self, OutboxRelay};
    let (db, _scratch) = database_with_outbox().await;
    let pending = || async {
        use sea_orm::EntityTrait;
        super::outbox::entity::Entity::find().all(&db).await.unwrap().len()
    };
    // Run one: a group joins, the event reaches it, and the process stops before the group
    // settles it.
    let first: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
    let mut deliveries = first.consume(member("c1", &["thing.changed"]));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let relay = OutboxRelay::new(db.clone(), first.clone());
    let relaying = tokio::spawn(relay.clone().run(Duration::from_secs(3600), async move {
        let _ = stopped.changed().await;
    }));
    let changed = event("thing.changed", "a", 1);
    outbox::append(&db, &changed).await.unwrap();
    relay.wake();
    let unsettled = next_delivery(&mut deliveries).await;
    assert_eq!(unsettled.event.id, changed.id);
    // The relay deletes what went out as it stops: not what a group still owes.
    let _ = stop.send(true);
    relaying.await.unwrap();
    std::mem::forget(unsettled); // the process is gone: nothing settles or requeues it
    drop(deliveries);
    assert_eq!(pending().await, 1, "kept through the stop");

    // Run two, a new process: the event is relayed again, handled, and then forgotten.
    let second: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
    let mut deliveries = second.consume(member("c2", &["thing.changed"]));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let relaying = tokio::spawn(OutboxRelay::new(db.clone(), second.clone()).run(
        Duration::from_secs(3600),
        async move {
            let _ = stopped.changed().await;
        },
    ));
    let again = next_delivery(&mut deliveries).await;
    assert_eq!(again.event.id, changed.id, "relayed again at the start");
    again.ack().await.unwrap();
    eventually("the settled event's row deleted", || async { pending().await == 0 }).await;
    let _ = stop.send(true);
    relaying.await.unwrap();
}
