//! The sender: delivers pending mails apart from the event flow, retrying failures with
//! exponential backoff until `max_attempts`.
//!
//! A mail is claimed before it is sent: one conditional update pushes its next attempt a
//! claim's length away and counts the attempt, so a second sender (another replica, or the
//! next round) passes it by. If the process dies after the server accepted the mail and
//! before it is marked sent, the claim lapses and it is sent again: SMTP cannot do better
//! than at least once, and the copy carries the same `Message-ID` for mail programs to fold.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entities::notifications::mail;
use futures::StreamExt;
use kernel::AppResult;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::Notifications;
use crate::transport::Outgoing;

/// How long a claimed mail is left alone by other senders.
const CLAIM: Duration = Duration::from_secs(120);
/// Mails sent at once.
const PARALLEL: usize = 8;

/// Status of a mail waiting to be sent.
pub const PENDING: &str = "PENDING";
/// Status of a mail the server accepted.
pub const SENT: &str = "SENT";
/// Status of a mail given up.
pub const FAILED: &str = "FAILED";

fn after(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

/// The wait after `attempts` failed attempts: `base`, doubled each time, at most 30 minutes.
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(20);
    base.saturating_mul(2u32.saturating_pow(doublings)).min(Duration::from_secs(1800))
}

/// Sends every mail due by `now` (at most `limit`). Returns how many were sent.
pub async fn send_due(
    notifications: &Notifications,
    now: DateTime<Utc>,
    limit: u64,
) -> AppResult<u64> {
    let due = mail::Entity::find()
        .filter(mail::Column::Status.eq(PENDING))
        .filter(mail::Column::NextAttemptAt.lte(now))
        .order_by_asc(mail::Column::NextAttemptAt)
        .limit(limit)
        .all(&notifications.db)
        .await?;
    let sent = futures::stream::iter(due)
        .map(|row| async move { attempt(notifications, row, now).await })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<AppResult<bool>>>()
        .await;
    let mut count = 0;
    for result in sent {
        if result? {
            count += 1;
        }
    }
    Ok(count)
}

/// Claims, addresses and sends one mail; records the outcome. Whether it was sent.
async fn attempt(
    notifications: &Notifications,
    row: mail::Model,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let Some(claimed) = mail::Entity::update_many()
        .col_expr(
            mail::Column::Attempts,
            sea_orm::sea_query::ExprTrait::add(Expr::col(mail::Column::Attempts), 1),
        )
        .col_expr(mail::Column::NextAttemptAt, Expr::value(after(now, CLAIM)))
        .filter(mail::Column::Id.eq(row.id))
        .filter(mail::Column::Status.eq(PENDING))
        .filter(mail::Column::NextAttemptAt.lte(now))
        .exec_with_returning(&notifications.db)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(false);
    };
    // A customer's mail goes to the account's address as it is now; a guest's to the one
    // given at checkout, without a name (a guest has no account to take one from).
    let (to, to_name) = match (claimed.customer_id, &claimed.to_address) {
        (Some(customer), _) => match notifications.identity.contact(customer).await {
            Ok(Some(contact)) => (contact.email, contact.name),
            Ok(None) => {
                give_up(notifications, &claimed, "the customer no longer exists").await?;
                return Ok(false);
            }
            Err(error) => {
                failed(notifications, &claimed, &format!("asking identity: {error}")).await?;
                return Ok(false);
            }
        },
        (None, Some(address)) => (address.clone(), String::new()),
        (None, None) => {
            give_up(notifications, &claimed, "neither a customer nor an address").await?;
            return Ok(false);
        }
    };
    let outgoing = Outgoing {
        id: claimed.id,
        from: &notifications.options.from,
        to: &to,
        to_name: &to_name,
        subject: &claimed.subject,
        text: &claimed.text_body,
        html: &claimed.html_body,
    };
    match notifications.transport.send(&outgoing).await {
        Ok(()) => {
            mail::Entity::update_many()
                .col_expr(mail::Column::Status, Expr::value(SENT))
                .col_expr(mail::Column::SentAt, Expr::value(Utc::now()))
                .col_expr(mail::Column::ToAddress, Expr::value(to.clone()))
                .col_expr(mail::Column::LastError, Expr::value(Option::<String>::None))
                .filter(mail::Column::Id.eq(claimed.id))
                .exec(&notifications.db)
                .await?;
            tracing::info!(mail_id = %claimed.id, kind = %claimed.kind, "mail sent");
            Ok(true)
        }
        Err(error) => {
            failed(notifications, &claimed, &error).await?;
            Ok(false)
        }
    }
}

/// Records a failed attempt: tried again after the backoff, or given up after the last one.
async fn failed(
    notifications: &Notifications,
    claimed: &mail::Model,
    error: &str,
) -> AppResult<()> {
    if claimed.attempts >= notifications.options.max_attempts {
        return give_up(notifications, claimed, error).await;
    }
    let wait = backoff(notifications.options.retry_base, claimed.attempts);
    tracing::warn!(mail_id = %claimed.id, attempts = claimed.attempts, error, ?wait, "mail not sent; will retry");
    mail::Entity::update_many()
        .col_expr(mail::Column::NextAttemptAt, Expr::value(after(Utc::now(), wait)))
        .col_expr(mail::Column::LastError, Expr::value(truncate(error)))
        .filter(mail::Column::Id.eq(claimed.id))
        .exec(&notifications.db)
        .await?;
    Ok(())
}

async fn give_up(
    notifications: &Notifications,
    claimed: &mail::Model,
    error: &str,
) -> AppResult<()> {
    tracing::error!(mail_id = %claimed.id, attempts = claimed.attempts, error, "mail given up");
    mail::Entity::update_many()
        .col_expr(mail::Column::Status, Expr::value(FAILED))
        .col_expr(mail::Column::LastError, Expr::value(truncate(error)))
        .filter(mail::Column::Id.eq(claimed.id))
        .exec(&notifications.db)
        .await?;
    Ok(())
}

fn truncate(error: &str) -> String {
    error.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_half_an_hour() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 4), Duration::from_secs(16));
        assert_eq!(backoff(base, 40), Duration::from_secs(1800));
        assert_eq!(backoff(base, 0), Duration::from_secs(2));
    }
}
