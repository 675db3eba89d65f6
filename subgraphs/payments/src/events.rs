//! The payments' part in the checkout, driven by events (consumer group `payments`):
//!
//! | event | what payments does |
//! |---|---|
//! | `order.payment_requested` | authorises: `payment.authorized`, or `payment.declined` |
//! | `order.confirmed` | captures the authorised amount: `payment.captured` |
//! | `order.cancelled` | voids the authorisation or refunds the capture: `payment.refunded` |

use std::sync::Arc;

use kernel::events::EventEnvelope;
use kernel::events::consumer::{EventHandler, Permanent, read_payload as payload};
use kernel::events::inbox::Work;
use kernel::events::unit::Unit;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::Payments;
use crate::payments::{self, PaymentRequest};

/// The consumer group name.
pub const GROUP: &str = "payments";

/// Handles the events above.
pub struct PaymentEvents(pub Arc<Payments>);

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderRef {
    order_id: Uuid,
}

fn failed(error: kernel::AppError) -> anyhow::Error {
    match error {
        // A request orders built that payments cannot read is not going to get better.
        kernel::AppError::BadUserInput(reason) => Permanent(reason).into(),
        other => anyhow::anyhow!("{other:?}"),
    }
}

impl EventHandler for PaymentEvents {
    fn group(&self) -> &str {
        GROUP
    }

    fn events(&self) -> &[&'static str] {
        &["order.payment_requested", "order.confirmed", "order.cancelled"]
    }

    /// The capture follows the confirmation the shopper already saw: no one waits on it.
    /// Authorising (the checkout waits) and refunding (the cancelling shopper does) never
    /// wait.
    fn may_linger(&self, event_type: &str) -> bool {
        event_type == "order.confirmed"
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move { self.apply(txn, &[event]).await })
    }

    /// Confirmations side by side are captured with one read and one commit: they linger,
    /// so under load they come many at a time.
    fn handle_all<'t>(&'t self, txn: &'t Unit, events: &'t [&'t EventEnvelope]) -> Work<'t> {
        Box::pin(async move { self.apply(txn, events).await })
    }
}

impl PaymentEvents {
    /// Applies `events` as if in order, with the confirmations' captures together, after
    /// the rest: an order's events keep their order (a capture waits for nothing but the
    /// events before it about the same order), and other orders' payments do not depend on
    /// each other.
    async fn apply(
        &self,
        txn: &impl ConnectionTrait,
        events: &[&EventEnvelope],
    ) -> anyhow::Result<()> {
        let mut to_capture: Vec<(Uuid, &EventEnvelope)> = Vec::new();
        for event in events {
            let order = payload::<OrderRef>(event)?.order_id;
            if event.event_type == "order.confirmed" {
                to_capture.push((order, *event));
                continue;
            }
            if to_capture.iter().any(|(waiting, _)| *waiting == order) {
                let captures = std::mem::take(&mut to_capture);
                payments::capture_all(txn, &captures).await.map_err(failed)?;
            }
            match event.event_type.as_str() {
                "order.payment_requested" => {
                    let request: PaymentRequest = payload(event)?;
                    payments::authorize(&self.0, txn, &request, event).await.map_err(failed)?;
                }
                "order.cancelled" => {
                    let order: OrderRef = payload(event)?;
                    payments::refund(txn, order.order_id, event).await.map_err(failed)?;
                }
                _ => {}
            }
        }
        payments::capture_all(txn, &to_capture).await.map_err(failed)?;
        Ok(())
    }
}
