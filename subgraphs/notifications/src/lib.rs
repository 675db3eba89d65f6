//! The notifications subgraph: the e-mails a customer gets about an order.
//!
//! Events write mails ([`events`]): `order.confirmed` an order confirmation (number, lines,
//! totals, shipping address), `shipment.shipped` a shipping notice with the tracking number.
//! Each is rendered from its template ([`templates`], plain text and HTML) into the `mails`
//! table at once, in the consumer's transaction; at most one of each kind per order.
//!
//! The sender ([`sender`]) delivers them apart from the event flow, so a mail server that is
//! down delays mail but never holds up or loses an event: it claims due mails (a conditional
//! update, so two replicas never send the same one together), asks identity for the
//! customer's address, sends over SMTP (or writes a `.eml` file in the embedded default,
//! [`transport`]), and retries a failure with exponential backoff. `me { notifications }`
//! lists what was written and where it stands.

pub mod events;
pub mod schema;
pub mod sender;
pub mod templates;
pub mod transport;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use kernel::events::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;

pub use schema::{NotificationsSchema, build_schema};

/// How the sender behaves.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// The `From` of every mail.
    pub from: String,
    /// Attempts before a mail is given up (`FAILED`).
    pub max_attempts: i32,
    /// Wait after the first failed attempt; doubled after each further one (up to 30 min).
    pub retry_base: Duration,
}

/// Everything the notifications' resolvers, handlers and sender need.
pub struct Notifications {
    /// The notifications' own database.
    pub db: DatabaseConnection,
    /// Publishes committed outbox rows (the consumer's machinery expects one).
    pub relay: OutboxRelay,
    /// Where mail goes.
    pub transport: transport::Transport,
    /// Customers' addresses.
    pub identity: upstream::IdentityClient,
    /// Sending rules.
    pub options: SenderOptions,
}

impl Notifications {
    /// Notifications over `db`, sending through `transport` to addresses identity (at
    /// `identity`) gives.
    pub fn new(
        db: DatabaseConnection,
        relay: OutboxRelay,
        transport: transport::Transport,
        identity: impl Into<kernel::http_client::Endpoint>,
        options: SenderOptions,
    ) -> Arc<Self> {
        let identity = upstream::IdentityClient::new(identity);
        Arc::new(Self { db, relay, transport, identity, options })
    }
}
