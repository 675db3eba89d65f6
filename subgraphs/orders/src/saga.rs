//! The checkout saga, orchestrated by orders (consumer group `orders`):
//!
//! `order.placed` → inventory holds the stock (`stock.reserved`) → orders asks for payment
//! (`order.payment_requested`) → payments authorises (`payment.authorized`) → the order is
//! `PAYMENT_AUTHORIZED`, then `CONFIRMED` (`order.confirmed`: inventory keeps the stock until
//! shipment, payments captures, fulfillment prepares a parcel). The carrier's news then moves
//! it to `SHIPPED`, `OUT_FOR_DELIVERY` and `DELIVERED` (`order.delivered`: the order is
//! complete), or `DELIVERY_FAILED`. Every failure before shipment compensates: out of stock, a declined card or a
//! lapsed hold cancels the order (`order.cancelled`: inventory releases, payments voids).
//!
//! A sweep finds orders left `PENDING` (an event lost with a crashed process) and asks again;
//! inventory and payments answer a repeated request with the answer they gave.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use entities::orders::order;
use kernel::events::EventEnvelope;
use kernel::events::consumer::{EventHandler, Permanent};
use kernel::events::inbox::Work;
use kernel::events::outbox::{self, Guard};
use kernel::events::unit::Unit;
use kernel::{AppError, AppResult};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use crate::Orders;
use crate::checkout::{advance, cancel_in};
use crate::domain::Status;

/// The consumer group name.
pub const GROUP: &str = "orders";

/// The saga's event handler.
pub struct Saga(pub Arc<Orders>);

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct About {
    order_id: Uuid,
    #[serde(default)]
    reason: Option<String>,
}

fn failed(error: AppError) -> anyhow::Error {
    anyhow::anyhow!("{error:?}")
}

/// The payment request for `order`.
fn payment_request(order: &order::Model) -> EventEnvelope {
    let money = crate::checkout::money_json(order.total_minor, &order.currency);
    EventEnvelope::new(
        "order.payment_requested",
        1,
        order.id,
        serde_json::json!({
            "orderId": order.id, "customerId": order.customer_id,
            "paymentMethodId": order.payment_method_id, "amount": money,
            "idempotencyKey": format!("order-{}", order.id),
        }),
    )
}

async fn stock_reserved(
    txn: &impl ConnectionTrait,
    id: Uuid,
    cause: &EventEnvelope,
) -> AppResult<()> {
    // Asked for once: read first (no lock, no transaction), then a guarded change whose
    // update checks again, as it is applied, that the order is still pending and not asked
    // for yet (a repeated answer from inventory, or a cancellation meanwhile, finds it not,
    // and then the request is not recorded).
    let Some(order) = order::Entity::find_by_id(id).one(txn).await? else {
        return Ok(());
    };
    if order.status != Status::Pending.as_str() || order.payment_requested_at.is_some() {
        return Ok(());
    }
    let ask = order::Entity::update_many()
        .col_expr(order::Column::PaymentRequestedAt, Expr::value(Utc::now()))
        .filter(order::Column::Id.eq(id))
        .filter(order::Column::Status.eq(Status::Pending.as_str()))
        .filter(order::Column::PaymentRequestedAt.is_null());
    let request = payment_request(&order).caused_by(cause);
    outbox::write_guarded(txn, Guard::new(ask).append([request])).await?;
    Ok(())
}

async fn payment_authorized(
    txn: &impl ConnectionTrait,
    id: Uuid,
    cause: &EventEnvelope,
) -> AppResult<()> {
    // Authorised, and with the stock already held that makes it confirmed: both steps on the
    // timeline, in one change, guarded as in `stock_reserved`.
    let Some((order, lines)) = crate::checkout::with_lines(txn, id).await? else {
        return Ok(());
    };
    let steps = [Status::PaymentAuthorized, Status::Confirmed];
    if let Some((guard, confirmed)) = crate::checkout::advance_later(&order, &steps, None)? {
        let confirmed = crate::checkout::confirmed_event(&confirmed, &lines).caused_by(cause);
        outbox::write_guarded(txn, guard.append([confirmed])).await?;
        tracing::debug!(order_id = %id, "order confirmed, at the commit");
    }
    Ok(())
}

/// The carrier's news moves the order on; delivery completes it (`order.delivered`). News
/// about an order that cannot take that step (cancelled meanwhile, or news repeated) changes
/// nothing.
async fn shipment_news(
    txn: &impl ConnectionTrait,
    id: Uuid,
    to: Status,
    reason: Option<&str>,
    cause: &EventEnvelope,
) -> AppResult<()> {
    let Some(order) = advance(txn, id, &[to], reason).await? else {
        tracing::info!(order_id = %id, status = to.as_str(), "shipment news the order cannot take");
        return Ok(());
    };
    if to == Status::Delivered {
        let delivered = EventEnvelope::new(
            "order.delivered",
            1,
            id,
            serde_json::json!({
                "orderId": id, "number": order.number, "customerId": order.customer_id,
                "total": crate::checkout::money_json(order.total_minor, &order.currency),
                "deliveredAt": order.updated_at,
            }),
        );
        outbox::append(txn, &delivered.caused_by(cause)).await?;
        tracing::info!(order_id = %id, "order delivered");
    }
    Ok(())
}

impl EventHandler for Saga {
    fn group(&self) -> &str {
        GROUP
    }

    fn events(&self) -> &[&'static str] {
        &[
            "stock.reserved",
            "stock.reservation_failed",
            "stock.released",
            "payment.authorized",
            "payment.declined",
            "shipment.shipped",
            "shipment.out_for_delivery",
            "shipment.delivered",
            "shipment.failed",
        ]
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move {
            let about: About = serde_json::from_value(event.payload.clone())
                .map_err(|e| Permanent(format!("unreadable {}: {e}", event.event_type)))?;
            // Every statement below reads or writes this order's rows alone: in a batch, the
            // guards put off for other orders stay put off to the commit's one statement.
            outbox::about(about.order_id.to_string(), self.apply(txn, about, event)).await
        })
    }
}

impl Saga {
    /// Applies `event`, about the order `about` names, inside `txn`.
    async fn apply(&self, txn: &Unit, about: About, event: &EventEnvelope) -> anyhow::Result<()> {
        let id = about.order_id;
        match event.event_type.as_str() {
            "stock.reserved" => stock_reserved(txn, id, event).await.map_err(failed)?,
            "stock.reservation_failed" => {
                let reason = about.reason.unwrap_or_else(|| "OUT_OF_STOCK".into());
                cancel_in(txn, id, &reason, Some(event)).await.map_err(failed)?;
            }
            "stock.released" if about.reason.as_deref() == Some("EXPIRED") => {
                let still_pending = order::Entity::find_by_id(id)
                    .one(txn)
                    .await?
                    .is_some_and(|o| o.status == Status::Pending.as_str());
                if still_pending {
                    cancel_in(txn, id, "RESERVATION_EXPIRED", Some(event)).await.map_err(failed)?;
                }
            }
            "payment.authorized" => payment_authorized(txn, id, event).await.map_err(failed)?,
            "payment.declined" => {
                cancel_in(txn, id, "PAYMENT_DECLINED", Some(event)).await.map_err(failed)?;
            }
            "shipment.shipped" => {
                shipment_news(txn, id, Status::Shipped, None, event).await.map_err(failed)?;
            }
            "shipment.out_for_delivery" => {
                let to = Status::OutForDelivery;
                shipment_news(txn, id, to, None, event).await.map_err(failed)?;
            }
            "shipment.delivered" => {
                shipment_news(txn, id, Status::Delivered, None, event).await.map_err(failed)?;
            }
            "shipment.failed" => {
                let reason = about.reason.as_deref().or(Some("DELIVERY_FAILED"));
                let to = Status::DeliveryFailed;
                shipment_news(txn, id, to, reason, event).await.map_err(failed)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Asks again for every order `PENDING` since before `now - stuck_after`: the stock when it
/// was never answered, the payment when it was asked for. Returns how many were asked again.
pub async fn resume_stuck(orders: &Orders, stuck_after: Duration) -> AppResult<usize> {
    let cutoff =
        Utc::now() - chrono::Duration::from_std(stuck_after).map_err(AppError::internal)?;
    let stuck = order::Entity::find()
        .filter(order::Column::Status.eq(Status::Pending.as_str()))
        .filter(order::Column::UpdatedAt.lt(cutoff))
        .all(&orders.db)
        .await?;
    for order in &stuck {
        let txn = orders.db.begin().await?;
        let event = if order.payment_requested_at.is_some() {
            payment_request(order)
        } else {
            let lines = crate::checkout::lines(&txn, order.id).await?;
            let lines: Vec<(Uuid, i32)> =
                lines.iter().map(|l| (l.product_id, l.quantity)).collect();
            let mut placed = crate::checkout::placed_event(order, &lines);
            // Tells inventory that the order may have been answered before.
            placed.payload["resumed"] = serde_json::Value::Bool(true);
            placed
        };
        // Touched, so the next sweep waits its turn before asking again.
        order::Entity::update_many()
            .col_expr(order::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(order::Column::Id.eq(order.id))
            .exec(&txn)
            .await?;
        let step = event.event_type.clone();
        orders.relay.commit(txn, vec![event]).await?;
        tracing::warn!(order_id = %order.id, %step, "resuming a stuck checkout");
    }
    Ok(stuck.len())
}
