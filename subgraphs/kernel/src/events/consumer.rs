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
use sea_orm::DatabaseConnection;

use super::EventEnvelope;
use super::bus::{Delivery, EventBus, Member};
use super::inbox::{Claim, Work, handled_before};
use super::outbox::{self, OutboxRelay};
use super::unit::Unit;

/// What a consuming context does with events.
pub trait EventHandler: Send + Sync + 'static {
    /// The consumer group: one per consuming context.
    fn group(&self) -> &str;

    /// The event types this handler applies. The consumer reads their topics only; other
    /// types of those topics are acknowledged unread.
    fn events(&self) -> &[&'static str];

    /// Applies `event` inside `txn` (the inbox row is in the same transaction). Events the
    /// handler appends to its outbox in `txn` go out once it commits. The transaction begins
    /// at the first statement that writes or locks (see [`Unit`]): a handler that only reads
    /// and puts its writes off needs none.
    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t>;

    /// Applies `events` (each given once, in the order the bus gave them) inside `txn`, as
    /// [`EventHandler::handle`] would one after the other, which is what it does by default.
    /// A handler that can apply several events in fewer statements says so here.
    fn handle_all<'t>(&'t self, txn: &'t Unit, events: &'t [&'t EventEnvelope]) -> Work<'t> {
        Box::pin(async move {
            for event in events {
                self.handle(txn, event).await?;
            }
            Ok(())
        })
    }

    /// Whether no one waits on the handling of events of `event_type` (a read model, a
    /// follow-up after the purchase): the consumer may then hold such an event for
    /// [`ConsumerOptions::linger`] to handle what arrives meanwhile in the same transaction.
    /// An event someone waits on ends the wait at once, and is handled with what waited.
    /// False by default.
    fn may_linger(&self, event_type: &str) -> bool {
        let _ = event_type;
        false
    }

    /// The most lanes this handler may run in (default: as many as configured). A handler
    /// whose events lock rows shared between aggregates (stock, by product) takes one: a
    /// batch of several aggregates' events locks those rows in event order, and two lanes'
    /// batches could lock them in opposite orders and deadlock.
    fn max_lanes(&self) -> Option<usize> {
        None
    }

    /// Whether `event`, of one of [`EventHandler::events`], asks anything of this context,
    /// judged from the envelope alone (a guest's order asks nothing of a context that serves
    /// customers, say). One that does not is acknowledged without a transaction or an inbox
    /// row: with nothing to apply, there is nothing to apply twice. When in doubt (a payload
    /// this version cannot read), say yes, and let [`EventHandler::handle`] judge.
    fn concerns(&self, event: &EventEnvelope) -> bool {
        let _ = event;
        true
    }
}

/// For [`EventHandler::concerns`]: false only when the payload names no customer
/// (`"customerId": null`, a guest's order); a payload without the field is judged by
/// the handler.
pub fn names_a_customer(event: &EventEnvelope) -> bool {
    !event.payload.get("customerId").is_some_and(serde_json::Value::is_null)
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
    /// For a handler that [may linger](EventHandler::may_linger): how long a lane waits
    /// after an event for more, to handle them together.
    pub linger: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff: Duration::from_millis(50),
            lanes: 4,
            linger: Duration::ZERO,
        }
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

/// Adds to `waiting` what arrives within `linger`, up to a full batch, unless (or until)
/// something waiting may not linger.
async fn gather(
    rx: &mut tokio::sync::mpsc::Receiver<Delivery>,
    waiting: &mut Vec<Delivery>,
    linger: Duration,
    may_linger: impl Fn(&Delivery) -> bool,
) {
    let until = tokio::time::Instant::now() + linger;
    let mut seen = 0;
    while waiting.len() < MAX_BATCH {
        if !waiting[seen..].iter().all(&may_linger) {
            return;
        }
        seen = waiting.len();
        let room = MAX_BATCH - waiting.len();
        match tokio::time::timeout_at(until, rx.recv_many(waiting, room)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
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
    /// The consuming context's relay, handed what each commit recorded.
    pub relay: Option<OutboxRelay>,
}

impl Consumer {
    /// Joins the group now (so no event published from here on is missed), then consumes
    /// in a task until `shutdown` resolves; a delivery being handled is finished first.
    pub fn spawn(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        // The bus may hold back reads only when every event may wait.
        let events = self.handler.events();
        let linger = if events.iter().all(|t| self.handler.may_linger(t)) {
            self.options.linger
        } else {
            Duration::ZERO
        };
        let deliveries = self.bus.consume(Member {
            group: self.handler.group(),
            consumer: &self.name,
            events,
            linger,
        });
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
        let lanes_wanted = this
            .handler
            .max_lanes()
            .map_or(this.options.lanes, |most| this.options.lanes.min(most));
        for _ in 0..lanes_wanted.max(1) {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Delivery>(16);
            lanes.push(tx);
            let this = this.clone();
            workers.spawn(async move {
                let mut waiting = Vec::with_capacity(MAX_BATCH);
                let may_linger = |d: &Delivery| this.handler.may_linger(&d.event.event_type);
                while rx.recv_many(&mut waiting, MAX_BATCH).await > 0 {
                    if !this.options.linger.is_zero() {
                        gather(&mut rx, &mut waiting, this.options.linger, may_linger).await;
                    }
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

    /// Whether the handler has anything to do with `event`.
    fn applies(&self, event: &EventEnvelope) -> bool {
        self.handler.events().contains(&event.event_type.as_str()) && self.handler.concerns(event)
    }

    /// Handles deliveries that waited in one lane, in order: those the handler has nothing
    /// to do with are acknowledged at once, the rest handled in one transaction when there
    /// are several (one by one, with retries, when that fails).
    pub(crate) async fn settle_all(&self, deliveries: Vec<Delivery>) {
        let (handled, unread): (Vec<Delivery>, Vec<Delivery>) =
            deliveries.into_iter().partition(|d| self.applies(&d.event));
        let acks = unread.into_iter().map(Delivery::ack);
        for settled in futures::future::join_all(acks).await {
            self.finish(settled);
        }
        if handled.len() > 1 {
            let events: Vec<&EventEnvelope> = handled.iter().map(|d| &d.event).collect();
            match self.handle_together(&events).await {
                Ok(()) => {
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

    /// Applies `events` in one transaction with their inbox rows. The inbox rows are the
    /// transaction's last write, in one statement with the writes the handler put off and the
    /// events it records (which are handed to the relay once committed): an event handled
    /// before fails that statement and undoes the whole transaction, and the caller then
    /// learns from the inbox that there is nothing to do (see [`Consumer::settle`]). Claiming
    /// last rather than first saves a round trip per transaction; a redelivery is rare, and
    /// applying it only to undo it costs nothing but its own time. When the handler began no
    /// transaction (it only read, and put its writes off), that one statement is the whole
    /// unit of work, with no transaction block around it.
    async fn handle_together(&self, events: &[&EventEnvelope]) -> anyhow::Result<()> {
        // An event given twice in one batch is applied once.
        let mut seen = std::collections::HashSet::with_capacity(events.len());
        let events: Vec<&EventEnvelope> =
            events.iter().copied().filter(|event| seen.insert(event.id)).collect();
        let unit = Unit::new(self.db.clone());
        let (handled, deferred) = outbox::deferring(self.handler.handle_all(&unit, &events)).await;
        handled?;
        let claim = Claim { consumer: self.handler.group(), events: &events };
        match (unit.into_begun(), &self.relay) {
            (Some(txn), Some(relay)) => relay.commit_claiming(txn, Some(&claim), deferred).await?,
            (None, Some(relay)) => relay.commit_alone_claiming(Some(&claim), deferred).await?,
            (begun, None) => {
                let txn = match begun {
                    Some(txn) => txn,
                    None => sea_orm::TransactionTrait::begin(&self.db).await?,
                };
                outbox::write_all(&txn, deferred, Some(&claim)).await?;
                txn.commit().await?;
            }
        }
        Ok(())
    }

    /// Handles one delivery to the end: acknowledged, or dead-lettered.
    pub async fn settle(&self, delivery: Delivery) {
        let group = self.handler.group();
        if !self.applies(&delivery.event) {
            self.finish(delivery.ack().await);
            return;
        }
        let mut attempt = delivery.redeliveries;
        loop {
            attempt += 1;
            let error = match self.handle_together(&[&delivery.event]).await {
                Ok(()) => {
                    self.finish(delivery.ack().await);
                    return;
                }
                Err(error) => error,
            };
            // Handled before (a redelivery): its inbox row undid this attempt, or the
            // handler failed on what the first handling left. Nothing to do but settle it.
            match handled_before(&self.db, group, delivery.event.id).await {
                Ok(true) => {
                    self.finish(delivery.ack().await);
                    return;
                }
                Ok(false) => {}
                Err(inbox_error) => tracing::warn!(
                    group,
                    event_id = %delivery.event.id,
                    error = %inbox_error,
                    "reading the inbox after a failed handling failed"
                ),
            }
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
