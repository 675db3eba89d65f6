//! Events between bounded contexts: the [`EventEnvelope`], the transactional [`outbox`], the
//! [`bus`] that carries envelopes to consumer groups (in-process, or [`redis`] Streams), and
//! the [`consumer`] runner that handles each event once in effect through the [`inbox`].
//!
//! A context records an event in its outbox table in the same transaction as the change it
//! describes, so a committed change always has its event and a rolled-back one never does. The
//! [`outbox::OutboxRelay`] then publishes committed rows to the bus, again after a restart if
//! the process died in between.

pub mod bus;
pub mod consumer;
pub mod inbox;
pub mod outbox;
pub mod redis;
#[cfg(test)]
mod tests;
pub mod unit;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The topic of an event type: the part before the first dot (`order` for `order.placed`),
/// which names the aggregate kind of the context that publishes it. Buses carry each topic
/// separately, so a consumer reads only the topics it handles.
pub fn topic_of(event_type: &str) -> &str {
    event_type.split_once('.').map_or(event_type, |(topic, _)| topic)
}

/// One event, as every context sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Unique id (UUID v7); consumers use it to drop duplicates.
    pub id: Uuid,
    /// Dotted name, such as `product.price_changed`.
    pub event_type: String,
    /// Version of the payload schema for this type.
    pub version: i32,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// The aggregate that changed.
    pub aggregate_id: String,
    /// The request or saga this event belongs to.
    pub correlation_id: Uuid,
    /// The event or command that caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// The event's data.
    pub payload: serde_json::Value,
}

impl EventEnvelope {
    /// A new event that starts its own correlation.
    pub fn new(
        event_type: &str,
        version: i32,
        aggregate_id: impl ToString,
        payload: serde_json::Value,
    ) -> Self {
        let id = crate::id::new_id();
        Self {
            id,
            event_type: event_type.to_string(),
            version,
            // Microseconds: what every backend stores, so a relayed envelope equals the
            // recorded one.
            occurred_at: Utc::now().trunc_subsecs(6),
            aggregate_id: aggregate_id.to_string(),
            correlation_id: id,
            causation_id: None,
            payload,
        }
    }

    /// Marks this event as caused by `cause` when there is one (a command from a client
    /// starts its own correlation).
    pub fn caused_by_any(self, cause: Option<&EventEnvelope>) -> Self {
        match cause {
            Some(cause) => self.caused_by(cause),
            None => self,
        }
    }

    /// Marks this event as caused by `cause`, inheriting its correlation.
    pub fn caused_by(mut self, cause: &EventEnvelope) -> Self {
        self.correlation_id = cause.correlation_id;
        self.causation_id = Some(cause.id);
        self
    }
}
