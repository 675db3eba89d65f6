//! Mails written from events (consumer group `notifications`):
//!
//! | event | mail |
//! |---|---|
//! | `order.confirmed` | the order confirmation |
//! | `shipment.shipped` | the shipping notice with the tracking number |
//!
//! A customer's mails go to the account's address, looked up when sent; a guest's to the
//! e-mail given at checkout, which the events carry. A guest order without one gets no mail.

use std::sync::Arc;

use chrono::Utc;
use entities::notifications::mail;
use kernel::events::EventEnvelope;
use kernel::events::consumer::{EventHandler, names_a_customer, read_payload as payload};
use kernel::events::inbox::Work;
use kernel::events::unit::Unit;
use sea_orm::ConnectionTrait;
use sea_orm::EntityTrait;
use sea_orm::sea_query::OnConflict;
use serde::Deserialize;
use uuid::Uuid;

use crate::Notifications;
use crate::sender::PENDING;
use crate::templates::{self, Rendered};

/// The consumer group name.
pub const GROUP: &str = "notifications";

/// Kind of the order confirmation mail.
pub const ORDER_CONFIRMATION: &str = "ORDER_CONFIRMATION";
/// Kind of the shipping notice mail.
pub const SHIPPING: &str = "SHIPPING";

/// Handles the events above.
pub struct NotificationEvents(pub Arc<Notifications>);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct About {
    order_id: Uuid,
    customer_id: Option<Uuid>,
    /// A guest's address (events before guests could give one have none).
    #[serde(default)]
    email: Option<String>,
}

/// Writes the mail, unless the order has one of this kind already.
async fn write(
    txn: &impl ConnectionTrait,
    kind: &str,
    about: &About,
    rendered: Rendered,
) -> anyhow::Result<()> {
    let to_address = match (about.customer_id, &about.email) {
        (Some(_), _) => None,
        (None, Some(email)) => Some(email.clone()),
        (None, None) => {
            tracing::info!(order_id = %about.order_id, kind, "a guest order without e-mail: no mail");
            return Ok(());
        }
    };
    let now = Utc::now();
    let row = mail::ActiveModel::from(mail::Model {
        id: kernel::id::new_id(),
        kind: kind.into(),
        order_id: about.order_id,
        customer_id: about.customer_id,
        to_address,
        subject: rendered.subject,
        text_body: rendered.text,
        html_body: rendered.html,
        status: PENDING.into(),
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        sent_at: None,
        created_at: now,
    });
    mail::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([mail::Column::OrderId, mail::Column::Kind])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

impl EventHandler for NotificationEvents {
    fn group(&self) -> &str {
        GROUP
    }

    /// Mails go out after the purchase: no shopper waits on them.
    fn may_linger(&self, _event_type: &str) -> bool {
        true
    }

    fn events(&self) -> &[&'static str] {
        &["order.confirmed", "shipment.shipped"]
    }

    /// Guests' orders without an e-mail are not written to (see above).
    fn concerns(&self, event: &EventEnvelope) -> bool {
        names_a_customer(event) || event.payload.get("email").is_some_and(|e| e.is_string())
    }

    fn handle<'t>(&'t self, txn: &'t Unit, event: &'t EventEnvelope) -> Work<'t> {
        Box::pin(async move {
            let about: About = payload(event)?;
            match event.event_type.as_str() {
                "order.confirmed" => {
                    let order: templates::Confirmation = payload(event)?;
                    let rendered = templates::order_confirmation(&order);
                    write(txn, ORDER_CONFIRMATION, &about, rendered).await?;
                }
                "shipment.shipped" => {
                    let parcel: templates::Shipping = payload(event)?;
                    write(txn, SHIPPING, &about, templates::shipping(&parcel)).await?;
                }
                _ => {}
            }
            Ok(())
        })
    }
}
