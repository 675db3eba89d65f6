//! Fulfillment's part after checkout, driven by events (consumer group `fulfillment`):
//!
//! | event | what fulfillment does |
//! |---|---|
//! | `order.confirmed` | creates the order's shipment: `shipment.created` |
//! | `order.cancelled` | cancels a parcel still being prepared: `shipment.cancelled` |

use std::sync::Arc;

use kernel::events::EventEnvelope;
use kernel::events::consumer::{EventHandler, read_payload as payload};
use kernel::events::inbox::Work;
use kernel::events::unit::Unit;
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use uuid::Uuid;

use crate::Fulfillment;
use crate::shipments::{self, ToShip};

/// The consumer group name.
pub const GROUP: &str = "fulfillment";

/// Handles the events above.
pub struct FulfillmentEvents(pub Arc<Fulfillment>);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Confirmed {
    order_id: Uuid,
    number: String,
    customer_id: Option<Uuid>,
    /// A guest's e-mail (absent from confirmations older than guests' addresses).
    #[serde(default)]
    email: Option<String>,
    shipping_address: serde_json::Value,
    lines: Vec<ConfirmedLine>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfirmedLine {
    product_id: Uuid,
    name: String,
    quantity: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cancelled {
    order_id: Uuid,
}

impl EventHandler for FulfillmentEvents {
    fn group(&self) -> &str {
        GROUP
    }

    /// Parcels are made after the purchase: no shopper waits on it.
    fn may_linger(&self, _event_type: &str) -> bool {
        true
    }

    fn events(&self) -> &[&'static str] {
        &["order.confirmed", "order.cancelled"]
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move { self.apply(txn, &[event]).await })
    }

    /// Confirmations side by side make their shipments together (a statement for the
    /// shipments, one for their tracking): under load this consumer handles many at once.
    fn handle_all<'t>(&'t self, txn: &'t Unit, events: &'t [&'t EventEnvelope]) -> Work<'t> {
        Box::pin(async move { self.apply(txn, events).await })
    }
}

impl FulfillmentEvents {
    /// Applies `events` in order; a run of confirmations in one go.
    async fn apply(
        &self,
        txn: &impl ConnectionTrait,
        events: &[&EventEnvelope],
    ) -> anyhow::Result<()> {
        let mut to_ship = Vec::new();
        for event in events {
            match event.event_type.as_str() {
                "order.confirmed" => to_ship.push((ship(event)?, *event)),
                "order.cancelled" => {
                    // What came before it goes first: it may be this order's confirmation.
                    shipments::create_all(&self.0, txn, std::mem::take(&mut to_ship))
                        .await
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    let order: Cancelled = payload(event)?;
                    shipments::cancel_for_order(&self.0, txn, order.order_id, event)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                }
                _ => {}
            }
        }
        shipments::create_all(&self.0, txn, to_ship).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    }
}

/// The shipment an `order.confirmed` asks for.
fn ship(event: &EventEnvelope) -> anyhow::Result<ToShip> {
    let order: Confirmed = payload(event)?;
    let items: Vec<serde_json::Value> = order
        .lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "productId": l.product_id, "name": l.name, "quantity": l.quantity,
            })
        })
        .collect();
    Ok(ToShip {
        order_id: order.order_id,
        order_number: order.number,
        customer_id: order.customer_id,
        email: order.email,
        address: order.shipping_address,
        items: serde_json::Value::Array(items),
    })
}
