//! Placing, reading and cancelling orders, and every status change: each in one transaction
//! with its timeline entry and its event.

use chrono::{DateTime, Utc};
use entities::orders::{line, order, timeline};
use kernel::auth::Caller;
use kernel::events::{EventEnvelope, outbox};
use kernel::money::{Currency, Money};
use kernel::{AppError, AppResult};
use sea_orm::sea_query::{Expr, InsertStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, SqlErr, TransactionTrait, TryIntoModel,
};
use uuid::Uuid;

use crate::Orders;
use crate::domain::{self, Address, Status};
use crate::feed::StatusChange;

/// A checked request to place an order.
pub struct Placement {
    /// The cart to buy (a guest's; or the signed-in customer's own).
    pub cart_id: Uuid,
    /// The card to charge.
    pub payment_method_id: Uuid,
    /// Where it goes.
    pub address: Address,
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// Loyalty points to redeem for a discount (0 for none).
    pub redeem_points: i64,
    /// Where a guest's order mails go; a customer's go to the account's address.
    pub email: Option<kernel::email::Email>,
}

/// An amount stored in minor units, as events carry it.
pub(crate) fn money_json(minor: i64, currency: &str) -> serde_json::Value {
    Currency::parse(currency)
        .map_or(serde_json::Value::Null, |c| Money::from_minor(minor, c).to_json())
}

/// `order.placed` for a stored order and its lines: at placement, and again when the saga
/// resumes a checkout that was never answered.
pub(crate) fn placed_event(order: &order::Model, lines: &[(Uuid, i32)]) -> EventEnvelope {
    let lines: Vec<serde_json::Value> = lines
        .iter()
        .map(
            |(product, quantity)| serde_json::json!({ "productId": product, "quantity": quantity }),
        )
        .collect();
    EventEnvelope::new(
        "order.placed",
        1,
        order.id,
        serde_json::json!({
            "orderId": order.id, "number": order.number, "customerId": order.customer_id,
            "cartId": order.cart_id, "lines": lines,
            "total": money_json(order.total_minor, &order.currency),
        }),
    )
}

/// `order.confirmed`: the order as it will ship and be paid for, so that the contexts that
/// follow (fulfillment, notifications, rewards, reporting) need not ask orders for it.
pub(crate) fn confirmed_event(order: &order::Model, lines: &[line::Model]) -> EventEnvelope {
    let lines: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "productId": l.product_id, "name": l.name, "category": l.category,
                "quantity": l.quantity,
                "unitPrice": money_json(l.unit_price_minor, &order.currency),
                "lineTotal": money_json(l.line_total_minor, &order.currency),
            })
        })
        .collect();
    EventEnvelope::new(
        "order.confirmed",
        1,
        order.id,
        serde_json::json!({
            "orderId": order.id, "number": order.number, "customerId": order.customer_id,
            "placedAt": order.created_at, "lines": lines,
            "subtotal": money_json(order.subtotal_minor, &order.currency),
            "discount": money_json(order.discount_minor, &order.currency),
            "pointsRedeemed": order.points_redeemed,
            "total": money_json(order.total_minor, &order.currency),
            "shippingAddress": order.shipping_address, "email": order.email,
        }),
    )
}

fn unavailable(error: kernel::http_client::CallError) -> AppError {
    AppError::internal(anyhow::anyhow!("{error}"))
}

/// Places an order from a cart at the catalog's current prices and starts the checkout; the
/// same key and request return the same order (nothing placed twice, nothing charged twice).
pub async fn place(
    orders: &Orders,
    caller: Option<&Caller>,
    request: Placement,
) -> AppResult<order::Model> {
    let hash = domain::request_hash(
        &request.cart_id,
        &request.payment_method_id,
        &request.address,
        request.redeem_points,
        request.email.as_ref(),
    );
    // A repeated request is answered with the order it placed. Looked up first only when
    // placing spends points (a repeat must not spend them again, even for a moment); otherwise
    // a first request, by far the most common, pays no lookup: a repeat fails to insert (the
    // key is unique), or fails earlier (its cart is gone once the order is placed), and then
    // finds its order.
    if request.redeem_points > 0
        && let Some(existing) =
            by_key(&orders.db, request.cart_id, &request.idempotency_key).await?
    {
        return same_request(existing, &hash, caller);
    }
    match place_new(orders, caller, &request, &hash).await {
        Ok(order) => Ok(order),
        Err(error) => match by_key(&orders.db, request.cart_id, &request.idempotency_key).await? {
            Some(existing) => same_request(existing, &hash, caller),
            None => Err(error),
        },
    }
}

/// Places the order of a request not seen before (see [`place`]).
async fn place_new(
    orders: &Orders,
    caller: Option<&Caller>,
    request: &Placement,
    hash: &str,
) -> AppResult<order::Model> {
    let cart = orders
        .carts
        .cart(request.cart_id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| AppError::NotFound("no such cart".into()))?;
    let customer = match (cart.customer_id, caller) {
        (None, caller) => caller.map(|c| c.customer_id),
        (Some(owner), Some(caller)) if owner == caller.customer_id => Some(owner),
        (Some(_), _) => return Err(AppError::Forbidden("this cart is not yours".into())),
    };
    if cart.lines.is_empty() {
        return Err(AppError::bad_input("the cart is empty"));
    }
    let ids: Vec<Uuid> = cart.lines.iter().map(|l| l.product_id).collect();
    let prices = orders.catalog.products(&ids).await.map_err(unavailable)?;
    let mut lines = Vec::with_capacity(cart.lines.len());
    let mut subtotal: Option<Money> = None;
    for (position, l) in cart.lines.iter().enumerate() {
        let price = prices
            .get(&l.product_id)
            .ok_or_else(|| AppError::bad_input("the cart holds an unknown product"))?;
        if !price.active {
            return Err(AppError::bad_input(format!("{} is no longer sold", price.name)));
        }
        let quantity = u32::try_from(l.quantity)
            .map_err(|_| AppError::bad_input("a cart quantity is not valid"))?;
        let total = price.price.times(quantity)?;
        subtotal = Some(match subtotal {
            Some(sum) => sum.checked_add(&total)?,
            None => total,
        });
        lines.push(line::ActiveModel {
            order_id: Set(Uuid::nil()),
            product_id: Set(l.product_id),
            name: Set(price.name.clone()),
            unit_price_minor: Set(price.price.minor_units()?),
            quantity: Set(l.quantity),
            line_total_minor: Set(total.minor_units()?),
            position: Set(position as i32),
            category: Set(Some(price.category.clone())),
        });
    }
    let subtotal = subtotal.ok_or_else(|| AppError::bad_input("the cart is empty"))?;
    if subtotal.is_negative() {
        return Err(AppError::internal(anyhow::anyhow!("negative order total")));
    }
    let id = Uuid::new_v4();
    let (points, discount) = match request.redeem_points {
        0 => (0, Money::zero(subtotal.currency())),
        points => (points, redeem(orders, caller, customer, id, points, &subtotal).await?),
    };
    let total = subtotal.checked_sub(&discount)?;
    let stored = store(
        orders,
        id,
        customer,
        &cart,
        request,
        hash,
        &subtotal,
        (points, &discount, &total),
        lines,
    )
    .await;
    match stored {
        Ok(Stored::New(order)) => Ok(order),
        Ok(Stored::Existing(order)) => {
            give_back(orders, id, points).await;
            same_request(order, hash, caller)
        }
        Err(error) => {
            give_back(orders, id, points).await;
            Err(error)
        }
    }
}

/// Spends the customer's points on order `id`: the discount they buy.
async fn redeem(
    orders: &Orders,
    caller: Option<&Caller>,
    customer: Option<Uuid>,
    id: Uuid,
    points: i64,
    subtotal: &Money,
) -> AppResult<Money> {
    let Some(caller) = caller else {
        return Err(AppError::Unauthenticated("sign in to redeem points".into()));
    };
    if customer != Some(caller.customer_id) {
        return Err(AppError::Forbidden("points are redeemed on your own orders only".into()));
    }
    if points <= 0 {
        return Err(AppError::bad_input("`redeemPoints` must be positive"));
    }
    match orders.rewards.redeem(id, caller.customer_id, points, subtotal).await {
        Ok(discount) => Ok(discount),
        Err(kernel::http_client::CallError::Refused(_, why)) => Err(AppError::BadUserInput(why)),
        Err(other) => Err(unavailable(other)),
    }
}

/// Gives back points redeemed for an order that was not stored (rewards would after its hold
/// anyway; this is sooner).
async fn give_back(orders: &Orders, id: Uuid, points: i64) {
    if points == 0 {
        return;
    }
    if let Err(error) = orders.rewards.give_back(id).await {
        tracing::warn!(order_id = %id, %error, "points not given back yet; rewards will after its hold");
    }
}

enum Stored {
    New(order::Model),
    Existing(order::Model),
}

#[allow(clippy::too_many_arguments)]
async fn store(
    orders: &Orders,
    id: Uuid,
    customer: Option<Uuid>,
    cart: &crate::upstream::CartContents,
    request: &Placement,
    hash: &str,
    subtotal: &Money,
    (points, discount, total): (i64, &Money, &Money),
    lines: Vec<line::ActiveModel>,
) -> AppResult<Stored> {
    let now = Utc::now();
    let currency = subtotal.currency().code().to_string();
    let row = order::ActiveModel {
        id: Set(id),
        number: Set(domain::order_number()),
        customer_id: Set(customer),
        cart_id: Set(cart.id),
        status: Set(Status::Pending.as_str().into()),
        cancel_reason: Set(None),
        currency: Set(currency.clone()),
        subtotal_minor: Set(subtotal.minor_units()?),
        discount_minor: Set(discount.minor_units()?),
        points_redeemed: Set(points),
        total_minor: Set(total.minor_units()?),
        shipping_address: Set(serde_json::to_value(&request.address).map_err(AppError::internal)?),
        email: Set(request.email.as_ref().map(|e| e.as_str().to_string())),
        payment_method_id: Set(request.payment_method_id),
        idempotency_key: Set(request.idempotency_key.clone()),
        request_hash: Set(hash.to_string()),
        payment_requested_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let saved = row.clone().try_into_model()?;
    let lines: Vec<line::ActiveModel> = lines
        .into_iter()
        .map(|mut l| {
            l.order_id = Set(id);
            l
        })
        .collect();
    let event_lines: Vec<(Uuid, i32)> =
        cart.lines.iter().map(|l| (l.product_id, l.quantity)).collect();
    let placed = StatusChange {
        order_id: id,
        customer_id: saved.customer_id,
        status: Status::Pending.as_str().into(),
        previous_status: None,
        reason: None,
        at: now,
    };
    // Nothing is read back: the order, its lines, its first timeline entry and its events go
    // in one unit (one statement on PostgreSQL).
    let unit = outbox::Deferred {
        writes: vec![
            order::Entity::insert(row).into_query().into(),
            line::Entity::insert_many(lines).into_query().into(),
            timeline_rows(id, &[Status::Pending], None).into(),
        ],
        events: vec![placed_event(&saved, &event_lines), placed.envelope()],
        ..outbox::Deferred::default()
    };
    match orders.relay.commit_alone(unit).await {
        Ok(()) => {}
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            // The same key raced in: that order is the answer.
            let existing = by_key(&orders.db, request.cart_id, &request.idempotency_key)
                .await?
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("order number collision")))?;
            return Ok(Stored::Existing(existing));
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(order_id = %id, number = %saved.number, "order placed");
    Ok(Stored::New(saved))
}

fn same_request(
    existing: order::Model,
    hash: &str,
    caller: Option<&Caller>,
) -> AppResult<order::Model> {
    if existing.request_hash != hash {
        return Err(AppError::Conflict(
            "this idempotency key was used for a different order".into(),
        ));
    }
    check_access(&existing, caller)?;
    Ok(existing)
}

/// The customer's order placed under `key`, if any.
pub async fn customer_order_by_key(
    orders: &Orders,
    customer: Uuid,
    key: &str,
) -> AppResult<Option<order::Model>> {
    Ok(order::Entity::find()
        .filter(order::Column::CustomerId.eq(customer))
        .filter(order::Column::IdempotencyKey.eq(key))
        .one(&orders.db)
        .await?)
}

async fn by_key<C: ConnectionTrait>(
    db: &C,
    cart: Uuid,
    key: &str,
) -> AppResult<Option<order::Model>> {
    Ok(order::Entity::find()
        .filter(order::Column::CartId.eq(cart))
        .filter(order::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?)
}

/// Orders are their customer's and administrators' (a guest order is reached by its random
/// id alone).
pub fn check_access(order: &order::Model, caller: Option<&Caller>) -> AppResult<()> {
    kernel::auth::may_see(order.customer_id, caller, "order")
}

/// An order by id for `caller`.
pub async fn find(orders: &Orders, id: Uuid, caller: Option<&Caller>) -> AppResult<order::Model> {
    let row = order::Entity::find_by_id(id)
        .one(&orders.db)
        .await?
        .ok_or_else(|| AppError::NotFound("no such order".into()))?;
    check_access(&row, caller)?;
    Ok(row)
}

/// Records `steps` on `order`'s timeline, in order, in one statement: put off to the commit
/// inside [`outbox::deferring`] (nothing in the same transaction reads the timeline back).
async fn record<C: ConnectionTrait>(
    db: &C,
    order: Uuid,
    steps: &[Status],
    reason: Option<&str>,
) -> AppResult<()> {
    outbox::write_later(db, timeline_rows(order, steps, reason)).await?;
    Ok(())
}

/// The insert of `steps` on `order`'s timeline, stamped now.
fn timeline_rows(order: Uuid, steps: &[Status], reason: Option<&str>) -> InsertStatement {
    timeline::Entity::insert_many(timeline_entries(order, steps, reason, Utc::now())).into_query()
}

/// The timeline entries of `steps` on `order`, stamped `at`.
fn timeline_entries<'a>(
    order: Uuid,
    steps: &'a [Status],
    reason: Option<&'a str>,
    at: DateTime<Utc>,
) -> impl Iterator<Item = timeline::ActiveModel> + 'a {
    steps.iter().map(move |status| timeline::ActiveModel {
        id: Set(kernel::id::new_id()),
        order_id: Set(order),
        status: Set(status.as_str().into()),
        reason: Set(reason.map(str::to_string)),
        at: Set(at),
    })
}

/// The first and last of `steps` when each step may follow the one before; `None` for no
/// steps. A path the rules do not allow is a bug in the caller.
fn path_of(steps: &[Status]) -> AppResult<Option<(Status, Status)>> {
    let (Some(first), Some(last)) = (steps.first(), steps.last()) else { return Ok(None) };
    if !steps.windows(2).all(|pair| pair[0].can_become(pair[1])) {
        return Err(AppError::internal(anyhow::anyhow!("no such path of statuses: {steps:?}")));
    }
    Ok(Some((*first, *last)))
}

/// The update that moves order `id` to `last` at `now` (with the cancellation `reason`
/// when `last` is CANCELLED); the caller adds the status it moves from.
fn move_to(
    id: Uuid,
    last: Status,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<order::Entity> {
    let update = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(last.as_str()))
        .col_expr(order::Column::UpdatedAt, Expr::value(now))
        .filter(order::Column::Id.eq(id));
    if last == Status::Cancelled {
        return update.col_expr(order::Column::CancelReason, Expr::value(reason));
    }
    update
}

/// Moves an order through `steps` inside `txn` when the rules allow the first from where it
/// stands (a conditional update, so concurrent changes cannot both win) and each later step
/// follows from the one before; every step goes on the timeline. The order after the last
/// step, or `None` when it could not move.
pub async fn advance(
    txn: &impl ConnectionTrait,
    id: Uuid,
    steps: &[Status],
    reason: Option<&str>,
) -> AppResult<Option<order::Model>> {
    let Some((first, last)) = path_of(steps)? else { return Ok(None) };
    // One conditional update that returns the moved order: the rules and the race with a
    // concurrent change are settled by the same statement.
    let update = move_to(id, last, reason, Utc::now())
        .filter(order::Column::Status.is_in(Status::sources_of(first).map(Status::as_str)));
    // The status left: known from the rules when only one status leads to the first step;
    // otherwise read from the order, locked until this transaction ends so that it is still
    // the status the update moves from. (Not from the timeline: its rows may be put off to
    // the commit, see `record`.)
    let mut sources = Status::sources_of(first);
    let left = match (sources.next(), sources.next()) {
        (Some(only), None) => only.as_str().to_string(),
        _ => order::Entity::find_by_id(id)
            .lock_exclusive()
            .one(txn)
            .await?
            .map(|o| o.status)
            .unwrap_or_default(),
    };
    let Some(moved) = update.exec_with_returning(txn).await?.into_iter().next() else {
        return Ok(None);
    };
    record(txn, id, steps, reason).await?;
    outbox::append_all(txn, &status_changes(&moved, Some(left), steps, reason)).await?;
    Ok(Some(moved))
}

/// Order `id` with its lines, in one statement.
pub async fn with_lines(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<(order::Model, Vec<line::Model>)>> {
    let mut select = beside_lines(order::Entity);
    select.and_where(order::Column::Id.eq(id));
    order_and_lines(&db.query_all(&select).await?)
}

/// The columns of the orders in `source`, each beside one of its lines (named with
/// [`LINE_PREFIX`]; none for an order without lines), lines in order.
fn beside_lines(source: impl sea_orm::sea_query::IntoIden) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Alias, Asterisk, ExprTrait, Query};
    use sea_orm::{IdenStatic, Iterable, JoinType, Order};
    let source = source.into_iden();
    let mut select = Query::select();
    select.column((source.clone(), Asterisk));
    for column in line::Column::iter() {
        select.expr_as(
            Expr::col((line::Entity, column)),
            Alias::new(format!("{LINE_PREFIX}{}", column.as_str())),
        );
    }
    select
        .from(source.clone())
        .join(
            JoinType::LeftJoin,
            line::Entity,
            Expr::col((line::Entity, line::Column::OrderId)).equals((source, order::Column::Id)),
        )
        .order_by((line::Entity, line::Column::Position), Order::Asc);
    select
}

/// The order and its lines from the rows of [`beside_lines`] (about one order).
fn order_and_lines(
    rows: &[sea_orm::QueryResult],
) -> AppResult<Option<(order::Model, Vec<line::Model>)>> {
    use sea_orm::{FromQueryResult, IdenStatic};
    let Some(first) = rows.first() else { return Ok(None) };
    let order = order::Model::from_query_result(first, "")?;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        // An order without lines (never stored so) comes back as one row with no line.
        let joined: Option<Uuid> = row.try_get(LINE_PREFIX, line::Column::OrderId.as_str())?;
        if joined.is_some() {
            lines.push(line::Model::from_query_result(row, LINE_PREFIX)?);
        }
    }
    Ok(Some((order, lines)))
}

/// How [`beside_lines`] names the line columns beside the order's.
const LINE_PREFIX: &str = "line_";

/// The change [`advance`] makes, for `order` as it was read, put off to the commit as a
/// guard ([`outbox::write_guarded`]): the update moves it through `steps` only if it still
/// stands where it was read, and its timeline entries and status events are written only
/// if it does. `None` when the rules do not let it take the first step from there. Beside
/// the guard, the order as the change leaves it (what it read, moved), for the events that
/// follow from the change; sound because nothing but the status and its times changes on
/// an order once placed.
pub fn advance_later(
    order: &order::Model,
    steps: &[Status],
    reason: Option<&str>,
) -> AppResult<Option<(outbox::Guard, order::Model)>> {
    let Some((first, last)) = path_of(steps)? else { return Ok(None) };
    let left = Status::parse(&order.status)?;
    if !left.can_become(first) {
        return Ok(None);
    }
    let now = Utc::now();
    let update =
        move_to(order.id, last, reason, now).filter(order::Column::Status.eq(left.as_str()));
    let mut moved = order.clone();
    moved.status = last.as_str().to_string();
    moved.updated_at = now;
    if last == Status::Cancelled {
        moved.cancel_reason = reason.map(str::to_string);
    }
    let entries = timeline_entries(order.id, steps, reason, now);
    let changes = status_changes(&moved, Some(left.as_str().to_string()), steps, reason);
    Ok(Some((outbox::Guard::new(update).insert(entries).append(changes), moved)))
}

/// The status events of `moved` having gone from `left` through `steps`.
fn status_changes(
    moved: &order::Model,
    left: Option<String>,
    steps: &[Status],
    reason: Option<&str>,
) -> Vec<EventEnvelope> {
    let mut previous = left;
    let last = steps.last();
    steps
        .iter()
        .map(|step| {
            let change = StatusChange {
                order_id: moved.id,
                customer_id: moved.customer_id,
                status: step.as_str().into(),
                previous_status: previous.replace(step.as_str().into()),
                reason: reason.filter(|_| Some(step) == last).map(str::to_string),
                at: moved.updated_at,
            };
            change.envelope()
        })
        .collect()
}

/// Cancels an order (and records `order.cancelled`, so stock is released and payment given
/// back), when it has not shipped.
pub async fn cancel_in(
    txn: &impl ConnectionTrait,
    id: Uuid,
    reason: &str,
    cause: Option<&EventEnvelope>,
) -> AppResult<Option<order::Model>> {
    let Some(cancelled) = advance(txn, id, &[Status::Cancelled], Some(reason)).await? else {
        return Ok(None);
    };
    let event = EventEnvelope::new(
        "order.cancelled",
        1,
        id,
        serde_json::json!({ "orderId": id, "reason": reason }),
    );
    outbox::append(txn, &event.caused_by_any(cause)).await?;
    tracing::info!(order_id = %id, reason, "order cancelled");
    Ok(Some(cancelled))
}

/// The customer's cancellation.
pub async fn cancel(orders: &Orders, id: Uuid, caller: &Caller) -> AppResult<order::Model> {
    let row = find(orders, id, Some(caller)).await?;
    let txn = orders.db.begin().await?;
    let (cancelled, events) =
        outbox::deferring(cancel_in(&txn, row.id, "CUSTOMER_CANCELLED", None)).await;
    let cancelled = cancelled?;
    orders.relay.commit(txn, events).await?;
    cancelled.ok_or_else(|| {
        AppError::Conflict(format!("a {} order cannot be cancelled", row.status.to_lowercase()))
    })
}

/// An order's lines, in order.
pub async fn lines<C: ConnectionTrait>(db: &C, id: Uuid) -> AppResult<Vec<line::Model>> {
    Ok(line::Entity::find()
        .filter(line::Column::OrderId.eq(id))
        .order_by_asc(line::Column::Position)
        .all(db)
        .await?)
}

/// An order's timeline, oldest first.
pub async fn history<C: ConnectionTrait>(db: &C, id: Uuid) -> AppResult<Vec<timeline::Model>> {
    Ok(timeline::Entity::find()
        .filter(timeline::Column::OrderId.eq(id))
        .order_by_asc(timeline::Column::Id)
        .all(db)
        .await?)
}
