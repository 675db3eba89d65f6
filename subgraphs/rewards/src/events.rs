//! Points moved by order events (consumer group `rewards`):
//!
//! | event | what rewards does |
//! |---|---|
//! | `order.placed` | a redemption held for the order stands |
//! | `order.confirmed` | the order earns points, pending until delivery |
//! | `order.delivered` | its points become spendable |
//! | `order.cancelled` | its pending points are lost, its redeemed points given back |

use std::sync::Arc;

use kernel::events::EventEnvelope;
use kernel::events::consumer::{EventHandler, names_a_customer, read_payload as payload};
use kernel::events::inbox::Work;
use kernel::events::unit::Unit;
use kernel::money::Money;
use serde::Deserialize;
use uuid::Uuid;

use crate::{Rewards, ledger};

/// The consumer group name.
pub const GROUP: &str = "rewards";

/// Handles the events above.
pub struct RewardEvents(pub Arc<Rewards>);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct About {
    order_id: Uuid,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Confirmed {
    order_id: Uuid,
    customer_id: Option<Uuid>,
    total: Amount,
}

#[derive(Deserialize)]
struct Amount {
    amount: rust_decimal::Decimal,
    currency: String,
}

fn failed(error: kernel::AppError) -> anyhow::Error {
    anyhow::anyhow!("{error:?}")
}

impl EventHandler for RewardEvents {
    fn group(&self) -> &str {
        GROUP
    }

    /// Points follow the purchase: no shopper waits on them.
    fn may_linger(&self, _event_type: &str) -> bool {
        true
    }

    fn events(&self) -> &[&'static str] {
        &["order.placed", "order.confirmed", "order.delivered", "order.cancelled"]
    }

    /// A guest's order neither redeems nor earns points. (A cancellation does not say whose
    /// order it was: it is always looked at.)
    fn concerns(&self, event: &EventEnvelope) -> bool {
        match event.event_type.as_str() {
            "order.placed" | "order.confirmed" | "order.delivered" => names_a_customer(event),
            _ => true,
        }
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move {
            let rewards = &self.0;
            match event.event_type.as_str() {
                "order.placed" => {
                    let about: About = payload(event)?;
                    ledger::applied(txn, about.order_id).await.map_err(failed)?;
                }
                "order.confirmed" => {
                    let order: Confirmed = payload(event)?;
                    // A guest has no account to credit.
                    let Some(customer) = order.customer_id else { return Ok(()) };
                    let currency = ledger::currency(&order.total.currency).map_err(failed)?;
                    let paid = Money::non_negative(order.total.amount, currency)
                        .map_err(|e| anyhow::anyhow!("order total: {e}"))?;
                    ledger::earn(rewards, txn, customer, order.order_id, &paid)
                        .await
                        .map_err(failed)?;
                }
                "order.delivered" => {
                    let about: About = payload(event)?;
                    ledger::delivered(rewards, txn, about.order_id).await.map_err(failed)?;
                }
                "order.cancelled" => {
                    let about: About = payload(event)?;
                    ledger::cancelled(rewards, txn, about.order_id).await.map_err(failed)?;
                }
                _ => {}
            }
            Ok(())
        })
    }
}
