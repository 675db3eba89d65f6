//! Relay cursor pagination: parsing `first`/`after` into a page request, and opaque cursors.
//!
//! A cursor is the position of an item in a stable ordering, base64-encoded with a version
//! prefix so that a client cannot mistake it for data and we can change the format later.
//! `first` is capped at [`MAX_PAGE_SIZE`]; asking for more is an error, not a silent clamp.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::AppError;

/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;
/// The page size used when `first` is not given.
pub const DEFAULT_PAGE_SIZE: u64 = 20;

const CURSOR_PREFIX: &str = "o1:";

/// A validated request for one page: skip `offset` items, return at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Items before this page.
    pub offset: u64,
    /// Page size.
    pub limit: u64,
}

impl PageRequest {
    /// Parses the Relay arguments a client sent.
    pub fn parse(first: Option<i32>, after: Option<&str>) -> Result<Self, AppError> {
        let limit = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n < 0 => return Err(AppError::bad_input("`first` must not be negative")),
            Some(n) if n as u64 > MAX_PAGE_SIZE => {
                return Err(AppError::bad_input(format!(
                    "`first` is {n}, above the maximum page size of {MAX_PAGE_SIZE}"
                )));
            }
            Some(n) => n as u64,
        };
        let offset = match after {
            None => 0,
            Some(cursor) => decode_cursor(cursor)? + 1,
        };
        Ok(Self { offset, limit })
    }

    /// The cursor of the item at `index` within this page.
    pub fn cursor_at(&self, index: usize) -> String {
        encode_cursor(self.offset + index as u64)
    }
}

/// Encodes an item's position as an opaque cursor.
pub fn encode_cursor(position: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{position}"))
}

/// Decodes a cursor made by [`encode_cursor`]; anything else is `BAD_USER_INPUT`.
pub fn decode_cursor(cursor: &str) -> Result<u64, AppError> {
    let invalid = || AppError::bad_input("`after` is not a valid cursor");
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    text.strip_prefix(CURSOR_PREFIX).and_then(|n| n.parse().ok()).ok_or_else(invalid)
}

/// Builds the page info of a page of `returned` items out of `total`.
pub fn has_next_page(page: &PageRequest, returned: usize, total: u64) -> bool {
    page.offset + (returned as u64) < total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_continue_after_the_item() {
        let page = PageRequest::parse(Some(10), None).unwrap();
        assert_eq!(page, PageRequest { offset: 0, limit: 10 });
        let next = PageRequest::parse(Some(10), Some(&page.cursor_at(9))).unwrap();
        assert_eq!(next, PageRequest { offset: 10, limit: 10 });
    }

    #[test]
    fn bad_arguments_are_client_errors() {
        for (first, after) in
            [(Some(101), None), (Some(-1), None), (None, Some("nope")), (None, Some("bzE6eA"))]
        {
            let err = PageRequest::parse(first, after).unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT", "{first:?} {after:?}");
        }
        assert_eq!(PageRequest::parse(Some(100), None).unwrap().limit, 100);
    }
}
