//! The response tree's values, borrowed from the subgraphs' response bodies.
//!
//! A subgraph's answer is parsed once into [`Value`]s whose strings, numbers and keys are
//! slices of its body, kept exactly as the subgraph wrote them (strings still escaped). Nothing
//! is copied or unescaped on the way from subgraph to client: projection writes those slices
//! back verbatim. Objects are small vectors of pairs: a GraphQL object has a handful of fields,
//! where a linear scan beats hashing.
//!
//! [`Bodies`] keeps every body alive for as long as the execution's values borrow from it.

use std::borrow::Cow;
use std::sync::Mutex;

use apollo_compiler::response::{JsonMap, JsonValue};
use axum::body::Bytes;

/// A JSON value borrowed from a response body (or, for rewritten values, from the plan).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Value<'a> {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(&'a str),
    /// A string, as written between its quotes: escapes are kept.
    String(&'a str),
    /// A list.
    Array(Vec<Value<'a>>),
    /// An object: keys (as written) and values, in the order received.
    Object(Vec<(&'a str, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value under `key`, when this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(fields) => get(fields, key),
            _ => None,
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string's text, unescaped only when it has escapes.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match self {
            Value::String(raw) => Some(unescape(raw)),
            _ => None,
        }
    }

    /// The object's `__typename`, when it sent one.
    pub fn typename(&self) -> Option<Cow<'a, str>> {
        self.get("__typename")?.as_str()
    }

    /// Writes the value as JSON.
    pub fn write(&self, buf: &mut Vec<u8>) {
        match self {
            Value::Null => buf.extend_from_slice(b"null"),
            Value::Bool(true) => buf.extend_from_slice(b"true"),
            Value::Bool(false) => buf.extend_from_slice(b"false"),
            Value::Number(raw) => buf.extend_from_slice(raw.as_bytes()),
            Value::String(raw) => write_raw_string(raw, buf),
            Value::Array(items) => {
                buf.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    item.write(buf);
                }
                buf.push(b']');
            }
            Value::Object(fields) => {
                buf.push(b'{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    write_raw_string(key, buf);
                    buf.push(b':');
                    value.write(buf);
                }
                buf.push(b'}');
            }
        }
    }

    /// An owned copy as apollo-compiler's JSON (for the paths that build trees: introspection,
    /// merged projections, errors).
    pub fn to_json(&self) -> JsonValue {
        match self {
            Value::Null => JsonValue::Null,
            Value::Bool(b) => JsonValue::Bool(*b),
            Value::Number(raw) => serde_json::from_str::<serde_json::Number>(raw)
                .map_or(JsonValue::Null, |n| {
                    serde_json_bytes::to_value(n).unwrap_or(JsonValue::Null)
                }),
            Value::String(raw) => JsonValue::String(unescape(raw).as_ref().into()),
            Value::Array(items) => JsonValue::Array(items.iter().map(Value::to_json).collect()),
            Value::Object(fields) => {
                let mut map = JsonMap::with_capacity(fields.len());
                for (key, value) in fields {
                    map.insert(unescape(key).as_ref(), value.to_json());
                }
                JsonValue::Object(map)
            }
        }
    }
}

/// The value under `key` in an object's fields.
pub fn get<'v, 'a>(fields: &'v [(&'a str, Value<'a>)], key: &str) -> Option<&'v Value<'a>> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Writes a string whose text is already JSON-escaped.
pub fn write_raw_string(raw: &str, buf: &mut Vec<u8>) {
    buf.push(b'"');
    buf.extend_from_slice(raw.as_bytes());
    buf.push(b'"');
}

/// The text of a string as written in JSON (escapes resolved); borrowed when it has none.
pub fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    // The parser checked the escapes; serde_json resolves them (surrogate pairs included).
    let quoted = format!("\"{raw}\"");
    Cow::Owned(serde_json::from_str::<String>(&quoted).unwrap_or_default())
}

/// Why a body is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {at}: {what}")]
pub struct ParseError {
    /// Byte offset of the problem.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// Deepest nesting accepted from a subgraph (a guard for the parser's stack, far beyond any
/// response a GraphQL operation within the gateway's depth limit produces).
const MAX_NESTING: usize = 512;

/// Parses a whole JSON document, borrowing from `text`.
pub fn parse(text: &str) -> Result<Value<'_>, ParseError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
        fields: Vec::new(),
        items: Vec::new(),
    };
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.at != parser.bytes.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    depth: usize,
    /// Fields of the objects being parsed, innermost last: each object takes its own off the
    /// top when it closes, in one allocation of the right size.
    fields: Vec<(&'a str, Value<'a>)>,
    /// The same for list items.
    items: Vec<Value<'a>>,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// True when one of the eight bytes in `word` ends or escapes a string, or is a control
/// character: a quote, a backslash, or below 0x20.
fn special_byte(word: u64) -> bool {
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control != 0
}

impl<'a> Parser<'a> {
    fn error(&self, what: &'static str) -> ParseError {
        ParseError { at: self.at, what }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn literal(&mut self, word: &'static str, value: Value<'a>) -> Result<Value<'a>, ParseError> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("unknown literal"))
        }
    }

    fn value(&mut self) -> Result<Value<'a>, ParseError> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end")),
        }
    }

    fn nest(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING { Err(self.error("nested too deeply")) } else { Ok(()) }
    }

    fn object(&mut self) -> Result<Value<'a>, ParseError> {
        self.nest()?;
        self.at += 1;
        let mark = self.fields.len();
        if self.peek() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a key"));
                }
                let key = self.string()?;
                self.expect(b':', "expected ':'")?;
                let value = self.value()?;
                self.fields.push((key, value));
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.error("expected ',' or '}'")),
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Object(self.fields.drain(mark..).collect()))
    }

    fn array(&mut self) -> Result<Value<'a>, ParseError> {
        self.nest()?;
        self.at += 1;
        let mark = self.items.len();
        if self.peek() == Some(b']') {
            self.at += 1;
        } else {
            loop {
                let item = self.value()?;
                self.items.push(item);
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b']') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.error("expected ',' or ']'")),
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Array(self.items.drain(mark..).collect()))
    }

    /// A string at the opening quote: its text between the quotes, escapes checked but kept.
    fn string(&mut self) -> Result<&'a str, ParseError> {
        self.at += 1;
        let start = self.at;
        loop {
            // Eight bytes at a time through the plain part of the string.
            while let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
                let word = u64::from_le_bytes(match chunk.try_into() {
                    Ok(word) => word,
                    Err(_) => break,
                });
                if special_byte(word) {
                    break;
                }
                self.at += 8;
            }
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err(self.error("unterminated string"));
            };
            match byte {
                b'"' => {
                    let text = &self.text[start..self.at];
                    self.at += 1;
                    return Ok(text);
                }
                b'\\' => {
                    self.at += 1;
                    match self.bytes.get(self.at) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 1
                        }
                        Some(b'u') => {
                            let hex = self.bytes.get(self.at + 1..self.at + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.error("invalid \\u escape"));
                            }
                            self.at += 5;
                        }
                        _ => return Err(self.error("invalid escape")),
                    }
                }
                0..=0x1f => return Err(self.error("control character in string")),
                _ => self.at += 1,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Value<'a>, ParseError> {
        let start = self.at;
        if self.bytes[self.at] == b'-' {
            self.at += 1;
        }
        match self.bytes.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(Value::Number(&self.text[start..self.at]))
    }
}

/// True when a number as written is an integer (no fraction, no exponent).
pub fn is_integer(raw: &str) -> bool {
    !raw.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// The subgraph bodies an execution's values borrow from. Append-only: a body stays where it
/// is until the whole store is dropped.
#[derive(Default)]
pub struct Bodies {
    kept: Mutex<Vec<Bytes>>,
}

impl Bodies {
    /// Keeps `body` alive as long as `self`, and lends its bytes for that long.
    pub fn keep(&self, body: Bytes) -> &[u8] {
        let (ptr, len) = (body.as_ptr(), body.len());
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).push(body);
        // SAFETY: `Bytes` is a handle to a buffer that never moves; the handle pushed above
        // keeps the buffer alive, and handles are only ever added to `kept`, never removed,
        // until `self` is dropped. The slice therefore stays valid for the borrow of `self`,
        // and nothing can write to the buffer (`Bytes` is immutable).
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// Total bytes kept (to size the response buffer).
    pub fn total_len(&self) -> usize {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).iter().map(Bytes::len).sum()
    }
}

/// A test value from apollo-compiler's JSON (leaked: tests only).
#[cfg(test)]
pub fn from_json(json: &JsonValue) -> Value<'static> {
    let text: &'static str = Box::leak(json.to_string().into_boxed_str());
    parse(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> String {
        let mut buf = Vec::new();
        parse(text).unwrap().write(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn values_are_written_back_exactly_as_the_subgraph_sent_them() {
        let text = r#"{"a":[1,-2.5e3,0.25,true,false,null],"s":"tab\there \u00e9 \"q\" \ud83d\ude00","o":{}}"#;
        assert_eq!(roundtrip(text), text);
        assert_eq!(roundtrip(" { \"a\" : [ 1 , 2 ] } "), r#"{"a":[1,2]}"#);
    }

    #[test]
    fn long_strings_end_and_escape_at_any_offset() {
        for offset in 0..24 {
            let plain = "x".repeat(offset);
            let text = format!(r#"["{plain}\"{plain}","{plain}é{plain}"]"#);
            assert_eq!(roundtrip(&text), text);
            let control = format!("\"{plain}\u{1}{plain}\"");
            assert!(parse(&control).is_err(), "control character after {offset} bytes");
            let unterminated = format!("\"{plain}");
            assert!(parse(&unterminated).is_err());
        }
    }

    #[test]
    fn strings_unescape_only_when_asked() {
        let value = parse(r#"{"__typename":"Bo\u006fk","plain":"x"}"#).unwrap();
        assert_eq!(value.typename().as_deref(), Some("Book"));
        assert!(matches!(value.get("plain").and_then(Value::as_str), Some(Cow::Borrowed("x"))));
        let json = value.to_json();
        assert_eq!(json["__typename"], "Book");
    }

    #[test]
    fn malformed_json_is_refused() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "1e",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\nb\"",
            "tru",
            "{} x",
            "[1 2]",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        let deep = "[".repeat(MAX_NESTING + 1) + &"]".repeat(MAX_NESTING + 1);
        assert_eq!(parse(&deep).unwrap_err().what, "nested too deeply");
    }

    #[test]
    fn numbers_keep_their_form() {
        assert!(is_integer("42") && is_integer("-7"));
        assert!(!is_integer("4.0") && !is_integer("1e3"));
        assert_eq!(parse("1E+2").unwrap(), Value::Number("1E+2"));
        assert_eq!(parse("1E+2").unwrap().to_json(), JsonValue::from(100.0));
    }

    #[test]
    fn kept_bodies_outlive_their_handles() {
        let bodies = Bodies::default();
        let first = bodies.keep(Bytes::from(b"{\"a\":1}".to_vec()));
        let second = bodies.keep(Bytes::from_static(b"[true]"));
        assert_eq!(first, b"{\"a\":1}");
        assert_eq!(second, b"[true]");
        assert_eq!(bodies.total_len(), 13);
    }
}
