//! Who is calling: JWT access tokens, their keys, and the caller they prove.
//!
//! Identity issues tokens ([`TokenIssuer`]); every subgraph verifies them ([`TokenVerifier`])
//! and hands resolvers an [`Authentication`]. The default key is an Ed25519 key pair
//! ([`KeyPair`]) so that verifiers need only the public half, which identity publishes as JWKS.
//! Only the configured algorithm is accepted: a token with `alg: none`, another algorithm,
//! another key, another issuer or audience, or a past expiry is rejected.

mod keys;
mod tokens;

pub use keys::{KeyPair, default_key_path};
pub use tokens::{TokenIssuer, TokenVerifier};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AppError, AppResult};

/// A role a customer account holds.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// A shopper.
    Customer,
    /// A store operator: may change the catalog.
    Admin,
}

impl Role {
    /// The stored name of the role.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Customer => "CUSTOMER",
            Role::Admin => "ADMIN",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "CUSTOMER" => Some(Role::Customer),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The customer id.
    pub sub: String,
    /// The customer's roles when the token was issued.
    pub roles: Vec<Role>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// A caller whose token was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The signed-in customer.
    pub customer_id: Uuid,
    /// Their roles.
    pub roles: Vec<Role>,
}

impl Caller {
    /// True for store operators.
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// Whether the caller may see and act on what is `customer`'s: they are that customer,
    /// or an administrator.
    pub fn speaks_for(&self, customer: Uuid) -> bool {
        self.customer_id == customer || self.is_admin()
    }
}

/// Whether `caller` may see a `what` (an order, its payment, its parcel) that belongs to
/// `owner`; `None` is a guest's, reached by its unguessable id alone. Not signed in is
/// `UNAUTHENTICATED`, someone else `FORBIDDEN`.
pub fn may_see(owner: Option<Uuid>, caller: Option<&Caller>, what: &str) -> AppResult<()> {
    match (owner, caller) {
        (None, _) => Ok(()),
        (Some(owner), Some(caller)) if caller.speaks_for(owner) => Ok(()),
        (Some(_), None) => Err(AppError::Unauthenticated(format!("sign in to see this {what}"))),
        (Some(_), Some(_)) => Err(AppError::Forbidden(format!("this {what} is not yours"))),
    }
}

/// What a request proved about its caller. Resolvers ask it for what they need.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No `Authorization` header.
    Anonymous,
    /// A valid token.
    Caller(Caller),
    /// A token was sent but is not valid; the reason is safe to show to the client.
    Rejected(String),
}

impl Authentication {
    /// The caller if signed in, `None` when anonymous, an error when the token was bad.
    pub fn caller(&self) -> AppResult<Option<&Caller>> {
        match self {
            Authentication::Anonymous => Ok(None),
            Authentication::Caller(c) => Ok(Some(c)),
            Authentication::Rejected(reason) => Err(AppError::Unauthenticated(reason.clone())),
        }
    }

    /// The caller, or `UNAUTHENTICATED`.
    pub fn require(&self) -> AppResult<&Caller> {
        self.caller()?.ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))
    }

    /// An administrator caller, or `UNAUTHENTICATED`/`FORBIDDEN`.
    pub fn require_admin(&self) -> AppResult<&Caller> {
        let caller = self.require()?;
        if caller.is_admin() {
            Ok(caller)
        } else {
            Err(AppError::Forbidden("only an administrator may do this".into()))
        }
    }
}

/// The request's [`Authentication`] as put there by the server (anonymous when absent, e.g. a
/// schema executed directly).
pub fn authentication<'a>(ctx: &async_graphql::Context<'a>) -> &'a Authentication {
    static ANONYMOUS: Authentication = Authentication::Anonymous;
    ctx.data_opt::<Authentication>().unwrap_or(&ANONYMOUS)
}
