//! Accounts and sessions: sign up, sign in, refresh, sign out.
//!
//! A session is a short-lived access token (JWT) plus a refresh token. Refresh tokens rotate:
//! each is good for one exchange. Presenting one that was already exchanged means someone else
//! holds a copy, so the whole family (every token descended from that sign-in) is revoked.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entities::identity::{customer, refresh_token};
use kernel::auth::Role;
use kernel::events::EventEnvelope;
use kernel::{AppError, AppResult};
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, SqlErr, TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Identity;
use crate::domain::{Email, Password, display_name};
use crate::password;

/// A signed-in session handed to the client.
pub struct Session {
    /// The JWT access token.
    pub access_token: String,
    /// When it expires.
    pub access_token_expires_at: DateTime<Utc>,
    /// The refresh token (shown once; only its hash is stored).
    pub refresh_token: String,
    /// When it expires.
    pub refresh_token_expires_at: DateTime<Utc>,
    /// The account.
    pub customer: customer::Model,
}

/// The roles stored on an account.
pub fn roles_of(row: &customer::Model) -> Vec<Role> {
    row.roles.split(',').filter_map(|r| Role::parse(r.trim())).collect()
}

fn roles_text(roles: &[Role]) -> String {
    roles.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
}

/// Creates an account with the given roles; the e-mail must be free.
pub async fn create_account(
    identity: &Identity,
    email: &str,
    password: &str,
    name: &str,
    roles: &[Role],
) -> AppResult<customer::Model> {
    let email = Email::parse(email)?;
    let password = Password::parse(password, &email)?;
    let name = display_name(name)?;
    if find_by_email(&identity.db, &email).await?.is_some() {
        return Err(duplicate_email());
    }
    let password_hash = password::hash(password.expose().to_string()).await?;
    let account = insert_account(identity, &email, &name, password_hash, roles).await?;
    tracing::info!(customer_id = %account.id, "account created");
    Ok(account)
}

/// Inserts an account whose password is already hashed (also used by demo seeding).
pub async fn insert_account(
    identity: &Identity,
    email: &Email,
    name: &str,
    password_hash: String,
    roles: &[Role],
) -> AppResult<customer::Model> {
    insert_account_with_id(identity, kernel::id::new_id(), email, name, password_hash, roles).await
}

/// As [`insert_account`], with a chosen id (deterministic demo accounts).
pub async fn insert_account_with_id(
    identity: &Identity,
    id: Uuid,
    email: &Email,
    name: &str,
    password_hash: String,
    roles: &[Role],
) -> AppResult<customer::Model> {
    let now = Utc::now();
    let txn = identity.db.begin().await?;
    let inserted = customer::ActiveModel {
        id: Set(id),
        email: Set(email.as_str().to_string()),
        name: Set(name.to_string()),
        password_hash: Set(password_hash),
        roles: Set(roles_text(roles)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|err| match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => duplicate_email(),
        _ => err.into(),
    })?;
    let event = EventEnvelope::new(
        "customer.registered",
        1,
        inserted.id,
        serde_json::json!({ "customerId": inserted.id, "name": inserted.name }),
    );
    identity.relay.commit(txn, vec![event]).await?;
    tracing::debug!(customer_id = %inserted.id, "account created");
    Ok(inserted)
}

fn duplicate_email() -> AppError {
    AppError::Conflict("an account with this e-mail address already exists".into())
}

async fn find_by_email<C: ConnectionTrait>(
    db: &C,
    email: &Email,
) -> AppResult<Option<customer::Model>> {
    Ok(customer::Entity::find().filter(customer::Column::Email.eq(email.as_str())).one(db).await?)
}

/// Signs up a customer and signs them in.
#[tracing::instrument(skip_all)]
pub async fn sign_up(
    identity: &Identity,
    email: &str,
    password: &str,
    name: &str,
) -> AppResult<Session> {
    let account = create_account(identity, email, password, name, &[Role::Customer]).await?;
    start_session(identity, account, kernel::id::new_id()).await
}

/// Signs in with e-mail and password, within the per-e-mail and per-address attempt limits.
/// A wrong password and an unknown e-mail give the same error.
#[tracing::instrument(skip_all, fields(client = %client))]
pub async fn sign_in(
    identity: &Identity,
    email: &str,
    password: &str,
    client: &str,
) -> AppResult<Session> {
    let invalid = || AppError::Unauthenticated("e-mail or password is incorrect".into());
    let normalized = email.trim().to_lowercase();
    if !identity.limits.per_address.try_acquire(client)
        || !identity.limits.per_email.try_acquire(&normalized)
    {
        tracing::warn!(client, "sign-in rate limit reached");
        return Err(AppError::RateLimited("too many sign-in attempts; try again later".into()));
    }
    // A malformed e-mail cannot have an account: same answer as an unknown one.
    let account = match Email::parse(&normalized) {
        Ok(email) => find_by_email(&identity.db, &email).await?,
        Err(_) => None,
    };
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    if !password::verify(password.to_string(), stored).await? {
        return Err(invalid());
    }
    let account = account.ok_or_else(invalid)?;
    start_session(identity, account, kernel::id::new_id()).await
}

async fn start_session(
    identity: &Identity,
    account: customer::Model,
    family: Uuid,
) -> AppResult<Session> {
    let (refresh_token, refresh_row) = new_refresh_token(identity, account.id, family);
    let refresh_expires = refresh_row.expires_at;
    store_refresh_token(&identity.db, refresh_row).await?;
    issue(identity, account, refresh_token, refresh_expires)
}

fn issue(
    identity: &Identity,
    account: customer::Model,
    refresh_token: String,
    refresh_token_expires_at: DateTime<Utc>,
) -> AppResult<Session> {
    let (access_token, access_token_expires_at) =
        identity.issuer.issue(account.id, &roles_of(&account))?;
    Ok(Session {
        access_token,
        access_token_expires_at,
        refresh_token,
        refresh_token_expires_at,
        customer: account,
    })
}

fn new_refresh_token(
    identity: &Identity,
    customer_id: Uuid,
    family_id: Uuid,
) -> (String, refresh_token::Model) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let now = Utc::now();
    let row = refresh_token::Model {
        id: kernel::id::new_id(),
        customer_id,
        family_id,
        token_hash: hash_token(&token),
        created_at: now,
        expires_at: now + identity.refresh_ttl,
        used_at: None,
        revoked_at: None,
    };
    (token, row)
}

async fn store_refresh_token<C: ConnectionTrait>(
    db: &C,
    row: refresh_token::Model,
) -> AppResult<()> {
    row.into_active_model().reset_all().insert(db).await?;
    Ok(())
}

fn hash_token(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Exchanges a refresh token for a new session; reuse of an exchanged token revokes its family.
#[tracing::instrument(skip_all)]
pub async fn refresh(identity: &Identity, token: &str) -> AppResult<Session> {
    let invalid =
        |why: &str| AppError::Unauthenticated(format!("refresh token {why}; sign in again"));
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash_token(token)))
        .one(&identity.db)
        .await?
    else {
        return Err(invalid("is not valid"));
    };
    if row.revoked_at.is_some() {
        return Err(invalid("was revoked"));
    }
    if row.used_at.is_some() {
        revoke_family(identity, row.family_id).await?;
        tracing::warn!(customer_id = %row.customer_id, family = %row.family_id, "refresh token reused; family revoked");
        return Err(invalid("was already used, so every session from that sign-in was ended"));
    }
    if row.expires_at <= Utc::now() {
        return Err(invalid("has expired"));
    }
    let account = customer::Entity::find_by_id(row.customer_id)
        .one(&identity.db)
        .await?
        .ok_or_else(|| invalid("is not valid"))?;

    let (next_token, next) = new_refresh_token(identity, row.customer_id, row.family_id);
    let next_expires = next.expires_at;
    let txn = identity.db.begin().await?;
    // Only one exchange can win: the update succeeds once, while the token is still unused.
    let claimed = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::Id.eq(row.id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        drop(txn);
        revoke_family(identity, row.family_id).await?;
        return Err(invalid("was already used, so every session from that sign-in was ended"));
    }
    store_refresh_token(&txn, next).await?;
    txn.commit().await?;
    issue(identity, account, next_token, next_expires)
}

/// Ends the session a refresh token belongs to (its whole family). Unknown tokens are ignored
/// so that signing out twice is harmless.
#[tracing::instrument(skip_all)]
pub async fn sign_out(identity: &Identity, token: &str) -> AppResult<()> {
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash_token(token)))
        .one(&identity.db)
        .await?;
    if let Some(row) = row {
        revoke_family(identity, row.family_id).await?;
        tracing::info!(customer_id = %row.customer_id, "signed out");
    }
    Ok(())
}

async fn revoke_family(identity: &Identity, family: Uuid) -> AppResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::FamilyId.eq(family))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&identity.db)
        .await?;
    Ok(())
}

/// Creates the configured first administrator unless an account with that e-mail exists.
pub async fn bootstrap_admin(
    identity: &Identity,
    admin: &kernel::config::BootstrapAdmin,
) -> AppResult<()> {
    use secrecy::ExposeSecret;
    let email = Email::parse(&admin.email)?;
    if find_by_email(&identity.db, &email).await?.is_some() {
        return Ok(());
    }
    create_account(
        identity,
        email.as_str(),
        admin.password.expose_secret(),
        &admin.name,
        &[Role::Customer, Role::Admin],
    )
    .await?;
    tracing::info!(email = email.as_str(), "created the first administrator");
    Ok(())
}
