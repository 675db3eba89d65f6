//! Identity, as notifications asks it: a customer's contact details, read when a mail is
//! sent (events carry no addresses).

use kernel::http_client::{CallError, ClientOptions, Endpoint, ServiceClient};
use uuid::Uuid;

/// A customer's contact details.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Contact {
    /// Their e-mail address.
    pub email: String,
    /// Their name.
    pub name: String,
}

/// Identity's internal routes.
pub struct IdentityClient(ServiceClient);

impl IdentityClient {
    /// A client of identity at `endpoint`.
    pub fn new(endpoint: impl Into<Endpoint>) -> Self {
        Self(ServiceClient::new("identity", endpoint, ClientOptions::default()))
    }

    /// The customer's contact details; `None` when identity does not know them.
    pub async fn contact(&self, customer: Uuid) -> Result<Option<Contact>, CallError> {
        self.0.find_json(&format!("/internal/customers/{customer}")).await
    }
}
