//! Password hashing with Argon2id (the crate's defaults follow OWASP's recommendation).
//! Hashing runs on the blocking pool: it is deliberately slow and must not stall the runtime.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use kernel::{AppError, AppResult};
use rand::rngs::OsRng;

/// Hashes a password into a PHC string.
pub async fn hash(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(anyhow::anyhow!("hashing a password: {e}")))
    })
    .await
    .map_err(AppError::internal)?
}

/// Checks a password against a stored hash. With no stored hash (unknown e-mail) it checks
/// against a fixed dummy hash, so both cases take the same time and give the same answer.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    let known = stored.is_some();
    let stored = match stored {
        Some(s) => s,
        None => dummy_hash()?.to_string(),
    };
    let ok = tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored hash is malformed: {e}")))?;
        Ok::<_, AppError>(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(AppError::internal)??;
    Ok(ok && known)
}

fn dummy_hash() -> AppResult<&'static str> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h);
    }
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(b"not a real password", &salt)
        .map_err(|e| AppError::internal(anyhow::anyhow!("hashing the dummy password: {e}")))?
        .to_string();
    Ok(DUMMY.get_or_init(|| hash))
}
