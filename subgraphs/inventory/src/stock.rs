//! Stock and reservations: every change is one transaction, and every change that matters to
//! another context leaves an event in the outbox in that same transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entities::inventory::{reservation, stock};
use kernel::events::{EventEnvelope, outbox};
use kernel::{AppError, AppResult};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Statement, TransactionTrait,
};
use uuid::Uuid;

use crate::Inventory;

/// Most units of one product one order may reserve.
pub const MAX_LINE_QUANTITY: i64 = 1_000;
/// Most units a product may have on hand.
pub const MAX_ON_HAND: i64 = 1_000_000_000;

/// A reservation's status.
pub mod status {
    /// Held for an order not yet confirmed: lapses at `expires_at`.
    pub const HELD: &str = "HELD";
    /// Held for a confirmed order until it ships.
    pub const CONFIRMED: &str = "CONFIRMED";
    /// Shipped: the units left the shelf.
    pub const COMMITTED: &str = "COMMITTED";
    /// Given back.
    pub const RELEASED: &str = "RELEASED";
}

/// Units of one product for one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// The product.
    pub product_id: Uuid,
    /// How many units (at least 1).
    pub quantity: i64,
}

/// What a reservation attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Every line is held.
    Held,
    /// Nothing is held: these products have too few units.
    OutOfStock(Vec<Uuid>),
    /// The order's lines were reserved before (a repeated request): nothing changed.
    AlreadyReserved,
}

/// Stock of a product as the storefront and administrators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// The product.
    pub product_id: Uuid,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units held for orders.
    pub reserved: i64,
}

impl Level {
    /// Units that can still be sold.
    pub fn available(&self) -> i64 {
        Ord::max(self.on_hand - self.reserved, 0)
    }

    /// A product without a stock row has none.
    pub fn none(product_id: Uuid) -> Self {
        Self { product_id, on_hand: 0, reserved: 0 }
    }
}

impl From<stock::Model> for Level {
    fn from(row: stock::Model) -> Self {
        Self { product_id: row.product_id, on_hand: row.on_hand, reserved: row.reserved }
    }
}

/// Checks an order's lines: at least one, quantities within bounds, each product once (the
/// quantities of repeated products are summed).
pub fn parse_lines(lines: &[Line]) -> AppResult<Vec<Line>> {
    if lines.is_empty() {
        return Err(AppError::bad_input("an order needs at least one line"));
    }
    let mut merged: BTreeMap<Uuid, i64> = BTreeMap::new();
    for line in lines {
        if line.quantity < 1 || line.quantity > MAX_LINE_QUANTITY {
            return Err(AppError::bad_input(format!(
                "quantity must be between 1 and {MAX_LINE_QUANTITY}"
            )));
        }
        *merged.entry(line.product_id).or_default() += line.quantity;
    }
    if merged.values().any(|q| *q > MAX_LINE_QUANTITY) {
        return Err(AppError::bad_input(format!("at most {MAX_LINE_QUANTITY} units per product")));
    }
    // Ordered by product id: concurrent reservations lock rows in the same order.
    Ok(merged.into_iter().map(|(product_id, quantity)| Line { product_id, quantity }).collect())
}

/// Sets the units on hand of a product (an administrator's count). Refused below what is
/// reserved: those units are promised to orders.
pub async fn set_on_hand(
    inventory: &Inventory,
    product_id: Uuid,
    on_hand: i64,
) -> AppResult<Level> {
    if !(0..=MAX_ON_HAND).contains(&on_hand) {
        return Err(AppError::bad_input(format!("on hand must be between 0 and {MAX_ON_HAND}")));
    }
    let now = Utc::now();
    let txn = inventory.db.begin().await?;
    // Create the row if missing (0 reserved), then change it only where the reserved units fit.
    stock::Entity::insert(stock::ActiveModel {
        product_id: Set(product_id),
        on_hand: Set(0),
        reserved: Set(0),
        updated_at: Set(now),
    })
    .on_conflict(OnConflict::column(stock::Column::ProductId).do_nothing().to_owned())
    .exec_without_returning(&txn)
    .await?;
    let changed = stock::Entity::update_many()
        .col_expr(stock::Column::OnHand, Expr::value(on_hand))
        .col_expr(stock::Column::UpdatedAt, Expr::value(now))
        .filter(stock::Column::ProductId.eq(product_id))
        .filter(stock::Column::Reserved.lte(on_hand))
        .exec(&txn)
        .await?;
    let row = stock::Entity::find_by_id(product_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("stock row vanished")))?;
    if changed.rows_affected == 0 {
        txn.rollback().await?;
        return Err(AppError::Conflict(format!(
            "{} units are reserved for orders; on hand cannot go below that",
            row.reserved
        )));
    }
    txn.commit().await?;
    tracing::info!(%product_id, on_hand, "stock set");
    Ok(row.into())
}

/// Stock levels of `products` (those without a row have none).
pub async fn levels<C: ConnectionTrait>(db: &C, products: &[Uuid]) -> AppResult<Vec<Level>> {
    let rows = stock::Entity::find()
        .filter(stock::Column::ProductId.is_in(products.iter().copied()))
        .all(db)
        .await?;
    Ok(products
        .iter()
        .map(|id| {
            rows.iter().find(|r| r.product_id == *id).cloned().map_or(Level::none(*id), Level::from)
        })
        .collect())
}

/// Reserves `lines` for `order_id` inside `txn`, all or nothing, and records
/// `stock.reserved` or `stock.reservation_failed` (caused by `cause`). Held reservations
/// lapse after the inventory's reservation time unless the order is confirmed. An order
/// that holds a reservation already changes nothing; it is answered again (as before) only
/// when `resumed` (orders asking again for a checkout left pending).
pub async fn reserve(
    inventory: &Inventory,
    txn: &impl ConnectionTrait,
    order_id: Uuid,
    lines: &[Line],
    resumed: bool,
    cause: Option<&EventEnvelope>,
) -> AppResult<Reserved> {
    let lines = parse_lines(lines)?;
    let now = Utc::now();
    let expires_at = lapses_at(inventory, now)?;
    // The reservation rows go first: a write (so SQLite takes its write lock before anything
    // is read), and the unique (order, product) index tells whether this order was answered
    // before.
    let mut rows = lines.iter().map(|line| held_row(order_id, line, expires_at, now));
    // One line (nearly every order) on PostgreSQL: the reservation row and the stock in one
    // statement, a round trip less on the way of every checkout.
    let (held, short) = if let ([line], DbBackend::Postgres) =
        (&lines[..], txn.get_database_backend())
        && let Some(row) = rows.next()
    {
        let (new, taken) = hold_one(txn, row, now).await?;
        if !new {
            return answer_again(txn, order_id, resumed, cause).await;
        }
        if taken { (vec![line], Vec::new()) } else { (Vec::new(), vec![line.product_id]) }
    } else {
        let inserted = reservation::Entity::insert_many(rows)
            .on_conflict(once_per_order_and_product())
            .exec_without_returning(txn)
            .await?;
        if inserted == 0 {
            return answer_again(txn, order_id, resumed, cause).await;
        }
        if inserted != lines.len() as u64 {
            return Err(AppError::internal(anyhow::anyhow!(
                "order {order_id} was reserved before with other products"
            )));
        }
        // Then the stock, each line by a conditional update: it holds the units or changes
        // nothing, so stock is never oversold. Last, to keep the rows locked for the shortest
        // time.
        let mut held = Vec::with_capacity(lines.len());
        let mut short = Vec::new();
        for line in &lines {
            let update = taking(line, now).exec(txn).await?;
            if update.rows_affected == 0 {
                short.push(line.product_id);
            } else {
                held.push(line);
            }
        }
        (held, short)
    };
    let event = if short.is_empty() {
        reserved_event(order_id, &lines, expires_at)
    } else {
        // All or nothing: give back what the other lines took, and drop the reservations.
        for line in held {
            stock::Entity::update_many()
                .col_expr(
                    stock::Column::Reserved,
                    Expr::col(stock::Column::Reserved).sub(line.quantity),
                )
                .filter(stock::Column::ProductId.eq(line.product_id))
                .exec(txn)
                .await?;
        }
        reservation::Entity::delete_many()
            .filter(reservation::Column::OrderId.eq(order_id))
            .exec(txn)
            .await?;
        out_of_stock(order_id, &short)
    };
    outbox::append(txn, &event.caused_by_any(cause)).await?;
    if short.is_empty() {
        tracing::info!(%order_id, lines = lines.len(), "stock reserved");
        Ok(Reserved::Held)
    } else {
        tracing::info!(%order_id, short = ?short, "stock reservation failed: out of stock");
        Ok(Reserved::OutOfStock(short))
    }
}

/// Reserves the one line of an order asked for the first time as a guarded change, put off
/// to the commit of `txn` on PostgreSQL ([`outbox::write_guarded`]): the conditional update
/// of the stock, the reservation row and `stock.reserved` if it takes the units, else
/// `stock.reservation_failed`; nothing at all if the order holds a reservation already. A
/// consumer's unit of work is then a single statement. False, having done nothing, where it
/// does not apply (several lines, another database, or a guard already waiting on the stock,
/// which the same row must not be updated beside in one statement): the caller reserves with
/// [`reserve`].
pub async fn reserve_later(
    inventory: &Inventory,
    txn: &impl ConnectionTrait,
    order_id: Uuid,
    lines: &[Line],
    cause: Option<&EventEnvelope>,
) -> AppResult<bool> {
    use sea_orm::EntityName;
    let lines = parse_lines(lines)?;
    let [line] = &lines[..] else { return Ok(false) };
    if txn.get_database_backend() != DbBackend::Postgres
        || outbox::guards_due(stock::Entity.table_name())
    {
        return Ok(false);
    }
    let now = Utc::now();
    let expires_at = lapses_at(inventory, now)?;
    let answered = sea_orm::sea_query::Query::select()
        .expr(Expr::val(1))
        .from(reservation::Entity)
        .and_where(reservation::Column::OrderId.eq(order_id))
        .to_owned();
    let guard = outbox::Guard::new(taking(line, now))
        .insert([held_row(order_id, line, expires_at, now)])
        .append([reserved_event(order_id, &lines, expires_at).caused_by_any(cause)])
        .otherwise([out_of_stock(order_id, &[line.product_id]).caused_by_any(cause)])
        .unless(answered);
    outbox::write_guarded(txn, guard).await?;
    Ok(true)
}

/// The conditional update that holds `line`'s units: it changes the stock row only if
/// enough are available, so stock is never oversold.
fn taking(line: &Line, now: DateTime<Utc>) -> sea_orm::UpdateMany<stock::Entity> {
    stock::Entity::update_many()
        .col_expr(stock::Column::Reserved, Expr::col(stock::Column::Reserved).add(line.quantity))
        .col_expr(stock::Column::UpdatedAt, Expr::value(now))
        .filter(stock::Column::ProductId.eq(line.product_id))
        .filter(
            Expr::col(stock::Column::OnHand)
                .sub(Expr::col(stock::Column::Reserved))
                .gte(line.quantity),
        )
}

/// When a reservation made `now` lapses unless its order is confirmed.
fn lapses_at(inventory: &Inventory, now: DateTime<Utc>) -> AppResult<DateTime<Utc>> {
    let ttl = chrono::Duration::from_std(inventory.reservation_ttl)
        .map_err(|e| AppError::internal(anyhow::anyhow!("reservation time: {e}")))?;
    Ok(now + ttl)
}

/// The reservation row holding `line` for `order_id`.
fn held_row(
    order_id: Uuid,
    line: &Line,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> reservation::ActiveModel {
    reservation::ActiveModel {
        id: Set(kernel::id::new_id()),
        order_id: Set(order_id),
        product_id: Set(line.product_id),
        quantity: Set(line.quantity),
        status: Set(status::HELD.into()),
        expires_at: Set(expires_at),
        release_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// Writes the reservation `row` unless its order has it already, then takes its units from
/// the stock on condition that enough are there, in one statement (PostgreSQL): whether the
/// row was new, and whether the units were taken. The conditional update is the same as the
/// one line at a time path's, so stock is never oversold.
async fn hold_one(
    txn: &impl ConnectionTrait,
    row: reservation::ActiveModel,
    now: DateTime<Utc>,
) -> AppResult<(bool, bool)> {
    use sea_orm::QueryTrait;
    use sea_orm::sea_query::PostgresQueryBuilder;
    let mut insert =
        reservation::Entity::insert(row).on_conflict(once_per_order_and_product()).into_query();
    // One `returning` for both columns: each `returning_col` would replace the last.
    insert.returning(
        sea_orm::sea_query::Query::returning()
            .columns([reservation::Column::ProductId, reservation::Column::Quantity]),
    );
    let (insert, mut values) = insert.build(PostgresQueryBuilder);
    values.0.push(now.into());
    let sql = format!(
        "WITH held AS ({insert}), taken AS (UPDATE stock SET reserved = stock.reserved + \
         held.quantity, updated_at = ${now} FROM held WHERE stock.product_id = held.product_id \
         AND stock.on_hand - stock.reserved >= held.quantity RETURNING stock.product_id) \
         SELECT (SELECT COUNT(*) FROM held) AS held, (SELECT COUNT(*) FROM taken) AS taken",
        now = values.0.len()
    );
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let counts = txn
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("holding stock returned no row")))?;
    let held: i64 = counts.try_get("", "held")?;
    let taken: i64 = counts.try_get("", "taken")?;
    Ok((held > 0, taken > 0))
}

/// An order holds a product at most once: a reservation row already there is left as it is
/// (and tells that the order was answered before).
fn once_per_order_and_product() -> OnConflict {
    OnConflict::columns([reservation::Column::OrderId, reservation::Column::ProductId])
        .do_nothing()
        .to_owned()
}

/// `stock.reservation_failed`: `short` have too few units for `order_id`.
fn out_of_stock(order_id: Uuid, short: &[Uuid]) -> EventEnvelope {
    EventEnvelope::new(
        "stock.reservation_failed",
        1,
        order_id,
        serde_json::json!({ "orderId": order_id, "reason": "OUT_OF_STOCK", "productIds": short }),
    )
}

/// `stock.reserved`: `lines` are held for `order_id` until `expires_at`.
fn reserved_event(order_id: Uuid, lines: &[Line], expires_at: DateTime<Utc>) -> EventEnvelope {
    EventEnvelope::new(
        "stock.reserved",
        1,
        order_id,
        serde_json::json!({ "orderId": order_id, "lines": lines, "expiresAt": expires_at }),
    )
}

/// Answers a repeated request for `order_id` (orders resuming a checkout) with the answer
/// given before: `stock.reserved` again while the units are held, nothing once they lapsed
/// or went back (the order is being cancelled then).
async fn answer_again(
    txn: &impl ConnectionTrait,
    order_id: Uuid,
    resumed: bool,
    cause: Option<&EventEnvelope>,
) -> AppResult<Reserved> {
    if !resumed {
        return Ok(Reserved::AlreadyReserved);
    }
    let held = reservation::Entity::find()
        .filter(reservation::Column::OrderId.eq(order_id))
        .filter(reservation::Column::Status.is_in([status::HELD, status::CONFIRMED]))
        .all(txn)
        .await?;
    if let Some(first) = held.first() {
        let lines: Vec<Line> =
            held.iter().map(|r| Line { product_id: r.product_id, quantity: r.quantity }).collect();
        let again = reserved_event(order_id, &lines, first.expires_at);
        outbox::append(txn, &again.caused_by_any(cause)).await?;
    }
    Ok(Reserved::AlreadyReserved)
}

/// Releases what `order_id` holds (held or confirmed) inside `txn`, recording
/// `stock.released` with `reason`; false when it held nothing.
pub async fn release(
    txn: &impl ConnectionTrait,
    order_id: Uuid,
    reason: &str,
    cause: Option<&EventEnvelope>,
) -> AppResult<bool> {
    let held = reservation::Entity::find()
        .filter(reservation::Column::OrderId.eq(order_id))
        .filter(reservation::Column::Status.is_in([status::HELD, status::CONFIRMED]))
        .order_by_asc(reservation::Column::ProductId)
        .all(txn)
        .await?;
    if held.is_empty() {
        return Ok(false);
    }
    let now = Utc::now();
    let mut lines = Vec::with_capacity(held.len());
    for row in &held {
        if !mark(txn, row, status::RELEASED, Some(reason), now).await? {
            continue;
        }
        stock::Entity::update_many()
            .col_expr(stock::Column::Reserved, Expr::col(stock::Column::Reserved).sub(row.quantity))
            .col_expr(stock::Column::UpdatedAt, Expr::value(now))
            .filter(stock::Column::ProductId.eq(row.product_id))
            .exec(txn)
            .await?;
        lines.push(Line { product_id: row.product_id, quantity: row.quantity });
    }
    if lines.is_empty() {
        return Ok(false);
    }
    let event = EventEnvelope::new(
        "stock.released",
        1,
        order_id,
        serde_json::json!({ "orderId": order_id, "reason": reason, "lines": lines }),
    );
    outbox::append(txn, &event.caused_by_any(cause)).await?;
    tracing::info!(%order_id, reason, "stock released");
    Ok(true)
}

/// Moves `row` to `to` (with the release `reason`, if any) on condition that it still
/// stands where it was read: of two concurrent moves only one wins, so units are never given
/// back or taken off the shelf twice. False when the other won.
async fn mark(
    txn: &impl ConnectionTrait,
    row: &reservation::Model,
    to: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let mut update = reservation::Entity::update_many()
        .col_expr(reservation::Column::Status, Expr::value(to))
        .col_expr(reservation::Column::UpdatedAt, Expr::value(now))
        .filter(reservation::Column::Id.eq(row.id))
        .filter(reservation::Column::Status.eq(row.status.clone()));
    if let Some(reason) = reason {
        update = update.col_expr(reservation::Column::ReleaseReason, Expr::value(reason));
    }
    Ok(update.exec(txn).await?.rows_affected > 0)
}

/// Marks the held reservations of `order_ids` confirmed, in one update: they no longer
/// lapse. Inside a consumer's unit of work the update waits for its commit (a guard with
/// nothing depending on it, see [`outbox::write_guarded`]), unless a later statement of the
/// unit reads or writes reservations first.
pub async fn confirm(txn: &impl ConnectionTrait, order_ids: &[Uuid]) -> AppResult<()> {
    if order_ids.is_empty() {
        return Ok(());
    }
    outbox::write_guarded(txn, outbox::Guard::new(confirming(order_ids))).await?;
    Ok(())
}

/// Marks the held reservations of `order_ids` confirmed at once, in `txn` (in a unit of
/// work, after any guard waiting on the reservations).
pub async fn confirm_now(txn: &impl ConnectionTrait, order_ids: &[Uuid]) -> AppResult<()> {
    confirming(order_ids).exec(txn).await?;
    Ok(())
}

/// The update that confirms the held reservations of `order_ids`.
fn confirming(order_ids: &[Uuid]) -> sea_orm::UpdateMany<reservation::Entity> {
    reservation::Entity::update_many()
        .col_expr(reservation::Column::Status, Expr::value(status::CONFIRMED))
        .col_expr(reservation::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(reservation::Column::OrderId.is_in(order_ids.iter().copied()))
        .filter(reservation::Column::Status.eq(status::HELD))
}

/// Takes `order_id`'s reserved units off the shelf (it shipped): on hand and reserved both
/// go down.
pub async fn commit(txn: &impl ConnectionTrait, order_id: Uuid) -> AppResult<u64> {
    // In product order, as reservations and releases lock the stock rows.
    let rows = reservation::Entity::find()
        .filter(reservation::Column::OrderId.eq(order_id))
        .filter(reservation::Column::Status.is_in([status::HELD, status::CONFIRMED]))
        .order_by_asc(reservation::Column::ProductId)
        .all(txn)
        .await?;
    let now = Utc::now();
    let mut committed = 0;
    for row in rows {
        if !mark(txn, &row, status::COMMITTED, None, now).await? {
            continue;
        }
        stock::Entity::update_many()
            .col_expr(stock::Column::OnHand, Expr::col(stock::Column::OnHand).sub(row.quantity))
            .col_expr(stock::Column::Reserved, Expr::col(stock::Column::Reserved).sub(row.quantity))
            .col_expr(stock::Column::UpdatedAt, Expr::value(now))
            .filter(stock::Column::ProductId.eq(row.product_id))
            .exec(txn)
            .await?;
        committed += 1;
    }
    Ok(committed)
}

/// Releases every held reservation that lapsed before `now` (its order was never
/// confirmed), one order per transaction; returns how many orders were released.
pub async fn expire_held(inventory: &Inventory, now: DateTime<Utc>) -> AppResult<usize> {
    let lapsed: Vec<Uuid> = reservation::Entity::find()
        .filter(reservation::Column::Status.eq(status::HELD))
        .filter(reservation::Column::ExpiresAt.lt(now))
        .all(&inventory.db)
        .await?
        .into_iter()
        .map(|r| r.order_id)
        .collect();
    let mut orders: Vec<Uuid> = lapsed;
    orders.sort_unstable();
    orders.dedup();
    let mut released = 0;
    for order_id in orders {
        let txn = inventory.db.begin().await?;
        // Only what is still merely held: a confirmation that won the race keeps its units.
        let still_held = reservation::Entity::find()
            .filter(reservation::Column::OrderId.eq(order_id))
            .filter(reservation::Column::Status.eq(status::HELD))
            .count(&txn)
            .await?;
        if still_held == 0 {
            txn.rollback().await?;
            continue;
        }
        let (freed, events) = outbox::deferring(release(&txn, order_id, "EXPIRED", None)).await;
        if freed? {
            released += 1;
        }
        inventory.relay.commit(txn, events).await?;
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product: u128, quantity: i64) -> Line {
        Line { product_id: Uuid::from_u128(product), quantity }
    }

    #[test]
    fn order_lines_are_checked_and_merged_by_product_in_id_order() {
        let merged = parse_lines(&[line(2, 1), line(1, 2), line(2, 3)]).unwrap();
        assert_eq!(merged, vec![line(1, 2), line(2, 4)]);
        for bad in
            [vec![], vec![line(1, 0)], vec![line(1, -1)], vec![line(1, MAX_LINE_QUANTITY + 1)]]
        {
            assert!(matches!(parse_lines(&bad), Err(AppError::BadUserInput(_))), "{bad:?}");
        }
        let split = [line(1, MAX_LINE_QUANTITY), line(1, 1)];
        assert!(parse_lines(&split).is_err(), "the limit holds for the merged quantity");
    }

    #[test]
    fn available_never_goes_below_zero() {
        let level = Level { product_id: Uuid::nil(), on_hand: 3, reserved: 5 };
        assert_eq!(level.available(), 0);
        assert_eq!(Level::none(Uuid::nil()).available(), 0);
    }
}
