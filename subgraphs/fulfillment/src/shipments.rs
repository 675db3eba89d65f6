//! Shipments in the database: created for confirmed orders, moved one step at a time by
//! conditional updates (the carrier's clock and an administrator cannot both take the same
//! step), each step with its tracking event and its `shipment.*` event in one transaction.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entities::fulfillment::{shipment, tracking_event};
use kernel::events::{EventEnvelope, outbox};
use kernel::{AppError, AppResult};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, TransactionTrait,
};
use uuid::Uuid;

use crate::Fulfillment;
use crate::carrier::{self, ShipmentStatus};

/// What a confirmed order asks fulfillment to send.
pub struct ToShip {
    /// The order.
    pub order_id: Uuid,
    /// Its number.
    pub order_number: String,
    /// Its customer (`None` for a guest).
    pub customer_id: Option<Uuid>,
    /// A guest's e-mail, carried on for the shipping notice.
    pub email: Option<String>,
    /// Where it goes, as the order has it.
    pub address: serde_json::Value,
    /// What goes in the parcel.
    pub items: serde_json::Value,
}

/// The event announcing that `shipment` entered its current status.
fn news(shipment: &shipment::Model, status: ShipmentStatus) -> EventEnvelope {
    EventEnvelope::new(
        status.event_type(),
        1,
        shipment.order_id,
        serde_json::json!({
            "orderId": shipment.order_id, "shipmentId": shipment.id,
            "orderNumber": shipment.order_number, "customerId": shipment.customer_id,
            "email": shipment.email, "carrier": shipment.carrier, "trackingNumber": shipment.tracking_number,
            "status": status.as_str(), "reason": shipment.reason, "at": shipment.updated_at,
        }),
    )
}

/// The tracking event of `shipment` entering `status`.
fn tracking_row(shipment: &shipment::Model, status: ShipmentStatus) -> tracking_event::ActiveModel {
    tracking_event::ActiveModel {
        id: Set(kernel::id::new_id()),
        shipment_id: Set(shipment.id),
        status: Set(status.as_str().into()),
        description: Set(status.describe(&shipment.carrier, shipment.reason.as_deref())),
        at: Set(shipment.updated_at),
    }
}

/// Records `shipment`'s step to `status` on its tracking: put off to the commit inside
/// [`outbox::deferring`] (nothing in the same transaction reads tracking back).
async fn track<C: ConnectionTrait>(
    db: &C,
    shipment: &shipment::Model,
    status: ShipmentStatus,
) -> AppResult<()> {
    let row = tracking_row(shipment, status);
    outbox::write_later(db, tracking_event::Entity::insert(row).into_query()).await?;
    Ok(())
}

/// When the simulated carrier takes the step after `status`, entered at `now`.
fn next_step_at(
    fulfillment: &Fulfillment,
    status: ShipmentStatus,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    status.next()?;
    Some(now + chrono::Duration::from_std(fulfillment.step).unwrap_or(chrono::Duration::MAX))
}

/// Creates the shipments of `orders` (each with the event that asked for it), `PREPARING`,
/// except for orders that have one already: in one statement for the shipments and one for
/// their first tracking events, however many there are. Returns how many were created.
pub async fn create_all(
    fulfillment: &Fulfillment,
    txn: &impl ConnectionTrait,
    orders: Vec<(ToShip, &EventEnvelope)>,
) -> AppResult<usize> {
    if orders.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let status = ShipmentStatus::Preparing;
    let mut rows = Vec::with_capacity(orders.len());
    let mut causes = Vec::with_capacity(orders.len());
    for (order, cause) in orders {
        rows.push(shipment::Model {
            id: kernel::id::new_id(),
            order_id: order.order_id,
            order_number: order.order_number,
            customer_id: order.customer_id,
            email: order.email,
            carrier: fulfillment.carrier.clone(),
            tracking_number: carrier::tracking_number(),
            status: status.as_str().into(),
            address: order.address,
            items: order.items,
            next_step_at: next_step_at(fulfillment, status, now),
            reason: None,
            created_at: now,
            updated_at: now,
        });
        causes.push(cause);
    }
    // Only the rows inserted come back: an order that has its shipment already (or comes
    // twice) conflicts and is left alone.
    let inserted: HashSet<Uuid> =
        match shipment::Entity::insert_many(rows.iter().cloned().map(shipment::ActiveModel::from))
            .on_conflict(OnConflict::column(shipment::Column::OrderId).do_nothing().to_owned())
            .exec_with_returning_keys(txn)
            .await
        {
            Ok(ids) => ids.into_iter().collect(),
            Err(DbErr::RecordNotInserted) => return Ok(0),
            Err(error) => return Err(error.into()),
        };
    let created: Vec<(&shipment::Model, &EventEnvelope)> =
        rows.iter().zip(causes).filter(|(row, _)| inserted.contains(&row.id)).collect();
    if created.is_empty() {
        return Ok(0);
    }
    // Their first tracking steps go with the commit (nothing here reads them back).
    let first_steps = created.iter().map(|(row, _)| tracking_row(row, status));
    outbox::write_later(txn, tracking_event::Entity::insert_many(first_steps).into_query()).await?;
    let news: Vec<EventEnvelope> =
        created.iter().map(|(row, cause)| news(row, status).caused_by(cause)).collect();
    outbox::append_all(txn, &news).await?;
    for (row, _) in &created {
        tracing::info!(order_id = %row.order_id, tracking = %row.tracking_number, "shipment created");
    }
    Ok(created.len())
}

/// Moves `id` from `from` to `to` if it still stands at `from`: the shipment after the step,
/// or `None` when something else moved it first.
async fn step(
    fulfillment: &Fulfillment,
    txn: &impl ConnectionTrait,
    id: Uuid,
    from: ShipmentStatus,
    to: ShipmentStatus,
    reason: Option<&str>,
    cause: Option<&EventEnvelope>,
) -> AppResult<Option<shipment::Model>> {
    let now = Utc::now();
    let Some(moved) = shipment::Entity::update_many()
        .col_expr(shipment::Column::Status, Expr::value(to.as_str()))
        .col_expr(shipment::Column::NextStepAt, Expr::value(next_step_at(fulfillment, to, now)))
        .col_expr(shipment::Column::Reason, Expr::value(reason))
        .col_expr(shipment::Column::UpdatedAt, Expr::value(now))
        .filter(shipment::Column::Id.eq(id))
        .filter(shipment::Column::Status.eq(from.as_str()))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    track(txn, &moved, to).await?;
    outbox::append(txn, &news(&moved, to).caused_by_any(cause)).await?;
    tracing::info!(order_id = %moved.order_id, status = to.as_str(), "shipment moved");
    Ok(Some(moved))
}

/// The carrier's clock: takes the next step of every parcel due one by `now` (at most
/// `limit`), in one transaction. Returns how many moved.
pub async fn advance_due(
    fulfillment: &Fulfillment,
    now: DateTime<Utc>,
    limit: u64,
) -> AppResult<u64> {
    let due = shipment::Entity::find()
        .filter(shipment::Column::NextStepAt.lte(now))
        .order_by_asc(shipment::Column::NextStepAt)
        .limit(limit)
        .all(&fulfillment.db)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let txn = fulfillment.db.begin().await?;
    let (moved, events) = outbox::deferring(async {
        let mut moved = 0;
        for parcel in due {
            let from = ShipmentStatus::parse(&parcel.status)?;
            let Some(to) = from.next() else { continue };
            if step(fulfillment, &txn, parcel.id, from, to, None, None).await?.is_some() {
                moved += 1;
            }
        }
        AppResult::Ok(moved)
    })
    .await;
    let moved = moved?;
    fulfillment.relay.commit(txn, events).await?;
    Ok(moved)
}

async fn by_id(fulfillment: &Fulfillment, id: Uuid) -> AppResult<shipment::Model> {
    shipment::Entity::find_by_id(id)
        .one(&fulfillment.db)
        .await?
        .ok_or_else(|| AppError::NotFound("no such shipment".into()))
}

/// An administrator takes the parcel's next step by hand. A parcel with no next step
/// (delivered, failed, cancelled) is a `CONFLICT`.
pub async fn advance(fulfillment: &Fulfillment, id: Uuid) -> AppResult<shipment::Model> {
    let parcel = by_id(fulfillment, id).await?;
    let from = ShipmentStatus::parse(&parcel.status)?;
    let to = from.next().ok_or_else(|| {
        AppError::Conflict(format!(
            "a {} shipment has no next step",
            from.as_str().to_lowercase().replace('_', " ")
        ))
    })?;
    moved_by_hand(fulfillment, id, from, to, None).await
}

/// An administrator reports that the carrier could not deliver the parcel. Only a parcel the
/// carrier has can fail; anything else is a `CONFLICT`.
pub async fn fail(fulfillment: &Fulfillment, id: Uuid, reason: &str) -> AppResult<shipment::Model> {
    let reason = carrier::failure_reason(reason)?;
    let parcel = by_id(fulfillment, id).await?;
    let from = ShipmentStatus::parse(&parcel.status)?;
    if !from.can_fail() {
        return Err(AppError::Conflict(format!(
            "a {} shipment cannot fail: only a parcel on its way can",
            from.as_str().to_lowercase().replace('_', " ")
        )));
    }
    moved_by_hand(fulfillment, id, from, ShipmentStatus::Failed, Some(&reason)).await
}

async fn moved_by_hand(
    fulfillment: &Fulfillment,
    id: Uuid,
    from: ShipmentStatus,
    to: ShipmentStatus,
    reason: Option<&str>,
) -> AppResult<shipment::Model> {
    let txn = fulfillment.db.begin().await?;
    let (moved, events) =
        outbox::deferring(step(fulfillment, &txn, id, from, to, reason, None)).await;
    let moved = moved?;
    fulfillment.relay.commit(txn, events).await?;
    moved.ok_or_else(|| AppError::Conflict("the shipment moved meanwhile; try again".into()))
}

/// A cancelled order's parcel is cancelled while it is being prepared. One the carrier
/// already has is left to arrive (orders refuses to cancel a shipped order, so this is a
/// cancellation that crossed the parcel leaving); it is logged.
pub async fn cancel_for_order(
    fulfillment: &Fulfillment,
    txn: &impl ConnectionTrait,
    order_id: Uuid,
    cause: &EventEnvelope,
) -> AppResult<()> {
    let Some(parcel) =
        shipment::Entity::find().filter(shipment::Column::OrderId.eq(order_id)).one(txn).await?
    else {
        return Ok(());
    };
    let (from, to) = (ShipmentStatus::parse(&parcel.status)?, ShipmentStatus::Cancelled);
    if from == ShipmentStatus::Preparing {
        let reason = Some("ORDER_CANCELLED");
        step(fulfillment, txn, parcel.id, from, to, reason, Some(cause)).await?;
    } else if from != ShipmentStatus::Cancelled {
        tracing::warn!(%order_id, status = from.as_str(), "order cancelled after its parcel left");
    }
    Ok(())
}

/// The order's shipment, if it has one.
pub async fn of_order<C: ConnectionTrait>(
    db: &C,
    order_id: Uuid,
) -> AppResult<Option<shipment::Model>> {
    Ok(shipment::Entity::find().filter(shipment::Column::OrderId.eq(order_id)).one(db).await?)
}

/// A shipment's tracking events, oldest first.
pub async fn tracking<C: ConnectionTrait>(
    db: &C,
    shipment_id: Uuid,
) -> AppResult<Vec<tracking_event::Model>> {
    Ok(tracking_event::Entity::find()
        .filter(tracking_event::Column::ShipmentId.eq(shipment_id))
        .order_by_asc(tracking_event::Column::Id)
        .all(db)
        .await?)
}
