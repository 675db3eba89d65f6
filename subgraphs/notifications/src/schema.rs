//! The notifications' GraphQL schema: `Customer.notifications` through federation (so
//! `me { notifications }`), for the customer and administrators.

use std::sync::Arc;

use async_graphql::{Context, EmptyMutation, EmptySubscription, Enum, ID, Object, Result, Schema};
use entities::notifications::mail;
use kernel::AppError;
use kernel::auth::authentication;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::Notifications;

/// The notifications subgraph's schema.
pub type NotificationsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the schema over notifications.
pub fn build_schema(notifications: Arc<Notifications>) -> NotificationsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .data(notifications)
        .limit_depth(16)
        .finish()
}

fn state<'a>(ctx: &Context<'a>) -> &'a Arc<Notifications> {
    ctx.data_unchecked::<Arc<Notifications>>()
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum NotificationKind {
    /// The order is confirmed: number, lines, totals, address.
    OrderConfirmation,
    /// The order has shipped: carrier and tracking number.
    Shipping,
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum DeliveryStatus {
    /// Waiting to be sent (or to be tried again).
    Pending,
    /// Accepted by the mail server.
    Sent,
    /// Given up.
    Failed,
}

/// An e-mail written to the customer.
pub struct Notification(mail::Model);

#[Object]
impl Notification {
    /// Notification id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// What it is about.
    async fn kind(&self) -> Option<NotificationKind> {
        match self.0.kind.as_str() {
            crate::events::ORDER_CONFIRMATION => Some(NotificationKind::OrderConfirmation),
            crate::events::SHIPPING => Some(NotificationKind::Shipping),
            _ => None,
        }
    }
    /// The order it is about.
    async fn order_id(&self) -> ID {
        ID(self.0.order_id.to_string())
    }
    /// Subject line.
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The plain-text body.
    async fn body(&self) -> &str {
        &self.0.text_body
    }
    /// The address it was sent to (once sent).
    async fn to(&self) -> Option<&str> {
        self.0.to_address.as_deref()
    }
    /// Where it stands.
    async fn status(&self) -> DeliveryStatus {
        match self.0.status.as_str() {
            crate::sender::SENT => DeliveryStatus::Sent,
            crate::sender::FAILED => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        }
    }
    /// Sending attempts so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// When the mail server accepted it.
    async fn sent_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.sent_at
    }
    /// When it was written.
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
}

/// A customer, as far as their mail goes.
pub struct Customer {
    id: Uuid,
}

#[Object]
impl Customer {
    /// The customer id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// E-mails written to the customer, newest first (the customer and administrators only;
    /// `first` at most 100, default 20).
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<Notification>> {
        let caller = authentication(ctx).require()?;
        if !caller.speaks_for(self.id) {
            return Err(AppError::Forbidden("these notifications are not yours".into()).into());
        }
        if !(1..=100).contains(&first) {
            return Err(AppError::bad_input("`first` must be between 1 and 100").into());
        }
        let rows = mail::Entity::find()
            .filter(mail::Column::CustomerId.eq(self.id))
            .order_by_desc(mail::Column::Id)
            .limit(first as u64)
            .all(&state(ctx).db)
            .await
            .map_err(AppError::from)?;
        Ok(rows.into_iter().map(Notification).collect())
    }
}

/// Notifications queries.
pub struct Query;

#[Object]
impl Query {
    /// Resolves `Customer` references: their notifications.
    #[graphql(entity)]
    async fn find_customer_by_id(&self, id: ID) -> Option<Customer> {
        Uuid::parse_str(id.trim()).ok().map(|id| Customer { id })
    }
}
