//! Events into the read model. Each event is applied so that the order events of different
//! topics arrive in does not matter: an order's row is created by whichever event comes first
//! and filled in by `order.confirmed`; its status only moves forward along the order's life.

use chrono::{DateTime, Utc};
use entities::reporting::{event, sale, sale_line};
use kernel::AppResult;
use kernel::events::EventEnvelope;
use kernel::money::{Currency, Money};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
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

/// Keeps `event` in the history (once) and applies it.
pub async fn record(txn: &DatabaseTransaction, envelope: &EventEnvelope) -> anyhow::Result<()> {
    let row = event::Model {
        id: envelope.id,
        event_type: envelope.event_type.clone(),
        version: envelope.version,
        occurred_at: envelope.occurred_at,
        payload: envelope.payload.clone(),
        received_seq: Utc::now().timestamp_micros(),
    };
    let kept = event::Entity::insert(event::ActiveModel::from(row))
        .on_conflict(OnConflict::column(event::Column::Id).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?;
    if kept > 0 {
        apply(txn, &envelope.event_type, envelope.occurred_at, &envelope.payload).await?;
    }
    Ok(())
}

/// Creates the order's row if no event did yet.
async fn ensure_order(
    txn: &DatabaseTransaction,
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
async fn advance(txn: &DatabaseTransaction, order: Uuid, status: &str) -> anyhow::Result<()> {
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
    txn: &DatabaseTransaction,
    event_type: &str,
    at: DateTime<Utc>,
    payload: &serde_json::Value,
) -> anyhow::Result<()> {
    match event_type {
        "order.placed" => {
            let placed: Placed = serde_json::from_value(payload.clone())?;
            let (total, currency) = placed.total.minor()?;
            ensure_order(txn, placed.order_id, &placed.number, at, &currency).await?;
            // Until confirmed, what it would come to.
            sale::Entity::update_many()
                .col_expr(sale::Column::Currency, Expr::value(currency))
                .col_expr(sale::Column::SubtotalMinor, Expr::value(total))
                .col_expr(sale::Column::TotalMinor, Expr::value(total))
                .filter(sale::Column::OrderId.eq(placed.order_id))
                .filter(sale::Column::Confirmed.eq(false))
                .exec(txn)
                .await?;
        }
        "order.confirmed" => {
            let order: Confirmed = serde_json::from_value(payload.clone())?;
            let (subtotal, currency) = order.subtotal.minor()?;
            let (total, _) = order.total.minor()?;
            let discount = match &order.discount {
                Some(d) => d.minor()?.0,
                None => 0,
            };
            ensure_order(txn, order.order_id, &order.number, order.placed_at, &currency).await?;
            sale::Entity::update_many()
                .col_expr(sale::Column::Confirmed, Expr::value(true))
                .col_expr(sale::Column::Day, Expr::value(day(order.placed_at)))
                .col_expr(sale::Column::Currency, Expr::value(currency.clone()))
                .col_expr(sale::Column::SubtotalMinor, Expr::value(subtotal))
                .col_expr(sale::Column::DiscountMinor, Expr::value(discount))
                .col_expr(sale::Column::TotalMinor, Expr::value(total))
                .filter(sale::Column::OrderId.eq(order.order_id))
                .exec(txn)
                .await?;
            advance(txn, order.order_id, "CONFIRMED").await?;
            let cancelled = sale::Entity::find_by_id(order.order_id)
                .one(txn)
                .await?
                .is_some_and(|s| s.status == "CANCELLED");
            if !cancelled {
                let mut lines = Vec::with_capacity(order.lines.len());
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
                sale_line::Entity::insert_many(lines)
                    .on_conflict(
                        OnConflict::columns([
                            sale_line::Column::OrderId,
                            sale_line::Column::ProductId,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .exec_without_returning(txn)
                    .await?;
            }
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
