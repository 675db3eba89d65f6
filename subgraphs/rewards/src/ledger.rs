//! The points ledger and the accounts it explains. Every change of points is an entry and a
//! change of the account in the same transaction; the account row is locked first, so two
//! changes to one customer's points never interleave.

use chrono::{DateTime, Utc};
use entities::rewards::{account, entry};
use kernel::money::{Currency, Money};
use kernel::{AppError, AppResult};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use crate::Rewards;

/// Points earned on a confirmed order, waiting for delivery.
pub const EARNED_PENDING: &str = "EARNED_PENDING";
/// Points of a delivered order, now spendable.
pub const EARNED: &str = "EARNED";
/// Pending points lost with a cancelled order.
pub const REVERSED: &str = "REVERSED";
/// Points spent at checkout.
pub const REDEEMED: &str = "REDEEMED";
/// Spent points given back (their order was cancelled, or never placed).
pub const RESTORED: &str = "RESTORED";
/// Spendable points that lapsed.
pub const EXPIRED: &str = "EXPIRED";

/// A redemption waiting for its order.
const HELD: &str = "HELD";
/// A redemption whose order was placed.
const APPLIED: &str = "APPLIED";

fn later(now: DateTime<Utc>, by: std::time::Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
}

fn row(customer: Uuid, order: Option<Uuid>, kind: &str, points: i64) -> entry::Model {
    entry::Model {
        id: kernel::id::new_id(),
        customer_id: customer,
        order_id: order,
        kind: kind.into(),
        points,
        remaining: 0,
        expires_at: None,
        status: None,
        created_at: Utc::now(),
    }
}

/// Inserts `entry` unless its order has one of its kind: whether it was inserted.
async fn insert_once<C: ConnectionTrait>(db: &C, entry: entry::Model) -> AppResult<bool> {
    let inserted = entry::Entity::insert(entry::ActiveModel::from(entry))
        .on_conflict(
            OnConflict::columns([entry::Column::OrderId, entry::Column::Kind])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(inserted > 0)
}

/// Makes sure the customer has an account and locks it for this transaction.
async fn lock_account(txn: &impl ConnectionTrait, customer: Uuid) -> AppResult<()> {
    let fresh = account::ActiveModel {
        customer_id: Set(customer),
        balance: Set(0),
        pending: Set(0),
        updated_at: Set(Utc::now()),
    };
    account::Entity::insert(fresh)
        .on_conflict(OnConflict::column(account::Column::CustomerId).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?;
    account::Entity::update_many()
        .col_expr(account::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(account::Column::CustomerId.eq(customer))
        .exec(txn)
        .await?;
    Ok(())
}

/// Adds to the account's balance and pending points (negative to take away).
async fn move_points(
    txn: &impl ConnectionTrait,
    customer: Uuid,
    balance: i64,
    pending: i64,
) -> AppResult<()> {
    account::Entity::update_many()
        .col_expr(account::Column::Balance, Expr::col(account::Column::Balance).add(balance))
        .col_expr(account::Column::Pending, Expr::col(account::Column::Pending).add(pending))
        .filter(account::Column::CustomerId.eq(customer))
        .exec(txn)
        .await?;
    Ok(())
}

/// Spendable points granted now, lasting the policy's expiry.
async fn grant(
    rewards: &Rewards,
    txn: &impl ConnectionTrait,
    customer: Uuid,
    order: Uuid,
    kind: &str,
    points: i64,
) -> AppResult<bool> {
    let now = Utc::now();
    let entry = entry::Model {
        remaining: points,
        expires_at: Some(later(now, rewards.policy.expiry)),
        ..row(customer, Some(order), kind, points)
    };
    if !insert_once(txn, entry).await? {
        return Ok(false);
    }
    move_points(txn, customer, points, 0).await?;
    Ok(true)
}

/// A confirmed order earns points, pending until delivery. Nothing for a zero total or an
/// order already credited.
pub async fn earn(
    rewards: &Rewards,
    txn: &impl ConnectionTrait,
    customer: Uuid,
    order: Uuid,
    paid: &Money,
) -> AppResult<()> {
    let points = rewards.policy.points_for(paid);
    if points == 0 {
        return Ok(());
    }
    lock_account(txn, customer).await?;
    if insert_once(txn, row(customer, Some(order), EARNED_PENDING, points)).await? {
        move_points(txn, customer, 0, points).await?;
    }
    Ok(())
}

async fn pending_of(txn: &impl ConnectionTrait, order: Uuid) -> AppResult<Option<entry::Model>> {
    Ok(entry::Entity::find()
        .filter(entry::Column::OrderId.eq(order))
        .filter(entry::Column::Kind.eq(EARNED_PENDING))
        .one(txn)
        .await?)
}

/// A delivered order's points become spendable.
pub async fn delivered(
    rewards: &Rewards,
    txn: &impl ConnectionTrait,
    order: Uuid,
) -> AppResult<()> {
    let Some(earned) = pending_of(txn, order).await? else { return Ok(()) };
    lock_account(txn, earned.customer_id).await?;
    let reversed = entry::Entity::find()
        .filter(entry::Column::OrderId.eq(order))
        .filter(entry::Column::Kind.eq(REVERSED))
        .one(txn)
        .await?;
    if reversed.is_some() {
        return Ok(());
    }
    if grant(rewards, txn, earned.customer_id, order, EARNED, earned.points).await? {
        move_points(txn, earned.customer_id, 0, -earned.points).await?;
    }
    Ok(())
}

/// A cancelled order loses its pending points and gives back the points it redeemed.
pub async fn cancelled(
    rewards: &Rewards,
    txn: &impl ConnectionTrait,
    order: Uuid,
) -> AppResult<()> {
    if let Some(earned) = pending_of(txn, order).await? {
        lock_account(txn, earned.customer_id).await?;
        let delivered = entry::Entity::find()
            .filter(entry::Column::OrderId.eq(order))
            .filter(entry::Column::Kind.eq(EARNED))
            .one(txn)
            .await?;
        let lost = row(earned.customer_id, Some(order), REVERSED, -earned.points);
        if delivered.is_none() && insert_once(txn, lost).await? {
            move_points(txn, earned.customer_id, 0, -earned.points).await?;
        }
    }
    restore(rewards, txn, order).await
}

/// Gives back what `order` redeemed, if it still holds any.
pub async fn restore(rewards: &Rewards, txn: &impl ConnectionTrait, order: Uuid) -> AppResult<()> {
    let Some(redeemed) = entry::Entity::update_many()
        .col_expr(entry::Column::Status, Expr::value(RESTORED))
        .filter(entry::Column::OrderId.eq(order))
        .filter(entry::Column::Kind.eq(REDEEMED))
        .filter(entry::Column::Status.is_in([HELD, APPLIED]))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    lock_account(txn, redeemed.customer_id).await?;
    grant(rewards, txn, redeemed.customer_id, order, RESTORED, -redeemed.points).await?;
    tracing::info!(%order, points = -redeemed.points, "redeemed points given back");
    Ok(())
}

/// The order that redeemed points was placed: the redemption stands.
pub async fn applied(txn: &impl ConnectionTrait, order: Uuid) -> AppResult<()> {
    entry::Entity::update_many()
        .col_expr(entry::Column::Status, Expr::value(APPLIED))
        .filter(entry::Column::OrderId.eq(order))
        .filter(entry::Column::Kind.eq(REDEEMED))
        .filter(entry::Column::Status.eq(HELD))
        .exec(txn)
        .await?;
    Ok(())
}

/// A redemption for an order being placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    /// Points spent.
    pub points: i64,
    /// What they take off the order.
    pub discount: Money,
}

/// Spends `points` of `customer` on `order` (being placed, worth `subtotal`): the oldest
/// points first. The same order asking again gets the same answer. Refused (`BAD_USER_INPUT`)
/// beyond the balance, for a discount that is not exact, or one that would pay the whole
/// order (the card pays at least something).
pub async fn redeem(
    rewards: &Rewards,
    customer: Uuid,
    order: Uuid,
    points: i64,
    subtotal: &Money,
) -> AppResult<Redemption> {
    let discount = rewards.policy.discount(points, subtotal.currency())?;
    if discount.amount() >= subtotal.amount() {
        return Err(AppError::bad_input("points can pay for part of an order, not all of it"));
    }
    let txn = rewards.db.begin().await?;
    lock_account(&txn, customer).await?;
    if let Some(done) = entry::Entity::find()
        .filter(entry::Column::OrderId.eq(order))
        .filter(entry::Column::Kind.eq(REDEEMED))
        .one(&txn)
        .await?
    {
        if done.customer_id != customer || done.points != -points {
            return Err(AppError::Conflict("this order redeemed other points".into()));
        }
        return Ok(Redemption { points, discount });
    }
    let now = Utc::now();
    expire_customer(&txn, customer, now).await?;
    let spent = account::Entity::update_many()
        .col_expr(account::Column::Balance, Expr::col(account::Column::Balance).sub(points))
        .filter(account::Column::CustomerId.eq(customer))
        .filter(account::Column::Balance.gte(points))
        .exec(&txn)
        .await?;
    if spent.rows_affected == 0 {
        let balance =
            account::Entity::find_by_id(customer).one(&txn).await?.map_or(0, |a| a.balance);
        return Err(AppError::bad_input(format!(
            "you have {balance} points to redeem, not {points}"
        )));
    }
    take_oldest(&txn, customer, points, now).await?;
    let redeemed =
        entry::Model { status: Some(HELD.into()), ..row(customer, Some(order), REDEEMED, -points) };
    entry::Entity::insert(entry::ActiveModel::from(redeemed)).exec_without_returning(&txn).await?;
    txn.commit().await?;
    tracing::info!(%order, points, "points redeemed");
    Ok(Redemption { points, discount })
}

/// Takes `points` from the customer's unspent grants, the soonest to expire first.
async fn take_oldest(
    txn: &impl ConnectionTrait,
    customer: Uuid,
    points: i64,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let grants = entry::Entity::find()
        .filter(entry::Column::CustomerId.eq(customer))
        .filter(entry::Column::Remaining.gt(0))
        .filter(entry::Column::ExpiresAt.gt(now))
        .order_by_asc(entry::Column::ExpiresAt)
        .all(txn)
        .await?;
    let mut left = points;
    for grant in grants {
        if left == 0 {
            break;
        }
        let take = Ord::min(left, grant.remaining);
        entry::Entity::update_many()
            .col_expr(entry::Column::Remaining, Expr::value(grant.remaining - take))
            .filter(entry::Column::Id.eq(grant.id))
            .exec(txn)
            .await?;
        left -= take;
    }
    if left > 0 {
        // The balance said the points were there: the ledger and the account disagree.
        return Err(AppError::internal(anyhow::anyhow!(
            "customer {customer}: balance covers {points} points, unspent grants {}",
            points - left
        )));
    }
    Ok(())
}

/// Expires the customer's grants due by `now` (the account is locked by the caller).
async fn expire_customer(
    txn: &impl ConnectionTrait,
    customer: Uuid,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let due = entry::Entity::find()
        .filter(entry::Column::CustomerId.eq(customer))
        .filter(entry::Column::Remaining.gt(0))
        .filter(entry::Column::ExpiresAt.lte(now))
        .all(txn)
        .await?;
    let mut lapsed = 0;
    for grant in &due {
        entry::Entity::update_many()
            .col_expr(entry::Column::Remaining, Expr::value(0i64))
            .filter(entry::Column::Id.eq(grant.id))
            .exec(txn)
            .await?;
        let expired = row(customer, None, EXPIRED, -grant.remaining);
        entry::Entity::insert(entry::ActiveModel::from(expired))
            .exec_without_returning(txn)
            .await?;
        move_points(txn, customer, -grant.remaining, 0).await?;
        lapsed += 1;
    }
    Ok(lapsed)
}

/// The expiry sweep: every customer with points due to expire by `now` loses them.
pub async fn expire_due(rewards: &Rewards, now: DateTime<Utc>) -> AppResult<u64> {
    let customers: Vec<Uuid> = entry::Entity::find()
        .select_only()
        .column(entry::Column::CustomerId)
        .filter(entry::Column::Remaining.gt(0))
        .filter(entry::Column::ExpiresAt.lte(now))
        .distinct()
        .limit(500)
        .into_tuple()
        .all(&rewards.db)
        .await?;
    let mut lapsed = 0;
    for customer in customers {
        let txn = rewards.db.begin().await?;
        lock_account(&txn, customer).await?;
        lapsed += expire_customer(&txn, customer, now).await?;
        txn.commit().await?;
    }
    Ok(lapsed)
}

/// Gives back redemptions still held after the policy's hold: their order was never placed.
pub async fn release_unclaimed(rewards: &Rewards, now: DateTime<Utc>) -> AppResult<u64> {
    let cutoff = now - chrono::Duration::from_std(rewards.policy.hold).unwrap_or_default();
    let stale: Vec<Option<Uuid>> = entry::Entity::find()
        .select_only()
        .column(entry::Column::OrderId)
        .filter(entry::Column::Kind.eq(REDEEMED))
        .filter(entry::Column::Status.eq(HELD))
        .filter(entry::Column::CreatedAt.lt(cutoff))
        .limit(500)
        .into_tuple()
        .all(&rewards.db)
        .await?;
    let mut released = 0;
    for order in stale.into_iter().flatten() {
        let txn = rewards.db.begin().await?;
        restore(rewards, &txn, order).await?;
        txn.commit().await?;
        released += 1;
    }
    Ok(released)
}

/// The customer's account (zero when they never had points).
pub async fn account_of<C: ConnectionTrait>(db: &C, customer: Uuid) -> AppResult<account::Model> {
    Ok(account::Entity::find_by_id(customer).one(db).await?.unwrap_or(account::Model {
        customer_id: customer,
        balance: 0,
        pending: 0,
        updated_at: Utc::now(),
    }))
}

/// The customer's ledger, newest first.
pub async fn entries_of<C: ConnectionTrait>(
    db: &C,
    customer: Uuid,
    first: u64,
) -> AppResult<Vec<entry::Model>> {
    Ok(entry::Entity::find()
        .filter(entry::Column::CustomerId.eq(customer))
        .order_by_desc(entry::Column::Id)
        .limit(first)
        .all(db)
        .await?)
}

/// Reads a currency code stored or sent by another context.
pub fn currency(code: &str) -> AppResult<Currency> {
    Ok(Currency::parse(code)?)
}
