//! The event backbone's contract, run against the in-process bus always and against Redis
//! Streams when `TEST_REDIS_URL` is set; the inbox on SQLite, or on PostgreSQL when
//! `TEST_DATABASE_URL` is set.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Schema};

use super::EventEnvelope;
use super::bus::{EventBus, InProcessBus};
use super::consumer::{Consumer, ConsumerOptions, EventHandler, Permanent};
use super::inbox::{self, Handled, Work};
use super::redis::{RedisOptions, RedisStreamsBus};
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
    (db, Scratch(dir))
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

/// Records what it handled; fails the first `failures` attempts of each event, or always
/// (permanently) for events of type `poison`.
struct Recorder {
    seen: Mutex<Vec<(String, i64)>>,
    attempts: AtomicU32,
    failures: u32,
}

impl Recorder {
    fn new(failures: u32) -> Arc<Self> {
        Arc::new(Self { seen: Mutex::default(), attempts: AtomicU32::new(0), failures })
    }

    fn seen(&self) -> Vec<(String, i64)> {
        self.seen.lock().unwrap().clone()
    }
}

impl EventHandler for Recorder {
    fn group(&self) -> &str {
        "recorder"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type != "ignored"
    }

    fn handle<'t>(&'t self, _txn: &'t DatabaseTransaction, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if event.event_type == "poison" {
                return Err(Permanent("cannot read this payload".into()).into());
            }
            if attempt <= self.failures {
                anyhow::bail!("transient failure {attempt}");
            }
            let seq = event.payload["seq"].as_i64().unwrap_or(-1);
            self.seen.lock().unwrap().push((event.aggregate_id.clone(), seq));
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
        options: ConsumerOptions { max_attempts: 3, backoff: Duration::from_millis(5), lanes: 4 },
        relay: None,
    }
}

/// Polls `check` until it holds, or fails after a deadline.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within the deadline");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn each_event_is_handled_once_in_order_per_aggregate_even_when_published_twice() {
    for (name, bus) in buses().await {
        let (db, _scratch) = database().await;
        let recorder = Recorder::new(0);
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
        bus.publish(&event("ignored", "a", 99)).await.unwrap();
        // A relay that crashed after publishing but before marking its row publishes again.
        for e in &published[..5] {
            bus.publish(e).await.unwrap();
        }
        // Last in each aggregate: once they are handled, so are the duplicates before them.
        for aggregate in ["a", "b"] {
            bus.publish(&event("thing.changed", aggregate, 100)).await.unwrap();
        }
        eventually(name, || recorder.seen().len() >= 42).await;
        let seen = recorder.seen();
        for aggregate in ["a", "b"] {
            let order: Vec<i64> =
                seen.iter().filter(|(a, _)| a == aggregate).map(|(_, s)| *s).collect();
            let expected: Vec<i64> = (0..20).chain([100]).collect();
            assert_eq!(order, expected, "{name}: aggregate {aggregate}");
        }
        let _ = stop.send(());
        running.await.unwrap();
        // The duplicates settled without running the handler again.
        assert_eq!(recorder.seen().len(), 42, "{name}");
        assert_eq!(recorder.attempts.load(Ordering::SeqCst), 42, "{name}");
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
        let poison = event("poison", "p", 0);
        bus.publish(&poison).await.unwrap();
        bus.publish(&event("thing.changed", "a", 2)).await.unwrap();
        eventually(name, || recorder.seen().len() == 2).await;
        assert_eq!(recorder.seen(), vec![("a".to_string(), 1), ("a".to_string(), 2)], "{name}");
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
        let mut first = bus.consume("recorder", &format!("dying-{}", unique()));
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
        eventually(name, || recorder.seen().len() == 2).await;
        assert_eq!(recorder.seen(), vec![("a".to_string(), 7), ("a".to_string(), 8)], "{name}");
        let _ = stop.send(());
        running.await.unwrap();
    }
}
