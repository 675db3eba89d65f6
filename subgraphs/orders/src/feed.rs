//! The status feed: every committed change of an order's status, live, for subscriptions.
//!
//! A transition writes an `order.status_changed` row into the orders' outbox in its own
//! transaction; the relay hands those rows to this feed (not to the bus: no other context
//! consumes them) once they are committed, so a subscriber never sees a change that was rolled
//! back. In the embedded default the feed is an in-process broadcast. With Redis, the relay
//! PUBLISHes each change on one channel and every orders replica SUBSCRIBEs to it, so a
//! subscriber on any replica sees a change made on any other.
//!
//! Subscribers listen to one order or to one customer's orders: a change is handed only to
//! the listeners of its order and of its customer (an index, not a broadcast to every
//! subscriber), so ten thousand subscriptions cost a change two lookups, not ten thousand
//! wake-ups. A subscriber that falls behind, or a replica whose Redis subscription broke, gets
//! a [`FeedItem::Gap`]: it is told it missed changes, never silently skipped.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use kernel::events::EventEnvelope;
use kernel::events::outbox::LocalFeed;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::domain::Status;

/// The outbox event type of a status change.
pub const STATUS_CHANGED: &str = "order.status_changed";

/// How many changes a slow subscriber may be behind before it is told it missed some.
const CAPACITY: usize = 16;

/// What a subscriber listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// One order's changes.
    Order(Uuid),
    /// Every change of one customer's orders.
    Customer(Uuid),
}

/// One committed change of an order's status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    /// The order.
    pub order_id: Uuid,
    /// Its customer (`None` for a guest order).
    pub customer_id: Option<Uuid>,
    /// The status entered.
    pub status: String,
    /// The status left (`None` when the order was placed).
    pub previous_status: Option<String>,
    /// Why (cancellations, failed deliveries).
    pub reason: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl StatusChange {
    /// Whether nothing follows this change.
    pub fn is_final(&self) -> bool {
        Status::parse(&self.status).is_ok_and(Status::is_final)
    }

    /// The outbox row announcing it.
    pub fn envelope(&self) -> EventEnvelope {
        let payload = serde_json::to_value(self).unwrap_or_default();
        EventEnvelope::new(STATUS_CHANGED, 1, self.order_id, payload)
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// A change.
    Change(Arc<StatusChange>),
    /// Changes were missed (the subscriber fell behind, or the feed's connection broke).
    Gap,
}

/// The feed of one orders process.
pub struct StatusFeed {
    topics: std::sync::Mutex<std::collections::HashMap<Topic, broadcast::Sender<FeedItem>>>,
    redis: Option<RedisFeed>,
}

struct RedisFeed {
    client: redis::Client,
    channel: String,
    publisher: tokio::sync::OnceCell<redis::aio::MultiplexedConnection>,
}

impl StatusFeed {
    /// An in-process feed.
    pub fn in_process() -> Arc<Self> {
        Arc::new(Self { topics: Default::default(), redis: None })
    }

    /// A feed over Redis pub/sub on `{namespace}:order-status`; call [`StatusFeed::listen`]
    /// to receive what other replicas (and this one) publish.
    pub fn redis(url: &str, namespace: &str) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url)
            .map_err(|_| anyhow::anyhow!("events.redis_url is not a valid Redis URL"))?;
        Ok(Arc::new(Self {
            topics: Default::default(),
            redis: Some(RedisFeed {
                client,
                channel: format!("{namespace}:order-status"),
                publisher: tokio::sync::OnceCell::new(),
            }),
        }))
    }

    /// Changes of `topic` from now on.
    pub fn subscribe(&self, topic: Topic) -> broadcast::Receiver<FeedItem> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.entry(topic).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// Live subscribers in this process.
    pub fn subscribers(&self) -> usize {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.values().map(broadcast::Sender::receiver_count).sum()
    }

    /// Hands a change to the listeners of its order and of its customer; forgets topics
    /// nobody listens to any more.
    fn publish(&self, change: StatusChange) {
        let change = Arc::new(change);
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = vec![Topic::Order(change.order_id)];
        keys.extend(change.customer_id.map(Topic::Customer));
        for key in keys {
            if let Some(sender) = topics.get(&key)
                && sender.send(FeedItem::Change(change.clone())).is_err()
            {
                topics.remove(&key);
            }
        }
    }

    /// Tells every listener it may have missed changes.
    fn gap(&self) {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.retain(|_, sender| sender.send(FeedItem::Gap).is_ok());
    }

    /// With Redis: subscribes to the channel and passes what arrives to this process's
    /// subscribers until `shutdown`, reconnecting (and telling subscribers they missed
    /// changes) when the connection breaks. Without Redis there is nothing to listen to.
    pub async fn listen(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let Some(redis) = &self.redis else { return };
        tokio::pin!(shutdown);
        let mut first = true;
        loop {
            let connected = async {
                let mut pubsub = redis.client.get_async_pubsub().await?;
                pubsub.subscribe(&redis.channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = tokio::select! {
                _ = &mut shutdown => return,
                connected = connected => connected,
            };
            match pubsub {
                Ok(pubsub) => {
                    if !first {
                        self.gap();
                    }
                    first = false;
                    let mut messages = pubsub.into_on_message();
                    loop {
                        tokio::select! {
                            _ = &mut shutdown => return,
                            message = messages.next() => match message {
                                Some(message) => {
                                    let payload: Vec<u8> = message.get_payload().unwrap_or_default();
                                    match serde_json::from_slice::<StatusChange>(&payload) {
                                        Ok(change) => self.publish(change),
                                        Err(error) => tracing::warn!(%error, "unreadable status change"),
                                    }
                                }
                                None => break,
                            },
                        }
                    }
                    tracing::warn!("the status feed's Redis subscription ended; reconnecting");
                }
                Err(error) => {
                    tracing::warn!(%error, "subscribing to the status feed failed; retrying");
                }
            }
            self.gap();
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

impl LocalFeed for StatusFeed {
    fn types(&self) -> &[&'static str] {
        &[STATUS_CHANGED]
    }

    fn deliver<'a>(&'a self, events: &'a [EventEnvelope]) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let changes: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
            match &self.redis {
                None => {
                    for payload in changes {
                        if let Ok(change) = serde_json::from_value::<StatusChange>(payload.clone())
                        {
                            self.publish(change);
                        }
                    }
                }
                Some(redis) => {
                    let connection = redis
                        .publisher
                        .get_or_try_init(|| redis.client.get_multiplexed_async_connection())
                        .await?;
                    let mut pipe = redis::pipe();
                    for payload in changes {
                        pipe.cmd("PUBLISH").arg(&redis.channel).arg(payload.to_string()).ignore();
                    }
                    let mut connection = connection.clone();
                    pipe.query_async::<()>(&mut connection).await?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(order: Uuid, customer: Uuid, status: &str) -> StatusChange {
        StatusChange {
            order_id: order,
            customer_id: Some(customer),
            status: status.into(),
            previous_status: None,
            reason: None,
            at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_change_reaches_only_its_order_and_customer_listeners() {
        let feed = StatusFeed::in_process();
        let (order, other_order, customer) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut by_order = feed.subscribe(Topic::Order(order));
        let mut by_other = feed.subscribe(Topic::Order(other_order));
        let mut by_customer = feed.subscribe(Topic::Customer(customer));
        let envelope = change(order, customer, "CONFIRMED").envelope();
        feed.deliver(std::slice::from_ref(&envelope)).await.unwrap();
        for receiver in [&mut by_order, &mut by_customer] {
            match receiver.try_recv() {
                Ok(FeedItem::Change(c)) => {
                    assert_eq!((c.order_id, c.status.as_str()), (order, "CONFIRMED"))
                }
                other => panic!("expected the change, got {other:?}"),
            }
        }
        assert!(by_other.try_recv().is_err(), "another order's listener hears nothing");
        assert_eq!(feed.subscribers(), 3);
        // A topic nobody listens to any more is forgotten at its next change.
        drop(by_order);
        feed.publish(change(order, customer, "SHIPPED"));
        assert_eq!(feed.topics.lock().unwrap().len(), 2);
        // A gap reaches everyone.
        feed.gap();
        assert!(matches!(by_other.try_recv(), Ok(FeedItem::Gap)));
    }
}
