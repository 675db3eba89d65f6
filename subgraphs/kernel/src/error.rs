//! The error model: one enum that every layer can return, and the single place that turns it
//! into a GraphQL error with a machine-readable `extensions.code`.
//!
//! Client mistakes carry a message written for the client. Internal failures carry their cause
//! chain for the log only: the client sees a generic message, so no SQL, path or secret leaks.

use async_graphql::ErrorExtensions;

/// Result alias used by services and domain code.
pub type AppResult<T> = Result<T, AppError>;

/// Every failure a request can meet, by what the client should do about it.
///
/// It deliberately does not implement `Display`: conversion to a client-facing error must go
/// through [`From<AppError> for async_graphql::Error`], which hides internal causes.
#[derive(Debug)]
pub enum AppError {
    /// The input is malformed or breaks a rule (`BAD_USER_INPUT`).
    BadUserInput(String),
    /// No valid credentials were presented (`UNAUTHENTICATED`).
    Unauthenticated(String),
    /// The caller is known but may not do this (`FORBIDDEN`).
    Forbidden(String),
    /// The thing acted upon does not exist (`NOT_FOUND`).
    NotFound(String),
    /// The request conflicts with the current state, e.g. a duplicate (`CONFLICT`).
    Conflict(String),
    /// Too many attempts in a short time (`RATE_LIMITED`).
    RateLimited(String),
    /// Anything unexpected: logged with its cause, shown as a generic error (`INTERNAL`).
    Internal(anyhow::Error),
}

impl AppError {
    /// A `BAD_USER_INPUT` error.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadUserInput(message.into())
    }

    /// An `INTERNAL` error from any cause.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// The GraphQL error code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::RateLimited(_) => "RATE_LIMITED",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// The message a client may see.
    pub fn client_message(&self) -> &str {
        match self {
            Self::BadUserInput(m)
            | Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::RateLimited(m) => m,
            Self::Internal(_) => "internal error",
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database operation failed"))
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(err: sea_orm::TransactionError<AppError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(app) => app,
        }
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(cause) = &err {
            // The whole chain goes to the log; the client only learns that it was our fault.
            tracing::error!(error = ?cause, "internal error while serving a request");
        }
        let code = err.code();
        async_graphql::Error::new(err.client_message()).extend_with(|_, ext| ext.set("code", code))
    }
}

/// Turns the shared error of a DataLoader batch into the error clients see.
pub fn loader_error(err: std::sync::Arc<AppError>) -> async_graphql::Error {
    match std::sync::Arc::try_unwrap(err) {
        Ok(err) => err.into(),
        // Several fields awaited the same failed batch: each reports it as internal.
        Err(shared) => AppError::internal(anyhow::anyhow!("{:?}", shared)).into(),
    }
}
