//! Entities between fetches: the representations sent (written once as JSON, and
//! deduplicated on those bytes), and error paths mapped from `_entities` positions back to
//! where each entity sits in the response.

use apollo_compiler::response::JsonValue;

use super::data::PathElem;
use super::value::Value;

/// The list under `key` of a response's data, taken out of it (`key` empty: `data` itself).
pub(super) fn take_list<'a>(data: Option<Value<'a>>, key: &str) -> Vec<Value<'a>> {
    let value = match data {
        Some(value) if key.is_empty() => Some(value),
        Some(Value::Object(fields)) => fields.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v),
        _ => None,
    };
    match value {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// Distinct representations in first-seen order, written as one JSON list: entities that
/// share a key are fetched once.
pub(super) struct Representations {
    json: Vec<u8>,
    /// Where each distinct representation sits in `json`.
    spans: Vec<(usize, usize)>,
    by_hash: std::collections::HashMap<u64, Vec<usize>>,
}

impl Default for Representations {
    fn default() -> Self {
        Self { json: b"[".to_vec(), spans: Vec::new(), by_hash: Default::default() }
    }
}

impl Representations {
    /// The position of `rep`, added when new.
    pub(super) fn index_of(&mut self, rep: &Value<'_>) -> usize {
        use std::hash::{Hash, Hasher};
        let mark = self.json.len();
        if !self.spans.is_empty() {
            self.json.push(b',');
        }
        let start = self.json.len();
        rep.write(&mut self.json);
        let written = &self.json[start..];
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        written.hash(&mut hasher);
        let candidates = self.by_hash.entry(hasher.finish()).or_default();
        let json = &self.json;
        if let Some(&found) = candidates.iter().find(|&&i| {
            let (s, e) = self.spans[i];
            json[s..e] == json[start..]
        }) {
            self.json.truncate(mark);
            return found;
        }
        candidates.push(self.spans.len());
        self.spans.push((start, self.json.len()));
        self.spans.len() - 1
    }

    /// How many distinct representations there are.
    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The JSON list of the representations.
    pub(super) fn into_json(mut self) -> Vec<u8> {
        self.json.push(b']');
        self.json
    }
}

/// Maps an error path `[prefix, i, rest…]` to the client paths of the entities at index `i`.
pub(super) fn entity_error_path(
    path: &[JsonValue],
    prefix: &str,
    entities: &[(Vec<PathElem>, usize)],
) -> Option<Vec<JsonValue>> {
    if path.first().and_then(|s| s.as_str()) != Some(prefix) {
        return None;
    }
    let index = path.get(1)?.as_u64()? as usize;
    let (entity_path, _) = entities.iter().find(|(_, i)| *i == index)?;
    let mut out: Vec<JsonValue> = entity_path.iter().map(PathElem::to_json).collect();
    out.extend(path[2..].iter().cloned());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::value::parse;

    #[test]
    fn equal_representations_are_sent_once_in_first_seen_order() {
        let mut reps = Representations::default();
        let a = parse(r#"{"__typename":"User","id":"1"}"#).unwrap();
        let b = parse(r#"{"__typename":"User","id":"2"}"#).unwrap();
        assert_eq!(reps.index_of(&a), 0);
        assert_eq!(reps.index_of(&b), 1);
        assert_eq!(reps.index_of(&a), 0);
        assert_eq!(reps.len(), 2);
        assert_eq!(
            String::from_utf8(reps.into_json()).unwrap(),
            r#"[{"__typename":"User","id":"1"},{"__typename":"User","id":"2"}]"#
        );
    }
}
