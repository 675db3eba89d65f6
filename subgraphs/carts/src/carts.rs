//! Carts and their lines: who may use a cart, what may go in it, merging, expiry, and the
//! priced view a shopper sees.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entities::carts::{cart, line};
use kernel::auth::Caller;
use kernel::events::outbox;
use kernel::money::Money;
use kernel::{AppError, AppResult};
use sea_orm::sea_query::{Alias, Expr, Func, OnConflict, Query, SimpleExpr, SubQueryStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait,
};
use uuid::Uuid;

use crate::{Carts, MAX_LINES, MAX_QUANTITY};

/// Why a line cannot be bought as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum LineProblem {
    /// The catalog no longer sells the product.
    NoLongerSold,
    /// The catalog does not know the product.
    UnknownProduct,
    /// No unit can be had.
    OutOfStock,
    /// Fewer units can be had than the line asks for.
    NotEnoughStock,
    /// The catalog or the inventory could not be asked just now.
    Unavailable,
}

/// A line as the shopper sees it.
#[derive(Debug, Clone)]
pub struct LineView {
    /// The product.
    pub product_id: Uuid,
    /// Units asked for.
    pub quantity: i32,
    /// The product's name, when the catalog answered.
    pub name: Option<String>,
    /// Its current price.
    pub unit_price: Option<Money>,
    /// Price times quantity.
    pub line_total: Option<Money>,
    /// What stands in the way of buying it, if anything.
    pub problem: Option<LineProblem>,
}

/// A cart as the shopper sees it: lines priced now, and the subtotal of what can be bought.
#[derive(Debug, Clone)]
pub struct CartView {
    /// Lines, oldest first.
    pub lines: Vec<LineView>,
    /// Sum of the lines that have a price and no problem; `None` when prices are unavailable.
    pub subtotal: Option<Money>,
}

/// True when a cart has been idle past the expiry.
fn expired(carts: &Carts, cart: &cart::Model, now: DateTime<Utc>) -> bool {
    chrono::Duration::from_std(carts.idle_expiry).is_ok_and(|idle| cart.updated_at + idle < now)
}

/// The cart `id` for `caller`: unknown and expired carts are `NOT_FOUND`, another customer's
/// `FORBIDDEN`. A guest cart may be used by anyone holding its id.
pub async fn find(carts: &Carts, id: Uuid, caller: Option<&Caller>) -> AppResult<cart::Model> {
    let row = cart::Entity::find_by_id(id).one(&carts.db).await?;
    let row = match row {
        Some(row) if !expired(carts, &row, Utc::now()) => row,
        _ => return Err(AppError::NotFound("no such cart".into())),
    };
    may_use(row, caller)
}

/// `row` when `caller` may use it (a guest cart, one's own, or any for an administrator),
/// else `FORBIDDEN`.
fn may_use(row: cart::Model, caller: Option<&Caller>) -> AppResult<cart::Model> {
    match (row.customer_id, caller) {
        (None, _) => Ok(row),
        (Some(owner), Some(caller)) if owner == caller.customer_id || caller.is_admin() => Ok(row),
        (Some(_), _) => Err(AppError::Forbidden("this cart is not yours".into())),
    }
}

/// A new, empty guest cart.
pub async fn create_guest(carts: &Carts) -> AppResult<cart::Model> {
    let now = Utc::now();
    let row = cart::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        line_count: Set(0),
    };
    Ok(cart::Entity::insert(row).exec_with_returning(&carts.db).await?)
}

/// The customer's cart, created empty on first use (an expired one starts over).
pub async fn of_customer(carts: &Carts, customer: Uuid) -> AppResult<cart::Model> {
    let existing =
        cart::Entity::find().filter(cart::Column::CustomerId.eq(customer)).one(&carts.db).await?;
    if let Some(row) = existing {
        if !expired(carts, &row, Utc::now()) {
            return Ok(row);
        }
        delete(&carts.db, row.id).await?;
    }
    let now = Utc::now();
    let row = cart::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(Some(customer)),
        created_at: Set(now),
        updated_at: Set(now),
        line_count: Set(0),
    };
    // Two first requests at once: one inserts, the other finds it.
    cart::Entity::insert(row)
        .on_conflict(OnConflict::column(cart::Column::CustomerId).do_nothing().to_owned())
        .exec_without_returning(&carts.db)
        .await?;
    cart::Entity::find()
        .filter(cart::Column::CustomerId.eq(customer))
        .one(&carts.db)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("customer cart vanished")))
}

/// Deletes the carts `ids` (bought ones), with their lines, in one statement put off to the
/// commit of `db`'s transaction inside [`outbox::deferring`] (nothing after it in a consumer's
/// transaction reads carts).
pub async fn delete_all_later<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let delete = cart::Entity::delete_many().filter(cart::Column::Id.is_in(ids.iter().copied()));
    outbox::write_later(db, delete.into_query()).await?;
    Ok(())
}

/// The id of the customer's cart, when it is live.
pub async fn live_cart_of(carts: &Carts, customer: Uuid) -> AppResult<Option<Uuid>> {
    let row =
        cart::Entity::find().filter(cart::Column::CustomerId.eq(customer)).one(&carts.db).await?;
    Ok(row.filter(|c| !expired(carts, c, Utc::now())).map(|c| c.id))
}

/// A live cart and its lines, for checkout; `None` when unknown or expired.
pub async fn contents(
    carts: &Carts,
    id: Uuid,
) -> AppResult<Option<(cart::Model, Vec<line::Model>)>> {
    // One statement (the cart joined to its lines), not two: this answer is on the way of
    // every `placeOrder`.
    let lines_of_cart: sea_orm::RelationDef = cart::Entity::belongs_to(line::Entity)
        .from(cart::Column::Id)
        .to(line::Column::CartId)
        .into();
    let rows = cart::Entity::find_by_id(id)
        .join(sea_orm::JoinType::LeftJoin, lines_of_cart)
        .select_also(line::Entity)
        .order_by_asc(line::Column::AddedAt)
        .order_by_asc(line::Column::ProductId)
        .all(&carts.db)
        .await?;
    let Some((row, _)) = rows.first() else { return Ok(None) };
    if expired(carts, row, Utc::now()) {
        return Ok(None);
    }
    let row = row.clone();
    let lines = rows.into_iter().filter_map(|(_, line)| line).collect();
    Ok(Some((row, lines)))
}

async fn delete<C: ConnectionTrait>(db: &C, id: Uuid) -> AppResult<()> {
    // The lines go with it: `cart_lines.cart_id` cascades on delete (on SQLite too, where
    // the pool turns foreign keys on). One statement, on the way of every checkout.
    cart::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

fn check_quantity(quantity: i32) -> AppResult<()> {
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(AppError::bad_input(format!("quantity must be between 1 and {MAX_QUANTITY}")));
    }
    Ok(())
}

/// Refuses products the catalog does not know or no longer sells.
async fn check_sellable(carts: &Carts, product: Uuid) -> AppResult<()> {
    let facts = carts.catalog.products(&[product]).await.map_err(AppError::internal)?;
    match facts.get(&product) {
        None => Err(AppError::bad_input("unknown product")),
        Some(f) if !f.active => Err(AppError::bad_input("this product is no longer sold")),
        Some(_) => Ok(()),
    }
}

async fn lines_of<C: ConnectionTrait>(db: &C, cart: Uuid) -> AppResult<Vec<line::Model>> {
    Ok(line::Entity::find()
        .filter(line::Column::CartId.eq(cart))
        .order_by_asc(line::Column::AddedAt)
        .order_by_asc(line::Column::ProductId)
        .all(db)
        .await?)
}

async fn touch<C: ConnectionTrait>(db: &C, cart: Uuid) -> AppResult<()> {
    cart::Entity::update_many()
        .col_expr(cart::Column::UpdatedAt, sea_orm::sea_query::Expr::value(Utc::now()))
        .filter(cart::Column::Id.eq(cart))
        .exec(db)
        .await?;
    Ok(())
}

/// Marks cart `id` as used now, inside `txn`, for `caller`: one statement that is also the
/// access check of [`find`] (unknown and expired carts are `NOT_FOUND`, another customer's
/// `FORBIDDEN`, and then `txn` must not commit). The cart row stays locked until `txn` ends.
async fn touch_for<C: ConnectionTrait>(
    carts: &Carts,
    txn: &C,
    id: Uuid,
    caller: Option<&Caller>,
) -> AppResult<cart::Model> {
    let now = Utc::now();
    let mut update = cart::Entity::update_many()
        .col_expr(cart::Column::UpdatedAt, Expr::value(now))
        .filter(cart::Column::Id.eq(id));
    // The same rule as `expired`, in the statement: an expired cart is not touched back to life.
    if let Ok(idle) = chrono::Duration::from_std(carts.idle_expiry) {
        update = update.filter(cart::Column::UpdatedAt.gte(now - idle));
    }
    let row = update.exec_with_returning(txn).await?.into_iter().next();
    may_use(row.ok_or_else(|| AppError::NotFound("no such cart".into()))?, caller)
}

/// Adds `quantity` units of `product` (to an existing line, summed) to cart `cart`, which
/// `caller` must be allowed to use; the cart as it is after the change.
pub async fn add(
    carts: &Carts,
    cart: Uuid,
    caller: Option<&Caller>,
    product: Uuid,
    quantity: i32,
) -> AppResult<cart::Model> {
    check_quantity(quantity)?;
    check_sellable(carts, product).await?;
    if carts.db.get_database_backend() == DbBackend::Postgres {
        return add_in_one_statement(carts, cart, caller, product, quantity).await;
    }
    let txn = carts.db.begin().await?;
    // Writing first takes SQLite's write lock before anything is read in this transaction;
    // the write is also the access check, so adding costs no separate read of the cart.
    let mut cart = touch_for(carts, &txn, cart, caller).await?;
    // Adds to the line, or starts it: one statement either way, which answers the new
    // quantity (equal to `quantity` only for a new line: lines never hold zero) and how many
    // other lines the cart holds (counted apart from this product's, so that it does not
    // matter whether the count sees the new line).
    let others = Query::select()
        .expr(Func::count(Expr::col(line::Column::ProductId)))
        .from(line::Entity)
        .and_where(line::Column::CartId.eq(cart.id))
        .and_where(line::Column::ProductId.ne(product))
        .to_owned();
    let mut upsert = line::Entity::insert(line::ActiveModel {
        cart_id: Set(cart.id),
        product_id: Set(product),
        quantity: Set(quantity),
        added_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([line::Column::CartId, line::Column::ProductId])
            .value(
                line::Column::Quantity,
                sea_orm::ExprTrait::add(
                    Expr::col((line::Entity, line::Column::Quantity)),
                    Expr::col((Alias::new("excluded"), line::Column::Quantity)),
                ),
            )
            .to_owned(),
    )
    .into_query();
    upsert.returning(Query::returning().exprs([
        Expr::col(line::Column::Quantity),
        SimpleExpr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(others))),
    ]));
    let answered = txn
        .query_one(&upsert)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("the line upsert answered nothing")))?;
    let total: i32 = answered.try_get_by_index(0)?;
    let other_lines: i64 = answered.try_get_by_index(1)?;
    if total > MAX_QUANTITY {
        txn.rollback().await?;
        return Err(too_many_units(total - quantity));
    }
    let new_line = total == quantity;
    if new_line && other_lines as usize >= MAX_LINES {
        txn.rollback().await?;
        return Err(too_many_lines());
    }
    if new_line {
        cart = count_lines(&txn, cart, 1).await?;
    }
    txn.commit().await?;
    Ok(cart)
}

/// Adds `by` (one more line, or one fewer) to `cart`'s count of lines, inside the transaction
/// that added or removed the line; the cart as it is then.
async fn count_lines<C: ConnectionTrait>(
    txn: &C,
    cart: cart::Model,
    by: i32,
) -> AppResult<cart::Model> {
    let counted = cart::Entity::update_many()
        .col_expr(
            cart::Column::LineCount,
            sea_orm::ExprTrait::add(Expr::col(cart::Column::LineCount), by),
        )
        .filter(cart::Column::Id.eq(cart.id))
        .exec_with_returning(txn)
        .await?;
    Ok(counted.into_iter().next().unwrap_or(cart))
}

fn too_many_units(already: i32) -> AppError {
    AppError::bad_input(format!(
        "at most {MAX_QUANTITY} of one product per cart ({already} already in it)"
    ))
}

fn too_many_lines() -> AppError {
    AppError::bad_input(format!("a cart holds at most {MAX_LINES} products"))
}

/// [`add`] on PostgreSQL: one statement, outside any transaction block (it is atomic by
/// itself), on the way of every purchase. It locks the cart row first, as every other change
/// of a cart does (so two of them wait for each other rather than deadlock), and only a cart
/// the caller may use and that has not expired; then adds to the line or starts it, unless
/// that would pass the units limit (checked on the line as it is when the statement gets to
/// it); then touches the cart and counts a new line on it. The count is checked by the table
/// (`carts_line_limit`): a statement that would pass it fails whole and writes nothing, and a
/// concurrent addition to the same cart, having waited for this one, counts from what this one
/// left. When the statement changes nothing, a read tells why.
async fn add_in_one_statement(
    carts: &Carts,
    cart: Uuid,
    caller: Option<&Caller>,
    product: Uuid,
    quantity: i32,
) -> AppResult<cart::Model> {
    const ADD: &str = r#"
        WITH usable AS (
            SELECT id FROM carts
            WHERE id = $1
              AND ($5::timestamptz IS NULL OR updated_at >= $5)
              AND (customer_id IS NULL OR customer_id = $6 OR $7)
            FOR NO KEY UPDATE
        ), line AS (
            INSERT INTO cart_lines (cart_id, product_id, quantity, added_at)
            SELECT id, $2, $3, $4 FROM usable
            ON CONFLICT (cart_id, product_id) DO UPDATE
                SET quantity = cart_lines.quantity + excluded.quantity
                WHERE cart_lines.quantity + excluded.quantity <= $8
            RETURNING quantity
        )
        UPDATE carts
        SET updated_at = $4,
            line_count = line_count + (SELECT COUNT(*) FROM line WHERE quantity = $3)
        WHERE id = $1 AND EXISTS (SELECT 1 FROM line)
        RETURNING *"#;
    let now = Utc::now();
    let cutoff = chrono::Duration::from_std(carts.idle_expiry).ok().map(|idle| now - idle);
    let values: [sea_orm::Value; 8] = [
        cart.into(),
        product.into(),
        quantity.into(),
        now.into(),
        cutoff.into(),
        caller.map(|c| c.customer_id).into(),
        caller.is_some_and(Caller::is_admin).into(),
        MAX_QUANTITY.into(),
    ];
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, ADD, values);
    let added = cart::Entity::find().from_raw_sql(statement).one(&carts.db).await;
    match added {
        Ok(Some(row)) => Ok(row),
        Err(error) if violates(&error, "carts_line_limit") => Err(too_many_lines()),
        Err(error) => Err(error.into()),
        // Nothing changed: the cart is not one the caller may use, or the units limit.
        Ok(None) => {
            find(carts, cart, caller).await?;
            let line = line::Entity::find_by_id((cart, product)).one(&carts.db).await?;
            match line {
                Some(line) if line.quantity + quantity > MAX_QUANTITY => {
                    Err(too_many_units(line.quantity))
                }
                // Changed since (removed, or bought): the shopper may try again.
                _ => Err(AppError::Conflict("the cart changed meanwhile; try again".into())),
            }
        }
    }
}

/// Whether `error` is PostgreSQL refusing a row for the check `constraint`.
fn violates(error: &sea_orm::DbErr, constraint: &str) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let (DbErr::Query(RuntimeErr::SqlxError(cause)) | DbErr::Exec(RuntimeErr::SqlxError(cause))) =
        error
    else {
        return false;
    };
    match &**cause {
        sqlx::Error::Database(database) => {
            database.code().as_deref() == Some("23514") && database.constraint() == Some(constraint)
        }
        _ => false,
    }
}

/// Sets the units of a product already in cart `cart`, which `caller` must be allowed to
/// use; the cart as it is after the change.
pub async fn set_quantity(
    carts: &Carts,
    cart: Uuid,
    caller: Option<&Caller>,
    product: Uuid,
    quantity: i32,
) -> AppResult<cart::Model> {
    check_quantity(quantity)?;
    let txn = carts.db.begin().await?;
    let cart = touch_for(carts, &txn, cart, caller).await?;
    let changed = line::Entity::update_many()
        .col_expr(line::Column::Quantity, sea_orm::sea_query::Expr::value(quantity))
        .filter(line::Column::CartId.eq(cart.id))
        .filter(line::Column::ProductId.eq(product))
        .exec(&txn)
        .await?;
    if changed.rows_affected == 0 {
        return Err(AppError::NotFound("this product is not in the cart".into()));
    }
    txn.commit().await?;
    Ok(cart)
}

/// Removes a product from cart `cart`, which `caller` must be allowed to use; the cart as it
/// is after the change.
pub async fn remove(
    carts: &Carts,
    cart: Uuid,
    caller: Option<&Caller>,
    product: Uuid,
) -> AppResult<cart::Model> {
    let txn = carts.db.begin().await?;
    let cart = touch_for(carts, &txn, cart, caller).await?;
    let removed = line::Entity::delete_by_id((cart.id, product)).exec(&txn).await?;
    if removed.rows_affected == 0 {
        return Err(AppError::NotFound("this product is not in the cart".into()));
    }
    let cart = count_lines(&txn, cart, -1).await?;
    txn.commit().await?;
    Ok(cart)
}

/// Moves a guest cart's lines into the customer's cart (quantities summed, up to the limit
/// per product and the number of products) and deletes the guest cart.
pub async fn merge(carts: &Carts, guest_id: Uuid, customer: &Caller) -> AppResult<cart::Model> {
    let guest = find(carts, guest_id, Some(customer)).await?;
    if guest.customer_id.is_some() {
        return Err(AppError::bad_input("only a guest cart can be merged"));
    }
    let target = of_customer(carts, customer.customer_id).await?;
    let txn = carts.db.begin().await?;
    touch(&txn, target.id).await?;
    let mut mine: HashMap<Uuid, line::Model> =
        lines_of(&txn, target.id).await?.into_iter().map(|l| (l.product_id, l)).collect();
    for theirs in lines_of(&txn, guest.id).await? {
        let room = mine.len() < MAX_LINES;
        match mine.get_mut(&theirs.product_id) {
            Some(line) => {
                line.quantity = (line.quantity + theirs.quantity).min(MAX_QUANTITY);
                line::Entity::update(line::ActiveModel {
                    cart_id: Set(target.id),
                    product_id: Set(line.product_id),
                    quantity: Set(line.quantity),
                    added_at: Set(line.added_at),
                })
                .exec(&txn)
                .await?;
            }
            None if room => {
                let moved = line::Model { cart_id: target.id, ..theirs };
                line::Entity::insert(line::ActiveModel {
                    cart_id: Set(moved.cart_id),
                    product_id: Set(moved.product_id),
                    quantity: Set(moved.quantity),
                    added_at: Set(moved.added_at),
                })
                .exec_without_returning(&txn)
                .await?;
                mine.insert(moved.product_id, moved);
            }
            None => {}
        }
    }
    cart::Entity::update_many()
        .col_expr(cart::Column::LineCount, Expr::value(mine.len() as i32))
        .filter(cart::Column::Id.eq(target.id))
        .exec(&txn)
        .await?;
    delete(&txn, guest.id).await?;
    txn.commit().await?;
    tracing::info!(guest_cart = %guest.id, cart = %target.id, "guest cart merged");
    Ok(target)
}

/// Deletes carts idle since before `now - idle expiry`; returns how many.
pub async fn expire_idle(carts: &Carts, now: DateTime<Utc>) -> AppResult<u64> {
    let idle = chrono::Duration::from_std(carts.idle_expiry).map_err(AppError::internal)?;
    let stale: Vec<Uuid> = cart::Entity::find()
        .filter(cart::Column::UpdatedAt.lt(now - idle))
        .all(&carts.db)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    for id in &stale {
        delete(&carts.db, *id).await?;
    }
    Ok(stale.len() as u64)
}

/// The cart priced now. When the catalog or the inventory cannot be asked, the lines are
/// shown with the `UNAVAILABLE` problem instead of failing the whole cart.
pub async fn view(carts: &Carts, cart: &cart::Model) -> AppResult<CartView> {
    let lines = lines_of(&carts.db, cart.id).await?;
    let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
    let (facts, stock) =
        tokio::join!(carts.catalog.products(&ids), carts.inventory.available(&ids));
    let facts =
        facts.map_err(|e| tracing::warn!(error = %e, "catalog unavailable for a cart")).ok();
    let stock =
        stock.map_err(|e| tracing::warn!(error = %e, "inventory unavailable for a cart")).ok();
    let mut subtotal: Option<Money> = None;
    let mut priced = facts.is_some();
    let mut views = Vec::with_capacity(lines.len());
    for l in lines {
        let fact = facts.as_ref().and_then(|f| f.get(&l.product_id));
        let available = stock.as_ref().map(|s| s.get(&l.product_id).copied().unwrap_or(0));
        let problem = match (facts.as_ref(), fact, available) {
            (None, _, _) | (_, _, None) => Some(LineProblem::Unavailable),
            (Some(_), None, _) => Some(LineProblem::UnknownProduct),
            (_, Some(f), _) if !f.active => Some(LineProblem::NoLongerSold),
            (_, _, Some(0)) => Some(LineProblem::OutOfStock),
            (_, _, Some(n)) if n < i64::from(l.quantity) => Some(LineProblem::NotEnoughStock),
            _ => None,
        };
        let unit_price = fact.map(|f| f.price);
        let line_total = match unit_price {
            Some(p) => Some(p.times(l.quantity as u32)?),
            None => None,
        };
        if problem.is_none()
            && let Some(total) = line_total
        {
            subtotal = Some(match subtotal {
                Some(sum) => sum.checked_add(&total)?,
                None => total,
            });
        }
        if fact.is_none() && facts.is_none() {
            priced = false;
        }
        views.push(LineView {
            product_id: l.product_id,
            quantity: l.quantity,
            name: fact.map(|f| f.name.clone()),
            unit_price,
            line_total,
            problem,
        });
    }
    if priced && subtotal.is_none() {
        // Nothing buyable yet: zero, in the store's currency.
        subtotal = Some(Money::zero(carts.currency));
    }
    Ok(CartView { lines: views, subtotal })
}
