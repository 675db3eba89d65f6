//! Carts react to checkout (consumer group `carts`): once an order is placed from a cart, the
//! cart is emptied (deleted: the next visit starts a new one).

use std::sync::Arc;

use kernel::events::EventEnvelope;
use kernel::events::consumer::{EventHandler, Permanent};
use kernel::events::inbox::Work;
use kernel::events::unit::Unit;
use uuid::Uuid;

use crate::Carts;

/// The consumer group name.
pub const GROUP: &str = "carts";

/// Handles `order.placed`.
pub struct CartEvents(pub Arc<Carts>);

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Placed {
    #[serde(default)]
    cart_id: Option<Uuid>,
}

impl EventHandler for CartEvents {
    fn group(&self) -> &str {
        GROUP
    }

    /// A bought cart's clean-up: no one waits on it.
    fn may_linger(&self, _event_type: &str) -> bool {
        true
    }

    fn events(&self) -> &[&'static str] {
        &["order.placed"]
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move { self.handle_all(txn, &[event]).await })
    }

    /// Every bought cart of the batch goes in one statement, with the inbox rows.
    fn handle_all<'t>(&'t self, txn: &'t Unit, events: &'t [&'t EventEnvelope]) -> Work<'t> {
        Box::pin(async move {
            let mut carts = Vec::with_capacity(events.len());
            for event in events {
                let placed: Placed = serde_json::from_value(event.payload.clone())
                    .map_err(|e| Permanent(format!("unreadable order.placed: {e}")))?;
                carts.extend(placed.cart_id);
            }
            crate::carts::delete_all_later(txn, &carts)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            Ok(())
        })
    }
}
