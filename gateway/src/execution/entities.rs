//! Entities between fetches: the representations sent (deduplicated), the entities that
//! come back (owned or shared with identical fetches in flight), and error paths mapped from
//! `_entities` positions back to where each entity sits in the response.

use apollo_compiler::response::JsonValue;

use super::data::PathElem;

/// Entities returned by a fetch: owned (only this request reads the response) or shared.
pub(super) enum Entities<'r> {
    Owned(Vec<JsonValue>),
    Shared(&'r [JsonValue]),
}

/// The list under `key` of a response's data, taken out of it (`key` empty: `data` itself).
pub(super) fn take_list(mut data: Option<JsonValue>, key: &str) -> Vec<JsonValue> {
    let value = if key.is_empty() { data } else { data.take_field(key) };
    match value {
        Some(JsonValue::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// The list under `key` of a response's data, borrowed.
pub(super) fn borrow_list<'r>(data: Option<&'r JsonValue>, key: &str) -> &'r [JsonValue] {
    data.and_then(|d| d.get(key))
        .and_then(JsonValue::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Taking one field out of an optional JSON object.
pub(super) trait TakeField {
    fn take_field(&mut self, key: &str) -> Option<JsonValue>;
}

impl TakeField for Option<JsonValue> {
    fn take_field(&mut self, key: &str) -> Option<JsonValue> {
        match self {
            Some(JsonValue::Object(map)) => map.remove(key),
            _ => None,
        }
    }
}

/// Distinct representations in first-seen order: entities that share a key are fetched once.
#[derive(Default)]
pub(super) struct Representations {
    values: Vec<JsonValue>,
    by_hash: std::collections::HashMap<u64, Vec<usize>>,
}

impl Representations {
    /// The position of `rep`, added when new.
    pub(super) fn index_of(&mut self, rep: JsonValue) -> usize {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        rep.hash(&mut hasher);
        let candidates = self.by_hash.entry(hasher.finish()).or_default();
        if let Some(&found) = candidates.iter().find(|&&i| self.values[i] == rep) {
            return found;
        }
        candidates.push(self.values.len());
        self.values.push(rep);
        self.values.len() - 1
    }

    pub(super) fn into_values(self) -> Vec<JsonValue> {
        self.values
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
