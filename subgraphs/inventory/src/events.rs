//! The inventory's part in the checkout, driven by events (consumer group `inventory`):
//!
//! | event | what inventory does |
//! |---|---|
//! | `order.placed` | reserves the lines: `stock.reserved`, or `stock.reservation_failed` |
//! | `order.confirmed` | keeps the reservation until shipment (it no longer lapses) |
//! | `order.cancelled` | releases what the order holds: `stock.released` |
//! | `shipment.shipped` | takes the units off the shelf |

use std::sync::Arc;

use kernel::events::EventEnvelope;
use kernel::events::consumer::{EventHandler, read_payload as payload};
use kernel::events::inbox::Work;
use kernel::events::unit::Unit;
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use uuid::Uuid;

use crate::Inventory;
use crate::stock::{self, Line};

/// The consumer group name.
pub const GROUP: &str = "inventory";

/// Handles the events above.
pub struct InventoryEvents(pub Arc<Inventory>);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderPlaced {
    order_id: Uuid,
    lines: Vec<PlacedLine>,
    /// Sent again for a checkout left pending: the order may have been answered before.
    #[serde(default)]
    resumed: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlacedLine {
    product_id: Uuid,
    quantity: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderRef {
    order_id: Uuid,
    #[serde(default)]
    reason: Option<String>,
}

impl EventHandler for InventoryEvents {
    fn group(&self) -> &str {
        GROUP
    }

    /// Reservations lock the stock rows of their products; the events waiting in a lane are
    /// applied in one transaction, so with several lanes two batches could lock the same
    /// products in opposite orders and deadlock. One lane: batches follow one another.
    fn max_lanes(&self) -> Option<usize> {
        Some(1)
    }

    fn events(&self) -> &[&'static str] {
        &["order.placed", "order.confirmed", "order.cancelled", "shipment.shipped"]
    }

    /// Keeping a confirmed order's units and taking shipped ones off the shelf change nothing
    /// anyone waits on. Reserving (the checkout waits) and releasing (the units go back on
    /// sale) never wait.
    fn may_linger(&self, event_type: &str) -> bool {
        matches!(event_type, "order.confirmed" | "shipment.shipped")
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move { self.apply(txn, event).await })
    }

    /// Confirmations keep their units in one update, put off to the commit: they linger, so
    /// under load they come many at a time.
    fn handle_all<'t>(&'t self, txn: &'t Unit, events: &'t [&'t EventEnvelope]) -> Work<'t> {
        Box::pin(async move {
            let mut confirmed = Vec::new();
            let mut placed = Vec::new();
            for event in events {
                let order = payload::<OrderRef>(event)?.order_id;
                if event.event_type == "order.confirmed" {
                    if placed.contains(&order) {
                        // Its reservation may be a guard waiting for the commit, which a
                        // confirmation put off beside it would not see: confirmed now, in
                        // the transaction, after it.
                        stock::confirm_now(txn, &[order])
                            .await
                            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    } else {
                        confirmed.push(order);
                    }
                    continue;
                }
                if event.event_type == "order.placed" {
                    placed.push(order);
                }
                // An order's events keep their order; other orders' reservations do not
                // depend on each other, so the confirmations wait for the end (and then go
                // with the commit) unless this event is about one of them.
                if confirmed.contains(&order) {
                    confirm(txn, &std::mem::take(&mut confirmed)).await?;
                }
                self.apply(txn, event).await?;
            }
            confirm(txn, &confirmed).await
        })
    }
}

/// Keeps the units of confirmed orders until shipment.
async fn confirm(txn: &impl ConnectionTrait, orders: &[Uuid]) -> anyhow::Result<()> {
    stock::confirm(txn, orders).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

impl InventoryEvents {
    /// Applies one event.
    async fn apply(&self, txn: &impl ConnectionTrait, event: &EventEnvelope) -> anyhow::Result<()> {
        match event.event_type.as_str() {
            "order.placed" => {
                let placed: OrderPlaced = payload(event)?;
                let lines: Vec<Line> = placed
                    .lines
                    .iter()
                    .map(|l| Line { product_id: l.product_id, quantity: l.quantity })
                    .collect();
                // A first request for one line: one statement with the commit. Otherwise
                // (or when that does not apply) the reservation is made here, and a repeated
                // request is answered as before.
                let order = placed.order_id;
                let reserved = async {
                    if !placed.resumed
                        && stock::reserve_later(&self.0, txn, order, &lines, Some(event)).await?
                    {
                        return Ok(());
                    }
                    stock::reserve(&self.0, txn, order, &lines, placed.resumed, Some(event))
                        .await
                        .map(drop)
                }
                .await;
                match reserved {
                    Ok(()) => {}
                    // An order orders validated cannot be invalid here; if it is, say so
                    // to orders rather than retry forever.
                    Err(kernel::AppError::BadUserInput(reason)) => {
                        let failed = EventEnvelope::new(
                            "stock.reservation_failed",
                            1,
                            placed.order_id,
                            serde_json::json!({
                                "orderId": placed.order_id, "reason": "INVALID_ORDER",
                                "productIds": [], "detail": reason,
                            }),
                        )
                        .caused_by(event);
                        kernel::events::outbox::append(txn, &failed).await?;
                    }
                    Err(other) => return Err(anyhow::anyhow!("{other:?}")),
                }
            }
            "order.confirmed" => {
                let order: OrderRef = payload(event)?;
                confirm(txn, &[order.order_id]).await?;
            }
            "order.cancelled" => {
                let order: OrderRef = payload(event)?;
                let reason = order.reason.unwrap_or_else(|| "ORDER_CANCELLED".into());
                stock::release(txn, order.order_id, &reason, Some(event))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
            "shipment.shipped" => {
                let order: OrderRef = payload(event)?;
                stock::commit(txn, order.order_id).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
            _ => {}
        }
        Ok(())
    }
}
