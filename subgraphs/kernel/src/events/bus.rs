//! The event bus: how published envelopes reach consumers. The embedded default is an
//! in-process broadcast; production adds Redis Streams behind the same [`EventBus`] trait.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::broadcast;
use tokio_stream_shim::BroadcastStream;

use super::EventEnvelope;

/// Publishing and subscribing, whatever carries the events.
pub trait EventBus: Send + Sync + 'static {
    /// Publishes one envelope; returns once the bus has accepted it.
    fn publish<'a>(&'a self, event: &'a EventEnvelope) -> BoxFuture<'a, anyhow::Result<()>>;

    /// A stream of every envelope published after this call, for the named consumer.
    fn subscribe(&self, consumer: &str) -> BoxStream<'static, EventEnvelope>;
}

/// The embedded bus: a broadcast channel inside the process.
///
/// Delivery is at-most-once per subscriber while the process runs; durability comes from the
/// outbox, which keeps an event unpublished until the bus accepted it.
#[derive(Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<EventEnvelope>,
}

impl InProcessBus {
    /// A bus that buffers up to `capacity` events for a slow subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventBus for InProcessBus {
    fn publish<'a>(&'a self, event: &'a EventEnvelope) -> BoxFuture<'a, anyhow::Result<()>> {
        // No subscriber yet is not an error: the event is simply of interest to nobody now.
        let _ = self.sender.send(event.clone());
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self, consumer: &str) -> BoxStream<'static, EventEnvelope> {
        let consumer = consumer.to_string();
        Box::pin(BroadcastStream::new(self.sender.subscribe(), consumer))
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
