//! Payment methods and payments: tokenising a card, and authorising, capturing, voiding and
//! refunding an order's payment. Each step is idempotent and leaves its event in the outbox
//! in the same transaction.

use chrono::Utc;
use entities::payments::{payment, payment_method};
use kernel::events::{EventEnvelope, outbox};
use kernel::money::{Currency, Money};
use kernel::{AppError, AppResult};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryTrait,
    TryIntoModel,
};
use uuid::Uuid;

use crate::Payments;
use crate::card::Card;
use crate::processor::{Answer, Unavailable};

/// A payment's status.
pub mod status {
    /// Money held on the card.
    pub const AUTHORIZED: &str = "AUTHORIZED";
    /// Money taken (the order was confirmed).
    pub const CAPTURED: &str = "CAPTURED";
    /// The hold was dropped before capture (the order was cancelled).
    pub const VOIDED: &str = "VOIDED";
    /// Captured money given back.
    pub const REFUNDED: &str = "REFUNDED";
    /// The card was refused.
    pub const DECLINED: &str = "DECLINED";
}

/// Attempts at an authorisation the processor could not answer, before giving up.
const PROCESSOR_ATTEMPTS: u32 = 4;

/// Stores a card as a payment method of `customer` (or of a guest).
pub async fn add_card(
    payments: &Payments,
    customer: Option<Uuid>,
    card: Card,
) -> AppResult<payment_method::Model> {
    let token = payments.processor.tokenize(&payments.db, &card).await?;
    let row = payment_method::ActiveModel {
        // Random, not time-ordered: a guest's card is reachable by this id alone.
        id: Set(Uuid::new_v4()),
        customer_id: Set(customer),
        processor_token: Set(token),
        brand: Set(card.brand.as_str().to_string()),
        last4: Set(card.last4().to_string()),
        exp_month: Set(card.exp_month as i32),
        exp_year: Set(card.exp_year),
        created_at: Set(Utc::now()),
    };
    let saved = payment_method::Entity::insert(row).exec_with_returning(&payments.db).await?;
    tracing::info!(payment_method_id = %saved.id, brand = %saved.brand, "card tokenised");
    Ok(saved)
}

/// What orders asks for when stock is held: authorise the order's total on its card.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    /// The order.
    pub order_id: Uuid,
    /// The order's customer; `None` for a guest.
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// The card to charge.
    pub payment_method_id: Uuid,
    /// The amount.
    pub amount: MoneyPayload,
    /// The idempotency key of this authorisation.
    pub idempotency_key: String,
}

/// Money as events carry it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct MoneyPayload {
    /// Decimal string.
    pub amount: rust_decimal::Decimal,
    /// ISO 4217 code.
    pub currency: String,
}

impl MoneyPayload {
    fn parse(&self) -> AppResult<Money> {
        Ok(Money::non_negative(self.amount, Currency::parse(&self.currency)?)?)
    }

    fn of(row: &payment::Model) -> serde_json::Value {
        let money = Currency::parse(&row.currency)
            .map(|c| Money::from_minor(row.amount_minor, c))
            .map(|m| m.to_json());
        money.unwrap_or(serde_json::Value::Null)
    }
}

fn caused(event: EventEnvelope, cause: &EventEnvelope) -> EventEnvelope {
    event.caused_by(cause)
}

/// Authorises the order's payment inside `txn`, recording `payment.authorized` or
/// `payment.declined`. A repeated request (same key) changes nothing.
pub async fn authorize(
    payments: &Payments,
    txn: &impl ConnectionTrait,
    request: &PaymentRequest,
    cause: &EventEnvelope,
) -> AppResult<()> {
    let (method, existing) = method_and_payment(txn, request).await?;
    if let Some(existing) = existing {
        if existing.authorization_key != request.idempotency_key {
            tracing::warn!(order_id = %request.order_id, "a second payment request for a paid order was ignored");
            return Ok(());
        }
        // Asked again under the same key (orders resuming a checkout): the same answer again,
        // and no second authorisation.
        let again = match existing.status.as_str() {
            status::DECLINED => EventEnvelope::new(
                "payment.declined",
                1,
                existing.order_id,
                serde_json::json!({ "orderId": existing.order_id, "paymentId": existing.id,
                    "reason": existing.decline_reason.clone().unwrap_or_default() }),
            ),
            _ => EventEnvelope::new(
                "payment.authorized",
                1,
                existing.order_id,
                serde_json::json!({ "orderId": existing.order_id, "paymentId": existing.id,
                    "amount": MoneyPayload::of(&existing) }),
            ),
        };
        outbox::append(txn, &caused(again, cause)).await?;
        return Ok(());
    }
    let money = request.amount.parse()?;
    let usable = method.filter(|m| m.customer_id.is_none() || m.customer_id == request.customer_id);
    let now = Utc::now();
    let (status_now, reason, reference) = match &usable {
        None => (status::DECLINED, Some("INVALID_PAYMENT_METHOD"), None),
        Some(method) => {
            match answer(payments, txn, &method.processor_token, money.minor_units()?, request)
                .await?
            {
                Ok(Answer::Approved(reference)) => (status::AUTHORIZED, None, Some(reference)),
                Ok(Answer::Declined(reason)) => (status::DECLINED, Some(reason), None),
                Err(Unavailable) => (status::DECLINED, Some("PROCESSOR_UNAVAILABLE"), None),
            }
        }
    };
    let row = payment::ActiveModel {
        id: Set(kernel::id::new_id()),
        order_id: Set(request.order_id),
        customer_id: Set(request.customer_id),
        payment_method_id: Set(request.payment_method_id),
        amount_minor: Set(money.minor_units()?),
        currency: Set(money.currency().code().to_string()),
        status: Set(status_now.to_string()),
        decline_reason: Set(reason.map(str::to_string)),
        authorization_key: Set(request.idempotency_key.clone()),
        processor_reference: Set(reference),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let saved = row.clone().try_into_model()?;
    // Put off to the commit (nothing in this transaction reads it back); a second payment of
    // the same order fails there, on the order's unique key, as it would here.
    outbox::write_later(txn, payment::Entity::insert(row).into_query()).await?;
    let event = match reason {
        None => EventEnvelope::new(
            "payment.authorized",
            1,
            saved.order_id,
            serde_json::json!({ "orderId": saved.order_id, "paymentId": saved.id, "amount": MoneyPayload::of(&saved) }),
        ),
        Some(reason) => EventEnvelope::new(
            "payment.declined",
            1,
            saved.order_id,
            serde_json::json!({ "orderId": saved.order_id, "paymentId": saved.id, "reason": reason }),
        ),
    };
    outbox::append(txn, &caused(event, cause)).await?;
    tracing::info!(order_id = %saved.order_id, status = status_now, reason, "payment authorisation answered");
    Ok(())
}

/// The request's payment method and the order's payment so far, in one statement (the
/// method joined to the order's payment): this read is on the way of every checkout. When
/// the method is unknown, the payment is read on its own.
async fn method_and_payment(
    txn: &impl ConnectionTrait,
    request: &PaymentRequest,
) -> AppResult<(Option<payment_method::Model>, Option<payment::Model>)> {
    let mut select =
        payment_method::Entity::find_by_id(request.payment_method_id).select_also(payment::Entity);
    // Joined on the order alone, not on the method: an earlier payment of this order made
    // with another card must be found too.
    QueryTrait::query(&mut select).join(
        JoinType::LeftJoin,
        payment::Entity,
        Expr::col((payment::Entity, payment::Column::OrderId)).eq(request.order_id),
    );
    match select.one(txn).await? {
        Some((method, existing)) => Ok((Some(method), existing)),
        None => Ok((None, of_order(txn, request.order_id).await?)),
    }
}

/// Asks the processor, retrying (with a short backoff) while it cannot answer.
async fn answer<C: ConnectionTrait>(
    payments: &Payments,
    db: &C,
    token: &str,
    amount_minor: i64,
    request: &PaymentRequest,
) -> AppResult<Result<Answer, Unavailable>> {
    let mut wait = std::time::Duration::from_millis(5);
    for attempt in 1..=PROCESSOR_ATTEMPTS {
        match payments
            .processor
            .authorize(db, token, amount_minor, &request.idempotency_key)
            .await?
        {
            Err(Unavailable) if attempt < PROCESSOR_ATTEMPTS => {
                tracing::warn!(order_id = %request.order_id, attempt, "processor unavailable; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return Ok(other),
        }
    }
    Ok(Err(Unavailable))
}

/// Captures the authorised payments of confirmed orders (each with the event that confirmed
/// it), recording `payment.captured` for each: the payments are read in one statement (no
/// lock, no transaction), and each capture is a guarded change ([`outbox::write_guarded`])
/// whose update checks again, as it is applied, that the payment is still authorised (one
/// captured or voided meanwhile is left alone, and no event recorded for it). Inside a
/// consumer's unit of work the captures go with its commit. Returns how many were read to
/// capture.
pub async fn capture_all(
    txn: &impl ConnectionTrait,
    orders: &[(Uuid, &EventEnvelope)],
) -> AppResult<usize> {
    if orders.is_empty() {
        return Ok(0);
    }
    let authorized = payment::Entity::find()
        .filter(payment::Column::OrderId.is_in(orders.iter().map(|(order, _)| *order)))
        .filter(payment::Column::Status.eq(status::AUTHORIZED))
        .all(txn)
        .await?;
    let causes: std::collections::HashMap<Uuid, &EventEnvelope> = orders.iter().copied().collect();
    let now = Utc::now();
    for row in &authorized {
        let capture = payment::Entity::update_many()
            .col_expr(payment::Column::Status, Expr::value(status::CAPTURED))
            .col_expr(payment::Column::UpdatedAt, Expr::value(now))
            .filter(payment::Column::Id.eq(row.id))
            .filter(payment::Column::Status.eq(status::AUTHORIZED));
        let event = EventEnvelope::new(
            "payment.captured",
            1,
            row.order_id,
            serde_json::json!({ "orderId": row.order_id, "paymentId": row.id, "amount": MoneyPayload::of(row) }),
        );
        let event = match causes.get(&row.order_id) {
            Some(cause) => caused(event, cause),
            None => event,
        };
        outbox::write_guarded(txn, outbox::Guard::new(capture).append([event])).await?;
    }
    Ok(authorized.len())
}

/// Gives the money back for a cancelled order: an authorisation is voided, a capture
/// refunded. Records `payment.refunded` either way (nothing when there was nothing to give).
pub async fn refund(
    txn: &impl ConnectionTrait,
    order_id: Uuid,
    cause: &EventEnvelope,
) -> AppResult<bool> {
    let (row, voided) = match move_status(txn, order_id, status::AUTHORIZED, status::VOIDED).await?
    {
        Some(row) => (row, true),
        None => match move_status(txn, order_id, status::CAPTURED, status::REFUNDED).await? {
            Some(row) => (row, false),
            None => return Ok(false),
        },
    };
    let event = EventEnvelope::new(
        "payment.refunded",
        1,
        order_id,
        serde_json::json!({
            "orderId": order_id, "paymentId": row.id, "amount": MoneyPayload::of(&row),
            "voided": voided,
        }),
    );
    outbox::append(txn, &caused(event, cause)).await?;
    tracing::info!(%order_id, voided, "payment given back");
    Ok(true)
}

/// Moves the order's payment from `from` to `to`, conditionally; the row after the move.
async fn move_status(
    txn: &impl ConnectionTrait,
    order_id: Uuid,
    from: &str,
    to: &str,
) -> AppResult<Option<payment::Model>> {
    let moved = payment::Entity::update_many()
        .col_expr(payment::Column::Status, Expr::value(to))
        .col_expr(payment::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payment::Column::OrderId.eq(order_id))
        .filter(payment::Column::Status.eq(from))
        .exec_with_returning(txn)
        .await?;
    Ok(moved.into_iter().next())
}

/// The payment of an order, if any.
pub async fn of_order<C: ConnectionTrait>(
    db: &C,
    order_id: Uuid,
) -> AppResult<Option<payment::Model>> {
    Ok(payment::Entity::find().filter(payment::Column::OrderId.eq(order_id)).one(db).await?)
}

/// A customer's cards.
pub async fn cards_of<C: ConnectionTrait>(
    db: &C,
    customer: Uuid,
) -> AppResult<Vec<payment_method::Model>> {
    Ok(payment_method::Entity::find()
        .filter(payment_method::Column::CustomerId.eq(customer))
        .all(db)
        .await?)
}

/// Refuses anything but a well-formed id.
pub fn parse_id(id: &str, what: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id.trim())
        .map_err(|_| AppError::bad_input(format!("`{what}` is not a valid id")))
}
