//! The read model's feed (consumer group `reporting`): order and shipment events, kept and
//! applied ([`crate::projection`]).

use std::sync::Arc;

use kernel::events::EventEnvelope;
use kernel::events::consumer::EventHandler;
use kernel::events::inbox::Work;
use kernel::events::unit::Unit;

use crate::Reporting;
use crate::projection::{self, EVENTS};

/// The consumer group name.
pub const GROUP: &str = "reporting";

/// Handles the events the model is built from.
pub struct ReportingEvents(pub Arc<Reporting>);

impl EventHandler for ReportingEvents {
    fn group(&self) -> &str {
        GROUP
    }

    /// A read model for the back office: no shopper waits on it.
    fn may_linger(&self, _event_type: &str) -> bool {
        true
    }

    fn events(&self) -> &[&'static str] {
        &EVENTS
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move { projection::record(txn, event).await })
    }

    /// A batch in a few statements, not a few per event: under load this consumer handles
    /// many events per transaction.
    fn handle_all<'t>(&'t self, txn: &'t Unit, events: &'t [&'t EventEnvelope]) -> Work<'t> {
        Box::pin(async move { projection::record_all(txn, events).await })
    }
}
