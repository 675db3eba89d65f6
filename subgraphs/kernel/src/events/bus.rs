//! The event bus: how published envelopes reach consumers. The embedded default is the
//! [`InProcessBus`]; production uses Redis Streams ([`super::redis::RedisStreamsBus`]) behind
//! the same [`EventBus`] trait.
//!
//! Events travel by *topic* (see [`super::topic_of`]). Consumers join a *group* (one per
//! consuming context) on the topics they read: each event is delivered to one consumer of
//! every group reading its topic, and stays owed to the group until a consumer settles it
//! ([`Delivery::ack`] after its transaction committed, or [`Delivery::dead_letter`]). A
//! delivery dropped unsettled — its consumer died — is delivered again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::{Notify, broadcast};
use tokio_stream_shim::BroadcastStream;
use uuid::Uuid;

use super::EventEnvelope;

/// Publishing and consuming, whatever carries the events.
pub trait EventBus: Send + Sync + 'static {
    /// Publishes one envelope; returns once the bus has accepted it.
    fn publish<'a>(&'a self, event: &'a EventEnvelope) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Publishes `events` in order; returns how many the bus accepted (all of them, or the
    /// ones before the first failure) and that failure. Buses that can send several at once
    /// override it.
    fn publish_all<'a>(
        &'a self,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, (usize, Option<anyhow::Error>)> {
        Box::pin(async move {
            for (n, event) in events.iter().enumerate() {
                if let Err(error) = self.publish(event).await {
                    return (n, Some(error));
                }
            }
            (events.len(), None)
        })
    }

    /// Every envelope of `topics` published after this call, without acknowledgement: for
    /// tests and live views that may miss events. `name` only labels the watcher in logs.
    fn subscribe(&self, name: &str, topics: &[&str]) -> BoxStream<'static, EventEnvelope>;

    /// Joins a consumer group: deliveries of every event of the member's types not yet
    /// settled by the group, in publication order per aggregate. Events of other types that
    /// share a topic with those are the group's to settle without delivering them.
    fn consume(&self, member: Member<'_>) -> BoxStream<'static, Delivery>;

    /// Events the group gave up on, oldest first, with the reason (operators inspect these).
    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<(EventEnvelope, String)>>>;

    /// Of the events `ids` published here, those the bus holds only in memory and still owes
    /// a group: the outbox keeps their rows (relayed again after a restart) until this no
    /// longer names them. A bus that keeps what it accepted (Redis) owes nothing here.
    fn still_owed(&self, ids: &[Uuid]) -> HashSet<Uuid> {
        let _ = ids;
        HashSet::new()
    }
}

/// A consumer joining its group ([`EventBus::consume`]).
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// The consumer group: one per consuming context.
    pub group: &'a str,
    /// This consumer's name within the group.
    pub consumer: &'a str,
    /// The event types the group handles; the bus reads their topics.
    pub events: &'a [&'a str],
    /// How long the bus may wait, after handing over what it read, before it reads again,
    /// so that what arrives meanwhile comes in one read (zero: read again at once). For
    /// groups no one waits on: each read is a round trip and a wake-up, whatever it brings.
    pub linger: Duration,
}

impl Member<'_> {
    /// The topics of the member's event types, each once.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.events.iter().map(|t| super::topic_of(t)).collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }
}

/// How a delivery is settled with the bus it came from.
pub trait Settle: Send {
    /// The group is done with the event.
    fn ack(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>>;
    /// The group gives up on the event: it moves to the group's dead letters.
    fn dead_letter(self: Box<Self>, reason: String) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// One event delivered to one consumer of a group.
pub struct Delivery {
    /// The event.
    pub event: EventEnvelope,
    /// How many times it was delivered to the group before (0 the first time).
    pub redeliveries: u32,
    settle: Box<dyn Settle>,
}

impl Delivery {
    /// A delivery settled through `settle`.
    pub fn new(event: EventEnvelope, redeliveries: u32, settle: Box<dyn Settle>) -> Self {
        Self { event, redeliveries, settle }
    }

    /// Acknowledges the event: call only once the consumer's transaction has committed.
    pub async fn ack(self) -> anyhow::Result<()> {
        self.settle.ack().await
    }

    /// Moves the event to the group's dead letters with `reason`.
    pub async fn dead_letter(self, reason: String) -> anyhow::Result<()> {
        self.settle.dead_letter(reason).await
    }
}

/// The embedded bus: groups and their pending events inside the process.
///
/// Within the process, delivery is at-least-once per group like the Redis bus: an event
/// delivered to a consumer that goes away unsettled goes back to the head of its group's
/// queue. Across a restart, durability comes from the outbox: the bus counts the groups each
/// event is owed to ([`EventBus::still_owed`]), and the relay keeps an event's row until
/// every one of them has settled it, so whatever a stop or a crash left unhandled is relayed
/// again at the next start (consumers' inboxes absorb what was handled already).
#[derive(Clone)]
pub struct InProcessBus {
    watchers: broadcast::Sender<EventEnvelope>,
    groups: Arc<Mutex<HashMap<String, Arc<Group>>>>,
    /// Per published event, how many groups have yet to settle it.
    owed: Owed,
}

/// Events queued for groups, with how many groups have yet to settle each.
type Owed = Arc<Mutex<HashMap<Uuid, usize>>>;

/// One group's queue of undelivered events, and its dead letters.
#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
    ready: Notify,
}

#[derive(Default)]
struct GroupState {
    /// The event types the group handles: only these are queued for it.
    events: HashSet<String>,
    /// Events waiting for a consumer, with how often each was delivered before.
    queue: VecDeque<(EventEnvelope, u32)>,
    dead: Vec<(EventEnvelope, String)>,
}

impl InProcessBus {
    /// A bus whose watchers may fall up to `capacity` events behind.
    pub fn new(capacity: usize) -> Self {
        let (watchers, _) = broadcast::channel(capacity);
        Self { watchers, groups: Arc::default(), owed: Arc::default() }
    }

    fn group(&self, name: &str) -> Arc<Group> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.entry(name.to_string()).or_default().clone()
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventBus for InProcessBus {
    fn publish<'a>(&'a self, event: &'a EventEnvelope) -> BoxFuture<'a, anyhow::Result<()>> {
        // No watcher is not an error: the event is simply of interest to nobody now.
        let _ = self.watchers.send(event.clone());
        let groups: Vec<Arc<Group>> =
            self.groups.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let owing: Vec<Arc<Group>> = groups
            .into_iter()
            .filter(|g| {
                g.state.lock().unwrap_or_else(|p| p.into_inner()).events.contains(&event.event_type)
            })
            .collect();
        // Counted before any group can settle it: a settlement never finds it missing.
        if !owing.is_empty() {
            *self.owed.lock().unwrap_or_else(|p| p.into_inner()).entry(event.id).or_default() +=
                owing.len();
        }
        for group in owing {
            group
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .queue
                .push_back((event.clone(), 0));
            group.ready.notify_one();
        }
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self, name: &str, topics: &[&str]) -> BoxStream<'static, EventEnvelope> {
        let topics: HashSet<String> = topics.iter().map(|t| t.to_string()).collect();
        Box::pin(
            BroadcastStream::new(self.watchers.subscribe(), name.to_string()).filter(move |e| {
                std::future::ready(topics.contains(super::topic_of(&e.event_type)))
            }),
        )
    }

    fn consume(&self, member: Member<'_>) -> BoxStream<'static, Delivery> {
        // Handing over is a queue pop here: nothing to gain from lingering.
        let group = self.group(member.group);
        group
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .extend(member.events.iter().map(|t| t.to_string()));
        let owed = self.owed.clone();
        Box::pin(futures::stream::unfold(group, move |group| {
            let owed = owed.clone();
            async move {
                loop {
                    let next =
                        group.state.lock().unwrap_or_else(|p| p.into_inner()).queue.pop_front();
                    if let Some((event, redeliveries)) = next {
                        let settle = InProcessSettle {
                            group: group.clone(),
                            owed: owed.clone(),
                            event: Some((event.clone(), redeliveries)),
                        };
                        return Some((Delivery::new(event, redeliveries, Box::new(settle)), group));
                    }
                    group.ready.notified().await;
                }
            }
        }))
    }

    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<(EventEnvelope, String)>>> {
        let dead = self.group(group).state.lock().unwrap_or_else(|p| p.into_inner()).dead.clone();
        Box::pin(async move { Ok(dead) })
    }

    fn still_owed(&self, ids: &[Uuid]) -> HashSet<Uuid> {
        let owed = self.owed.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter().filter(|id| owed.contains_key(id)).copied().collect()
    }
}

/// Settles an in-process delivery; dropped unsettled, it puts the event back first in line.
struct InProcessSettle {
    group: Arc<Group>,
    owed: Owed,
    event: Option<(EventEnvelope, u32)>,
}

impl InProcessSettle {
    /// One group fewer owes `event`.
    fn settled(&self, event: &EventEnvelope) {
        let mut owed = self.owed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = owed.get_mut(&event.id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                owed.remove(&event.id);
            }
        }
    }
}

impl Settle for InProcessSettle {
    fn ack(mut self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        if let Some((event, _)) = self.event.take() {
            self.settled(&event);
        }
        Box::pin(async { Ok(()) })
    }

    fn dead_letter(mut self: Box<Self>, reason: String) -> BoxFuture<'static, anyhow::Result<()>> {
        if let Some((event, _)) = self.event.take() {
            tracing::error!(event_id = %event.id, event_type = %event.event_type, %reason, "event dead-lettered");
            self.group
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .dead
                .push((event.clone(), reason));
            self.settled(&event);
        }
        Box::pin(async { Ok(()) })
    }
}

impl Drop for InProcessSettle {
    fn drop(&mut self) {
        if let Some((event, redeliveries)) = self.event.take() {
            let mut state = self.group.state.lock().unwrap_or_else(|p| p.into_inner());
            state.queue.push_front((event, redeliveries + 1));
            drop(state);
            self.group.ready.notify_one();
        }
    }
}

/// A minimal `Stream` over a broadcast receiver that logs (and skips) lagged gaps.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::Stream;
    use futures::future::BoxFuture;
    use tokio::sync::broadcast::{Receiver, error::RecvError};

    use crate::events::EventEnvelope;

    type Recv = BoxFuture<'static, (Result<EventEnvelope, RecvError>, Receiver<EventEnvelope>)>;

    pub struct BroadcastStream {
        inner: Recv,
        consumer: String,
    }

    impl BroadcastStream {
        pub fn new(rx: Receiver<EventEnvelope>, consumer: String) -> Self {
            Self { inner: Box::pin(next(rx)), consumer }
        }
    }

    async fn next(
        mut rx: Receiver<EventEnvelope>,
    ) -> (Result<EventEnvelope, RecvError>, Receiver<EventEnvelope>) {
        let result = rx.recv().await;
        (result, rx)
    }

    impl Stream for BroadcastStream {
        type Item = EventEnvelope;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            loop {
                let (result, rx) = match self.inner.as_mut().poll(cx) {
                    Poll::Ready(out) => out,
                    Poll::Pending => return Poll::Pending,
                };
                self.inner = Box::pin(next(rx));
                match result {
                    Ok(event) => return Poll::Ready(Some(event)),
                    Err(RecvError::Closed) => return Poll::Ready(None),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(consumer = %self.consumer, skipped = n, "event consumer lagged");
                    }
                }
            }
        }
    }
}
