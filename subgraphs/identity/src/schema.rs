//! Identity's GraphQL schema: root types and how they are assembled.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{
    Context, EmptySubscription, ID, InputObject, Object, Result, Schema, SimpleObject,
};
use chrono::{DateTime, Utc};
use kernel::auth::authentication;
use kernel::server::ClientAddress;

use crate::Identity;
use crate::accounts::{self, Session};
use crate::customers::{Customer, CustomerLoader, Viewer};
use kernel::error::loader_error;

/// Identity's schema.
pub type IdentitySchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over identity.
pub fn build_schema(identity: Arc<Identity>) -> IdentitySchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .data(DataLoader::new(CustomerLoader(identity.db.clone()), tokio::spawn))
        .data(identity)
        .limit_depth(16)
        .finish()
}

fn identity<'a>(ctx: &Context<'a>) -> &'a Arc<Identity> {
    ctx.data_unchecked::<Arc<Identity>>()
}

/// A signed-in session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    /// When the access token stops working; refresh before then.
    pub access_token_expires_at: DateTime<Utc>,
    /// Exchange for a new session with `refreshSession`; each one works once.
    pub refresh_token: String,
    /// When the refresh token stops working.
    pub refresh_token_expires_at: DateTime<Utc>,
    /// The signed-in customer.
    pub customer: Customer,
}

impl From<Session> for AuthPayload {
    fn from(s: Session) -> Self {
        Self {
            access_token: s.access_token,
            access_token_expires_at: s.access_token_expires_at,
            refresh_token: s.refresh_token,
            refresh_token_expires_at: s.refresh_token_expires_at,
            customer: Customer(s.customer, Viewer::Owner),
        }
    }
}

/// A new account.
#[derive(InputObject)]
pub struct SignUpInput {
    /// E-mail address; stored trimmed and lower-case, and must be unused.
    pub email: String,
    /// 10–128 characters with a letter and a digit or symbol.
    pub password: String,
    /// Full name.
    pub name: String,
}

/// Identity queries.
pub struct Query;

#[Object]
impl Query {
    /// The signed-in customer; `null` when anonymous, an error when the token is invalid.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        let Some(caller) = authentication(ctx).caller()? else { return Ok(None) };
        let loader = ctx.data_unchecked::<DataLoader<CustomerLoader>>();
        Ok(loader
            .load_one(caller.customer_id)
            .await
            .map_err(loader_error)?
            .map(Customer::seen_by_caller))
    }

    /// Resolves `Customer` references from other subgraphs, batched through the loader.
    #[graphql(entity)]
    async fn find_customer_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Customer>> {
        let Ok(id) = uuid::Uuid::parse_str(id.trim()) else { return Ok(None) };
        let loader = ctx.data_unchecked::<DataLoader<CustomerLoader>>();
        Ok(loader.load_one(id).await.map_err(loader_error)?.map(Customer::seen_by_caller))
    }
}

/// Sign-up, sign-in and sessions.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates a customer account and signs it in.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> Result<AuthPayload> {
        let session =
            accounts::sign_up(identity(ctx), &input.email, &input.password, &input.name).await?;
        Ok(session.into())
    }

    /// Signs in. A wrong password and an unknown e-mail give the same error; attempts are
    /// limited per e-mail and per client address (`RATE_LIMITED`).
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<AuthPayload> {
        let client = ctx.data_opt::<ClientAddress>().map(|c| c.0.to_string()).unwrap_or_default();
        let session = accounts::sign_in(identity(ctx), &email, &password, &client).await?;
        Ok(session.into())
    }

    /// Exchanges a refresh token for a new session. Each refresh token works once; using one
    /// twice ends every session of that sign-in.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> Result<AuthPayload> {
        Ok(accounts::refresh(identity(ctx), &refresh_token).await?.into())
    }

    /// Ends the session of a refresh token. Always `true`, so it reveals nothing.
    async fn sign_out(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        accounts::sign_out(identity(ctx), &refresh_token).await?;
        Ok(true)
    }
}
