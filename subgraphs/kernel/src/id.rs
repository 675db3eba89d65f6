//! Identifiers. Every aggregate id is a UUID v7: unique without coordination, and ordered by
//! creation time, which keeps database indexes compact and makes "newest first" cheap.

use uuid::Uuid;

/// A new time-ordered identifier (UUID v7).
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Writes ids as the internal routes take them (`a,b,c`; read by [`parse_id_list`]).
pub fn id_list(ids: &[Uuid]) -> String {
    ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",")
}

/// Parses a comma-separated list of 1 to `max` ids (a query parameter of an internal route);
/// `None` when it is empty, too long, or holds anything that is not an id.
pub fn parse_id_list(raw: &str, max: usize) -> Option<Vec<Uuid>> {
    let ids: Vec<Uuid> = raw
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Uuid::parse_str(s.trim()).ok())
        .collect::<Option<_>>()?;
    (!ids.is_empty() && ids.len() <= max).then_some(ids)
}

/// Parses an identifier received from a client; the error names the field at fault.
pub fn parse_id(field: &str, raw: &str) -> Result<Uuid, crate::AppError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| crate::AppError::bad_input(format!("`{field}` is not a valid id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_are_all_ids_within_the_bound() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(parse_id_list(&format!("{a},{b}"), 2), Some(vec![a, b]));
        assert_eq!(parse_id_list(&format!("{a},{b}"), 1), None, "too many");
        assert_eq!(parse_id_list("", 5), None, "none");
        assert_eq!(parse_id_list(&format!("{a},nope"), 5), None, "not all ids");
    }
}
