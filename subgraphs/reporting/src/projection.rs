//! Events into the read model. Each event is applied so that the order events of different
//! topics arrive in does not matter: an order's row is created by whichever event comes first
//! and filled in by `order.confirmed`; its status only moves forward along the order's life.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entities::reporting::{event, sale, sale_line};
use kernel::AppResult;
use kernel::events::EventEnvelope;
use kernel::money::{Currency, Money};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::Reporting;

/// The events the read model is built from.
pub const EVENTS: [&str; 7] = [
    "order.placed",
    "order.confirmed",
    "order.cancelled",
    "order.delivered",
    "shipment.shipped",
    "shipment.out_for_delivery",
    "shipment.failed",
];

/// How far along an order's life a status is.
fn rank(status: &str) -> i32 {
    match status {
        "PENDING" => 0,
        "CONFIRMED" => 2,
        "SHIPPED" => 3,
        "OUT_FOR_DELIVERY" => 4,
        _ => 5,
    }
}

#[derive(Deserialize)]
struct Amount {
    amount: Decimal,
    currency: String,
}

impl Amount {
    fn minor(&self) -> anyhow::Result<(i64, String)> {
        let currency = Currency::parse(&self.currency)?;
        let minor = Money::non_negative(self.amount, currency)?.minor_units()?;
        Ok((minor, currency.code().to_string()))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Placed {
    order_id: Uuid,
    number: String,
    total: Amount,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Confirmed {
    order_id: Uuid,
    number: String,
    placed_at: DateTime<Utc>,
    lines: Vec<Line>,
    subtotal: Amount,
    #[serde(default)]
    discount: Option<Amount>,
    total: Amount,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    product_id: Uuid,
    name: String,
    #[serde(default)]
    category: Option<String>,
    quantity: i64,
    line_total: Amount,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct About {
    order_id: Uuid,
    #[serde(default, alias = "orderNumber")]
    number: Option<String>,
}

fn day(at: DateTime<Utc>) -> String {
    at.date_naive().format("%Y-%m-%d").to_string()
}

/// Keeps `envelope` in the history (once) and applies it.
pub async fn record(txn: &impl ConnectionTrait, envelope: &EventEnvelope) -> anyhow::Result<()> {
    record_all(txn, &[envelope]).await
}

/// Keeps `envelopes` in the history (each once) and applies those not kept before, in few
/// statements: the history rows in one, every `order.placed` in one and every
/// `order.confirmed` in one (with one more for their lines), the rarer events one by one.
/// Applying them grouped by type comes to the same as applying them in order, because the
/// model does not depend on the order events arrive in.
pub async fn record_all(
    txn: &impl ConnectionTrait,
    envelopes: &[&EventEnvelope],
) -> anyhow::Result<()> {
    // Consecutive, so that a rebuild replays a batch in the order it came.
    let received = Utc::now().timestamp_micros();
    let rows = envelopes.iter().enumerate().map(|(n, envelope)| {
        event::ActiveModel::from(event::Model {
            id: envelope.id,
            event_type: envelope.event_type.clone(),
            version: envelope.version,
            occurred_at: envelope.occurred_at,
            payload: envelope.payload.clone(),
            received_seq: received + n as i64,
        })
    });
    let kept: HashSet<Uuid> = match event::Entity::insert_many(rows)
        .on_conflict(OnConflict::column(event::Column::Id).do_nothing().to_owned())
        .exec_with_returning_keys(txn)
        .await
    {
        Ok(ids) => ids.into_iter().collect(),
        // Every one of them was kept before.
        Err(DbErr::RecordNotInserted) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    // One statement writes each order's row at most once: a second event of the same type
    // for an order (not one a checkout makes) waits for the one-by-one pass.
    let (mut placed, mut confirmed, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    let (mut placed_orders, mut confirmed_orders) = (HashSet::new(), HashSet::new());
    for envelope in envelopes.iter().filter(|e| kept.contains(&e.id)) {
        match envelope.event_type.as_str() {
            "order.placed" => {
                let row = placed_row(&envelope.payload, envelope.occurred_at)?;
                if placed_orders.insert(row.order_id) {
                    placed.push(row);
                    continue;
                }
            }
            "order.confirmed" => {
                let order: Confirmed = serde_json::from_value(envelope.payload.clone())?;
                if confirmed_orders.insert(order.order_id) {
                    confirmed.push(order);
                    continue;
                }
            }
            _ => {}
        }
        rest.push(envelope);
    }
    place(txn, placed).await?;
    confirm(txn, &confirmed).await?;
    for envelope in rest {
        apply(txn, &envelope.event_type, envelope.occurred_at, &envelope.payload).await?;
    }
    Ok(())
}

/// The row an `order.placed` makes: what the order would come to, until it is confirmed.
fn placed_row(payload: &serde_json::Value, at: DateTime<Utc>) -> anyhow::Result<sale::Model> {
    let placed: Placed = serde_json::from_value(payload.clone())?;
    let (total, currency) = placed.total.minor()?;
    Ok(sale::Model {
        order_id: placed.order_id,
        number: placed.number,
        day: day(at),
        status: "PENDING".into(),
        status_rank: rank("PENDING"),
        confirmed: false,
        currency,
        subtotal_minor: total,
        discount_minor: 0,
        total_minor: total,
    })
}

/// Creates the rows of placed orders, or (when another event, which may not carry the
/// number, came first) gives them their number and what the orders would come to, until they
/// are confirmed: one statement either way. Each order at most once.
async fn place(txn: &impl ConnectionTrait, rows: Vec<sale::Model>) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sale::Entity::insert_many(rows.into_iter().map(sale::ActiveModel::from))
        .on_conflict(
            OnConflict::column(sale::Column::OrderId)
                .update_columns([
                    sale::Column::Number,
                    sale::Column::Currency,
                    sale::Column::SubtotalMinor,
                    sale::Column::TotalMinor,
                ])
                .action_and_where(Expr::col((sale::Entity, sale::Column::Confirmed)).eq(false))
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Creates or fills in the rows of confirmed orders, their status moved forward to
/// CONFIRMED unless already further along (cancelled meanwhile, say), in one statement that
/// tells which; then the lines of those not cancelled, in one more. Each order at most once.
async fn confirm(txn: &impl ConnectionTrait, orders: &[Confirmed]) -> anyhow::Result<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let confirmed = rank("CONFIRMED");
    let mut rows = Vec::with_capacity(orders.len());
    for order in orders {
        let (subtotal, currency) = order.subtotal.minor()?;
        let (total, _) = order.total.minor()?;
        let discount = match &order.discount {
            Some(d) => d.minor()?.0,
            None => 0,
        };
        rows.push(sale::ActiveModel::from(sale::Model {
            order_id: order.order_id,
            number: order.number.clone(),
            day: day(order.placed_at),
            status: "CONFIRMED".into(),
            status_rank: confirmed,
            confirmed: true,
            currency,
            subtotal_minor: subtotal,
            discount_minor: discount,
            total_minor: total,
        }));
    }
    let behind = || Expr::col((sale::Entity, sale::Column::StatusRank)).lt(confirmed);
    let stored = sale::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(sale::Column::OrderId)
                .update_columns([
                    sale::Column::Number,
                    sale::Column::Confirmed,
                    sale::Column::Day,
                    sale::Column::Currency,
                    sale::Column::SubtotalMinor,
                    sale::Column::DiscountMinor,
                    sale::Column::TotalMinor,
                ])
                .value(
                    sale::Column::Status,
                    Expr::case(behind(), "CONFIRMED")
                        .finally(Expr::col((sale::Entity, sale::Column::Status))),
                )
                .value(
                    sale::Column::StatusRank,
                    Expr::case(behind(), confirmed)
                        .finally(Expr::col((sale::Entity, sale::Column::StatusRank))),
                )
                .to_owned(),
        )
        .exec_with_returning(txn)
        .await?;
    let cancelled: HashSet<Uuid> =
        stored.iter().filter(|row| row.status == "CANCELLED").map(|row| row.order_id).collect();
    let mut lines = Vec::new();
    for order in orders.iter().filter(|order| !cancelled.contains(&order.order_id)) {
        for line in &order.lines {
            lines.push(sale_line::ActiveModel::from(sale_line::Model {
                order_id: order.order_id,
                product_id: line.product_id,
                day: day(order.placed_at),
                name: line.name.clone(),
                category: line.category.clone().unwrap_or_else(|| "Uncategorized".into()),
                quantity: line.quantity,
                line_total_minor: line.line_total.minor()?.0,
            }));
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    sale_line::Entity::insert_many(lines)
        .on_conflict(
            OnConflict::columns([sale_line::Column::OrderId, sale_line::Column::ProductId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Creates the order's row if no event did yet.
async fn ensure_order(
    txn: &impl ConnectionTrait,
    order: Uuid,
    number: &str,
    at: DateTime<Utc>,
    currency: &str,
) -> anyhow::Result<()> {
    let stub = sale::Model {
        order_id: order,
        number: number.to_string(),
        day: day(at),
        status: "PENDING".into(),
        status_rank: 0,
        confirmed: false,
        currency: currency.to_string(),
        subtotal_minor: 0,
        discount_minor: 0,
        total_minor: 0,
    };
    sale::Entity::insert(sale::ActiveModel::from(stub))
        .on_conflict(OnConflict::column(sale::Column::OrderId).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Moves the order's status forward (never back).
async fn advance(txn: &impl ConnectionTrait, order: Uuid, status: &str) -> anyhow::Result<()> {
    sale::Entity::update_many()
        .col_expr(sale::Column::Status, Expr::value(status))
        .col_expr(sale::Column::StatusRank, Expr::value(rank(status)))
        .filter(sale::Column::OrderId.eq(order))
        .filter(sale::Column::StatusRank.lt(rank(status)))
        .exec(txn)
        .await?;
    Ok(())
}

/// Applies one event to the read model.
async fn apply(
    txn: &impl ConnectionTrait,
    event_type: &str,
    at: DateTime<Utc>,
    payload: &serde_json::Value,
) -> anyhow::Result<()> {
    match event_type {
        "order.placed" => place(txn, vec![placed_row(payload, at)?]).await?,
        "order.confirmed" => {
            let order: Confirmed = serde_json::from_value(payload.clone())?;
            confirm(txn, std::slice::from_ref(&order)).await?;
        }
        "order.cancelled"
        | "order.delivered"
        | "shipment.shipped"
        | "shipment.out_for_delivery"
        | "shipment.failed" => {
            let about: About = serde_json::from_value(payload.clone())?;
            let status = match event_type {
                "order.cancelled" => "CANCELLED",
                "order.delivered" => "DELIVERED",
                "shipment.shipped" => "SHIPPED",
                "shipment.out_for_delivery" => "OUT_FOR_DELIVERY",
                _ => "DELIVERY_FAILED",
            };
            let number = about.number.unwrap_or_default();
            ensure_order(txn, about.order_id, &number, at, "").await?;
            advance(txn, about.order_id, status).await?;
            if status == "CANCELLED" {
                // A cancelled order sold nothing.
                sale_line::Entity::delete_many()
                    .filter(sale_line::Column::OrderId.eq(about.order_id))
                    .exec(txn)
                    .await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Throws the read model away and builds it again from every event kept, in the order they
/// were received, in one transaction: reports never show a half-built model. Returns how many
/// events were replayed.
pub async fn rebuild(reporting: &Reporting) -> AppResult<u64> {
    const PAGE: u64 = 1000;
    let txn = reporting.db.begin().await?;
    sale_line::Entity::delete_many().exec(&txn).await?;
    sale::Entity::delete_many().exec(&txn).await?;
    let mut replayed = 0;
    loop {
        let page = event::Entity::find()
            .order_by_asc(event::Column::ReceivedSeq)
            .order_by_asc(event::Column::Id)
            .offset(replayed)
            .limit(PAGE)
            .all(&txn)
            .await?;
        for e in &page {
            apply(&txn, &e.event_type, e.occurred_at, &e.payload)
                .await
                .map_err(kernel::AppError::internal)?;
        }
        replayed += page.len() as u64;
        if (page.len() as u64) < PAGE {
            break;
        }
    }
    txn.commit().await?;
    tracing::info!(events = replayed, "reporting rebuilt from its event history");
    Ok(replayed)
}

/// How many events the history holds.
pub async fn history_len<C: ConnectionTrait>(db: &C) -> AppResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(event::Entity::find().count(db).await?)
}

#[cfg(test)]
mod tests {
    use migrations::MigratorTrait;
    use sea_orm::{DatabaseConnection, TransactionTrait};

    use super::*;

    /// A fresh model on SQLite, or on PostgreSQL (a schema of its own) when
    /// `TEST_DATABASE_URL` is set.
    async fn model() -> (DatabaseConnection, std::path::PathBuf) {
        let unique = Uuid::now_v7().simple().to_string();
        let dir = std::env::temp_dir().join(format!("bs-report-{unique}"));
        let mut settings = kernel::config::DatabaseSettings::default();
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            settings.url = Some(url.into());
            settings.schema_prefix = format!("r{}_", &unique[20..]);
            settings.max_connections = Some(2);
        }
        let db = kernel::db::connect(&settings, &dir, "reporting").await.unwrap();
        migrations::reporting::Migrator::up(&db, None).await.unwrap();
        (db, dir)
    }

    async fn feed(db: &DatabaseConnection, event_type: &str, payload: serde_json::Value) {
        let txn = db.begin().await.unwrap();
        record(&txn, &EventEnvelope::new(event_type, 1, "o", payload)).await.unwrap();
        txn.commit().await.unwrap();
    }

    fn money(amount: &str) -> serde_json::Value {
        serde_json::json!({ "amount": amount, "currency": "USD" })
    }

    fn confirmed(order: Uuid) -> serde_json::Value {
        serde_json::json!({
            "orderId": order, "number": "BS-1", "placedAt": "2026-11-20T10:00:00Z",
            "lines": [{ "productId": Uuid::nil(), "name": "Mug", "category": "Kitchen",
                        "quantity": 2, "lineTotal": money("18.00") }],
            "subtotal": money("18.00"), "discount": money("1.00"), "total": money("17.00"),
        })
    }

    /// Every order row and line of the model, in a comparable order.
    async fn contents(db: &DatabaseConnection) -> (Vec<sale::Model>, Vec<sale_line::Model>) {
        let rows = sale::Entity::find().order_by_asc(sale::Column::OrderId).all(db);
        let lines = sale_line::Entity::find().order_by_asc(sale_line::Column::OrderId).all(db);
        (rows.await.unwrap(), lines.await.unwrap())
    }

    #[tokio::test]
    async fn a_batch_leaves_the_model_its_events_leave_one_by_one() {
        let (orders, cancelled, shipped) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let placed = |order: Uuid, total: &str| {
            EventEnvelope::new(
                "order.placed",
                1,
                "o",
                serde_json::json!({ "orderId": order, "number": "BS-1", "total": money(total) }),
            )
        };
        let about = |kind: &str, order: Uuid| {
            EventEnvelope::new(kind, 1, "o", serde_json::json!({ "orderId": order }))
        };
        let twice = placed(orders, "18.00");
        let batch = [
            twice.clone(),
            EventEnvelope::new("order.confirmed", 1, "o", confirmed(orders)),
            // The same event again, and a second `order.placed` for the same order.
            twice,
            placed(orders, "99.00"),
            about("order.cancelled", cancelled),
            EventEnvelope::new("order.confirmed", 1, "o", confirmed(cancelled)),
            about("shipment.shipped", shipped),
            placed(shipped, "18.00"),
            EventEnvelope::new("order.confirmed", 1, "o", confirmed(shipped)),
        ];
        let (together, first_dir) = model().await;
        let txn = together.begin().await.unwrap();
        record_all(&txn, &batch.iter().collect::<Vec<_>>()).await.unwrap();
        txn.commit().await.unwrap();
        let (one_by_one, second_dir) = model().await;
        for envelope in &batch {
            let txn = one_by_one.begin().await.unwrap();
            record(&txn, envelope).await.unwrap();
            txn.commit().await.unwrap();
        }
        let expected = contents(&one_by_one).await;
        assert_eq!(contents(&together).await, expected);
        let statuses: Vec<&str> = expected.0.iter().map(|row| row.status.as_str()).collect();
        assert_eq!(statuses, ["CONFIRMED", "CANCELLED", "SHIPPED"]);
        assert_eq!(expected.1.len(), 2, "lines of the two orders not cancelled");
        assert_eq!(history_len(&together).await.unwrap(), 8, "each event kept once");
        let _ = std::fs::remove_dir_all(first_dir);
        let _ = std::fs::remove_dir_all(second_dir);
    }

    #[tokio::test]
    async fn events_in_any_order_leave_the_same_row() {
        let (db, dir) = model().await;
        // Placed, then confirmed: the confirmed figures and status win.
        let first = Uuid::now_v7();
        let placed =
            serde_json::json!({ "orderId": first, "number": "BS-1", "total": money("18.00") });
        feed(&db, "order.placed", placed).await;
        feed(&db, "order.confirmed", confirmed(first)).await;
        // Placed arriving late changes nothing once confirmed.
        feed(
            &db,
            "order.placed",
            serde_json::json!({ "orderId": first, "number": "BS-1", "total": money("99.00") }),
        )
        .await;
        let row = sale::Entity::find_by_id(first).one(&db).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.confirmed), ("CONFIRMED", true));
        assert_eq!((row.subtotal_minor, row.discount_minor, row.total_minor), (1800, 100, 1700));
        assert_eq!(row.day, "2026-11-20");
        let lines = sale_line::Entity::find().filter(sale_line::Column::OrderId.eq(first));
        assert_eq!(lines.all(&db).await.unwrap().len(), 1);

        // Cancelled news first (another topic), then the confirmation: it stays cancelled and
        // sold nothing; a shipment's news first, then the confirmation: it stays shipped.
        let second = Uuid::now_v7();
        feed(&db, "order.cancelled", serde_json::json!({ "orderId": second, "number": "BS-2" }))
            .await;
        feed(&db, "order.confirmed", confirmed(second)).await;
        let row = sale::Entity::find_by_id(second).one(&db).await.unwrap().unwrap();
        assert_eq!(row.status, "CANCELLED");
        let lines = sale_line::Entity::find().filter(sale_line::Column::OrderId.eq(second));
        assert!(lines.all(&db).await.unwrap().is_empty());
        let third = Uuid::now_v7();
        feed(&db, "shipment.shipped", serde_json::json!({ "orderId": third })).await;
        feed(&db, "order.confirmed", confirmed(third)).await;
        let row = sale::Entity::find_by_id(third).one(&db).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.confirmed, row.total_minor), ("SHIPPED", true, 1700));
        let _ = std::fs::remove_dir_all(dir);
    }
}
