//! Running a consumer group: every delivery is handled at most once in effect (through the
//! [`inbox`](super::inbox)), acknowledged only after its transaction committed, retried with
//! backoff when it fails, and dead-lettered after a bounded number of attempts (at once when
//! the handler says the failure is [`Permanent`]). Deliveries are spread over a few lanes by
//! aggregate: one aggregate's events are handled one at a time in the order the bus gives
//! them, different aggregates' side by side. When events wait in a lane (the consumer is
//! busy), the lane handles what waited in one transaction: under load each event costs less,
//! and when that transaction fails they are handled one by one, each with its own retries.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{DatabaseConnection, DatabaseTransaction};

use super::EventEnvelope;
use super::bus::{Delivery, EventBus};
use super::inbox::{Work, claim_all, handle_once};
use super::outbox::{self, OutboxRelay};

/// What a consuming context does with events.
pub trait EventHandler: Send + Sync + 'static {
    /// The consumer group: one per consuming context.
    fn group(&self) -> &str;

    /// The event types this handler applies. The consumer reads their topics only; other
    /// types of those topics are acknowledged unread.
    fn events(&self) -> &[&'static str];

    /// Applies `event` inside `txn` (the inbox row is in the same transaction). Events the
    /// handler appends to its outbox in `txn` go out once it commits.
    fn handle<'t>(&'t self, txn: &'t DatabaseTransaction, event: &'t EventEnvelope) -> Work<'t>;
}

/// A failure that retrying cannot fix (a payload this version cannot read, say): the event
/// goes to the dead letters at once.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Permanent(pub String);

/// Reads an event's payload as `T`, for a handler that reads payload `version` 1; another
/// version, or a payload that does not fit, is [`Permanent`]: retrying cannot fix it.
pub fn read_payload<T: serde::de::DeserializeOwned>(event: &EventEnvelope) -> anyhow::Result<T> {
    if event.version != 1 {
        return Err(Permanent(format!(
            "{} version {} is not one this consumer reads",
            event.event_type, event.version
        ))
        .into());
    }
    serde_json::from_value(event.payload.clone())
        .map_err(|e| Permanent(format!("unreadable {} payload: {e}", event.event_type)).into())
}

/// Retry policy.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Attempts (deliveries included) before an event is dead-lettered.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
    /// Deliveries handled side by side (each aggregate always in the same lane).
    pub lanes: usize,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self { max_attempts: 5, backoff: Duration::from_millis(50), lanes: 4 }
    }
}

/// Most events a lane handles in one transaction.
const MAX_BATCH: usize = 32;

/// The lane of an aggregate (stable for the life of the process).
fn lane_of(aggregate: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    aggregate.hash(&mut hasher);
    (hasher.finish() % lanes.max(1) as u64) as usize
}

/// A running consumer of one group.
pub struct Consumer {
    /// Carries the events.
    pub bus: Arc<dyn EventBus>,
    /// The consuming context's database (its inbox lives there).
    pub db: DatabaseConnection,
    /// What to do with events.
    pub handler: Arc<dyn EventHandler>,
    /// This process's name within the group.
    pub name: String,
    /// Retry policy.
    pub options: ConsumerOptions,
    /// The consuming context's relay, woken after each commit.
    pub relay: Option<OutboxRelay>,
}

impl Consumer {
    /// Joins the group now (so no event published from here on is missed), then consumes
    /// in a task until `shutdown` resolves; a delivery being handled is finished first.
    pub fn spawn(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let mut topics: Vec<&str> =
            self.handler.events().iter().map(|t| super::topic_of(t)).collect();
        topics.sort_unstable();
        topics.dedup();
        let deliveries = self.bus.consume(self.handler.group(), &self.name, &topics);
        tokio::spawn(self.run(deliveries, shutdown))
    }

    async fn run(
        self,
        mut deliveries: futures::stream::BoxStream<'static, Delivery>,
        shutdown: impl Future<Output = ()>,
    ) {
        let this = Arc::new(self);
        let mut lanes = Vec::new();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..this.options.lanes.max(1) {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Delivery>(16);
            lanes.push(tx);
            let this = this.clone();
            workers.spawn(async move {
                let mut waiting = Vec::with_capacity(MAX_BATCH);
                while rx.recv_many(&mut waiting, MAX_BATCH).await > 0 {
                    this.settle_all(std::mem::take(&mut waiting)).await;
                }
            });
        }
        tokio::pin!(shutdown);
        loop {
            let delivery = tokio::select! {
                _ = &mut shutdown => break,
                next = deliveries.next() => match next {
                    Some(delivery) => delivery,
                    None => break,
                },
            };
            let lane = lane_of(&delivery.event.aggregate_id, lanes.len());
            if lanes[lane].send(delivery).await.is_err() {
                break;
            }
        }
        // Lanes finish what they already hold, then stop.
        drop(lanes);
        while workers.join_next().await.is_some() {}
    }

    /// Handles deliveries that waited in one lane, in order: those of types the handler does
    /// not apply are acknowledged at once, the rest handled in one transaction when there are
    /// several (one by one, with retries, when that fails).
    pub(crate) async fn settle_all(&self, deliveries: Vec<Delivery>) {
        let (handled, unread): (Vec<Delivery>, Vec<Delivery>) = deliveries
            .into_iter()
            .partition(|d| self.handler.events().contains(&d.event.event_type.as_str()));
        let acks = unread.into_iter().map(Delivery::ack);
        for settled in futures::future::join_all(acks).await {
            self.finish(settled);
        }
        if handled.len() > 1 {
            let events: Vec<&EventEnvelope> = handled.iter().map(|d| &d.event).collect();
            match self.handle_together(&events).await {
                Ok(recorded) => {
                    self.wake_relay(recorded);
                    let acks = handled.into_iter().map(Delivery::ack);
                    for settled in futures::future::join_all(acks).await {
                        self.finish(settled);
                    }
                    return;
                }
                Err(error) => tracing::warn!(
                    group = self.handler.group(),
                    events = handled.len(),
                    error = format!("{error:#}"),
                    "handling events together failed; handling them one by one"
                ),
            }
        }
        for delivery in handled {
            self.settle(delivery).await;
        }
    }

    /// Applies every event not handled before in one transaction with their inbox rows.
    /// The inbox rows go in one statement, and so do the events the handler records; how
    /// many it recorded is returned.
    async fn handle_together(&self, events: &[&EventEnvelope]) -> anyhow::Result<usize> {
        use sea_orm::TransactionTrait;
        let txn = self.db.begin().await?;
        let mut fresh = claim_all(&txn, self.handler.group(), events).await?;
        let (handled, recorded) = outbox::deferring(async {
            for event in events {
                // `remove`: an event given twice in one batch is applied once.
                if fresh.remove(&event.id) {
                    self.handler.handle(&txn, event).await?;
                }
            }
            anyhow::Ok(())
        })
        .await;
        handled?;
        outbox::append_all(&txn, &recorded).await?;
        txn.commit().await?;
        Ok(recorded.len())
    }

    /// Wakes the relay when a commit recorded events. Most handlings record none (the
    /// after-purchase read models, confirmations of what is already known); waking the relay
    /// for them would cost an outbox query that finds nothing.
    fn wake_relay(&self, recorded: usize) {
        if let (Some(relay), true) = (&self.relay, recorded > 0) {
            relay.wake();
        }
    }

    /// Handles one delivery to the end: acknowledged, or dead-lettered.
    pub async fn settle(&self, delivery: Delivery) {
        let group = self.handler.group();
        if !self.handler.events().contains(&delivery.event.event_type.as_str()) {
            self.finish(delivery.ack().await);
            return;
        }
        let mut attempt = delivery.redeliveries;
        loop {
            attempt += 1;
            let (handler, event) = (self.handler.clone(), delivery.event.clone());
            let recorded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counted = recorded.clone();
            let result = handle_once(&self.db, group, &delivery.event, move |txn| {
                Box::pin(async move {
                    // What the handler records is written in one statement before the commit,
                    // and counted, so the relay is woken only when there is something to send.
                    let (handled, events) = outbox::deferring(handler.handle(txn, &event)).await;
                    handled?;
                    outbox::append_all(txn, &events).await?;
                    counted.store(events.len(), std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                })
            })
            .await;
            let error = match result {
                Ok(_) => {
                    self.wake_relay(recorded.load(std::sync::atomic::Ordering::Relaxed));
                    self.finish(delivery.ack().await);
                    return;
                }
                Err(error) => error,
            };
            let permanent = error.downcast_ref::<Permanent>().is_some();
            if permanent || attempt >= self.options.max_attempts {
                let reason = format!("{error:#}");
                self.finish(delivery.dead_letter(reason).await);
                return;
            }
            tracing::warn!(
                group,
                event_id = %delivery.event.id,
                event_type = %delivery.event.event_type,
                attempt,
                error = format!("{error:#}"),
                "event handling failed; retrying"
            );
            let wait = self.options.backoff * 2u32.saturating_pow(attempt.saturating_sub(1));
            tokio::time::sleep(wait.min(Duration::from_secs(10))).await;
        }
    }

    fn finish(&self, settled: anyhow::Result<()>) {
        if let Err(error) = settled {
            // The bus will deliver the event again; the inbox makes that harmless.
            tracing::error!(
                group = self.handler.group(),
                error = format!("{error:#}"),
                "settling an event failed"
            );
        }
    }
}
