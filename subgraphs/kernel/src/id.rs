//! Identifiers. Every aggregate id is a UUID v7: unique without coordination, and ordered by
//! creation time, which keeps database indexes compact and makes "newest first" cheap.

use uuid::Uuid;

/// A new time-ordered identifier (UUID v7).
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Parses an identifier received from a client; the error names the field at fault.
pub fn parse_id(field: &str, raw: &str) -> Result<Uuid, crate::AppError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| crate::AppError::bad_input(format!("`{field}` is not a valid id")))
}
