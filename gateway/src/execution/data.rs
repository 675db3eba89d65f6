//! The response tree during execution: finding entities under a plan path, building their
//! representations, merging fetched data back in place, plan rewrites, and subgraph errors.

use apollo_compiler::response::{GraphQLError, JsonMap, JsonValue, ResponseDataPathSegment};
use serde_json_bytes::{ByteString, json};

use crate::planning::{
    FetchNodePathSegment, FetchRewrite, FlattenNodePathSegment, PossibleTypes, SelectionItem, fits,
};

/// One step of a path into the response tree (keys borrowed from the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathElem<'p> {
    /// An object key.
    Key(&'p str),
    /// A list position.
    Index(usize),
}

impl PathElem<'_> {
    /// As a JSON path segment.
    pub fn to_json(&self) -> JsonValue {
        match self {
            PathElem::Key(k) => JsonValue::String((*k).into()),
            PathElem::Index(i) => json!(i),
        }
    }
}

fn typename(value: &JsonValue) -> Option<&str> {
    value.as_object()?.get("__typename")?.as_str()
}

/// Every non-null object found by following `path` from `root`, with where it was found.
pub fn collect_entities<'v, 'p>(
    root: &'v JsonValue,
    path: &'p [FlattenNodePathSegment],
    possible: &PossibleTypes,
) -> Vec<(Vec<PathElem<'p>>, &'v JsonValue)> {
    let mut out = Vec::new();
    walk(root, path, possible, &mut Vec::new(), &mut out);
    out
}

fn walk<'v, 'p>(
    value: &'v JsonValue,
    path: &'p [FlattenNodePathSegment],
    possible: &PossibleTypes,
    at: &mut Vec<PathElem<'p>>,
    out: &mut Vec<(Vec<PathElem<'p>>, &'v JsonValue)>,
) {
    match (path.first(), value) {
        (_, JsonValue::Null) => {}
        (None, JsonValue::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                at.push(PathElem::Index(i));
                walk(item, path, possible, at, out);
                at.pop();
            }
        }
        (None, JsonValue::Object(_)) => out.push((at.clone(), value)),
        (None, _) => {}
        (Some(FlattenNodePathSegment::Field(name)), JsonValue::Object(map)) => {
            if let Some(next) = map.get(name.as_str()) {
                at.push(PathElem::Key(name.as_str()));
                walk(next, &path[1..], possible, at, out);
                at.pop();
            }
        }
        (Some(FlattenNodePathSegment::List), JsonValue::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                at.push(PathElem::Index(i));
                walk(item, &path[1..], possible, at, out);
                at.pop();
            }
        }
        (Some(FlattenNodePathSegment::TypeCondition(types)), JsonValue::Object(_))
            if typename(value).is_some_and(|t| types.iter().any(|c| fits(possible, c, t))) =>
        {
            walk(value, &path[1..], possible, at, out);
        }
        _ => {}
    }
}

/// The representation of `entity` for an `_entities` fetch: the `requires` selection projected
/// from it (under the names the subgraph expects), with the plan's input rewrites applied.
/// `None` when the entity lacks a field the selection needs (an earlier subgraph could not
/// resolve it) or is of a type the selection does not cover: such an entity is not sent, and
/// keeps what it already has.
pub fn representation(
    entity: &JsonValue,
    requires: &[SelectionItem],
    rewrites: Option<&[FetchRewrite]>,
    possible: &PossibleTypes,
) -> Option<JsonValue> {
    let mut projector = Representation { possible, complete: true };
    let mut rep = projector.project(entity, requires);
    // An entity no type condition of the selection matched has nothing to send.
    let typed = rep.as_object().is_some_and(|o| o.contains_key("__typename"));
    if !projector.complete || !typed {
        return None;
    }
    for rewrite in rewrites.unwrap_or_default() {
        apply_rewrite(&mut rep, rewrite, possible);
    }
    Some(rep)
}

/// Projects a `requires` selection out of an entity, noting whether anything was missing.
struct Representation<'a> {
    possible: &'a PossibleTypes,
    complete: bool,
}

impl Representation<'_> {
    fn project(&mut self, value: &JsonValue, items: &[SelectionItem]) -> JsonValue {
        match value {
            JsonValue::Object(map) => {
                let mut out = JsonMap::new();
                self.project_into(value, map, items, &mut out);
                JsonValue::Object(out)
            }
            JsonValue::Array(list) => {
                JsonValue::Array(list.iter().map(|v| self.project(v, items)).collect())
            }
            other => other.clone(),
        }
    }

    fn project_into(
        &mut self,
        value: &JsonValue,
        map: &JsonMap,
        items: &[SelectionItem],
        out: &mut JsonMap,
    ) {
        for item in items {
            match item {
                SelectionItem::Field(field) => {
                    // In a `requires` selection `price: _internal_qp_alias_0` reads the data
                    // under the field's name and writes the key the alias gives.
                    match map.get(field.name.as_str()) {
                        Some(v) => {
                            let projected = if field.selections.items.is_empty() {
                                v.clone()
                            } else {
                                self.project(v, &field.selections.items)
                            };
                            let key = field.alias.as_deref().unwrap_or(&field.name);
                            out.insert(ByteString::from(key), projected);
                        }
                        None => self.complete = false,
                    }
                }
                SelectionItem::InlineFragment(fragment) => {
                    let applies = typename(value)
                        .is_none_or(|t| fits(self.possible, &fragment.type_condition, t));
                    if applies {
                        self.project_into(value, map, &fragment.selections.items, out);
                    }
                }
                SelectionItem::FragmentSpread(_) => {}
            }
        }
    }
}

/// Applies the plan's output rewrites to a fetched value.
pub fn apply_output_rewrites(
    value: &mut JsonValue,
    rewrites: Option<&[FetchRewrite]>,
    possible: &PossibleTypes,
) {
    for rewrite in rewrites.unwrap_or_default() {
        apply_rewrite(value, rewrite, possible);
    }
}

fn apply_rewrite(value: &mut JsonValue, rewrite: &FetchRewrite, possible: &PossibleTypes) {
    match rewrite {
        FetchRewrite::ValueSetter(setter) => {
            rewrite_at(value, &setter.path, possible, &mut |target| {
                *target = JsonValue::String(setter.set_value_to.as_str().into())
            });
        }
        FetchRewrite::KeyRenamer(renamer) => {
            let Some((FetchNodePathSegment::Key(old), parent)) = renamer.path.split_last() else {
                return;
            };
            rewrite_at(value, parent, possible, &mut |target| {
                if let Some(map) = target.as_object_mut()
                    && let Some(v) = map.remove(old.as_str())
                {
                    map.insert(ByteString::from(renamer.rename_key_to.as_str()), v);
                }
            });
        }
    }
}

fn rewrite_at(
    value: &mut JsonValue,
    path: &[FetchNodePathSegment],
    possible: &PossibleTypes,
    action: &mut dyn FnMut(&mut JsonValue),
) {
    if let JsonValue::Array(items) = value {
        for item in items {
            rewrite_at(item, path, possible, action);
        }
        return;
    }
    match path.first() {
        None => action(value),
        Some(FetchNodePathSegment::Key(key)) => {
            if let Some(next) = value.as_object_mut().and_then(|m| m.get_mut(key.as_str())) {
                rewrite_at(next, &path[1..], possible, action);
            }
        }
        Some(FetchNodePathSegment::TypenameEquals(types)) => {
            if typename(value).is_some_and(|t| types.iter().any(|c| fits(possible, c, t))) {
                rewrite_at(value, &path[1..], possible, action);
            }
        }
    }
}

/// Merges `src` into `dst`: objects key by key, lists of equal length item by item.
pub fn deep_merge(dst: &mut JsonValue, src: JsonValue) {
    match (dst, src) {
        (JsonValue::Object(d), JsonValue::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(k.as_str()) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        d.insert(k, v);
                    }
                }
            }
        }
        (JsonValue::Array(d), JsonValue::Array(s)) if d.len() == s.len() => {
            for (dv, sv) in d.iter_mut().zip(s) {
                deep_merge(dv, sv);
            }
        }
        (dst, src) => *dst = src,
    }
}

/// Merges a borrowed `src` into `dst`, cloning only what `dst` lacks.
pub fn deep_merge_ref(dst: &mut JsonValue, src: &JsonValue) {
    match (dst, src) {
        (JsonValue::Object(d), JsonValue::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(k.as_str()) {
                    Some(existing) => deep_merge_ref(existing, v),
                    None => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (JsonValue::Array(d), JsonValue::Array(s)) if d.len() == s.len() => {
            for (dv, sv) in d.iter_mut().zip(s) {
                deep_merge_ref(dv, sv);
            }
        }
        (dst, src) => *dst = src.clone(),
    }
}

/// Merges a fetched `value` into the object at `path`, applying output rewrites on a copy
/// only when the plan has some.
pub fn merge_fetched_at(
    root: &mut JsonValue,
    path: &[PathElem<'_>],
    value: &JsonValue,
    rewrites: Option<&[FetchRewrite]>,
    possible: &PossibleTypes,
) {
    match rewrites {
        Some(rewrites) if !rewrites.is_empty() => {
            let mut value = value.clone();
            apply_output_rewrites(&mut value, Some(rewrites), possible);
            merge_at(root, path, value);
        }
        _ => {
            if let Some(target) = target_at(root, path) {
                deep_merge_ref(target, value);
            }
        }
    }
}

fn target_at<'r>(root: &'r mut JsonValue, path: &[PathElem<'_>]) -> Option<&'r mut JsonValue> {
    let mut target = root;
    for elem in path {
        target = match (elem, target) {
            (PathElem::Key(k), JsonValue::Object(map)) => map.get_mut(*k)?,
            (PathElem::Index(i), JsonValue::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(target)
}

/// Merges `value` into the object at `path`.
pub fn merge_at(root: &mut JsonValue, path: &[PathElem<'_>], value: JsonValue) {
    if let Some(target) = target_at(root, path) {
        deep_merge(target, value);
    }
}

/// A subgraph's error as a client error: path mapped (or dropped), the service named.
pub fn subgraph_error(
    error: JsonValue,
    service: &str,
    map_path: &dyn Fn(&[JsonValue]) -> Option<Vec<JsonValue>>,
) -> Option<GraphQLError> {
    let JsonValue::Object(mut map) = error else { return None };
    let message = map
        .remove("message")
        .and_then(|m| m.as_str().map(str::to_string))
        .unwrap_or_else(|| "subgraph error".into());
    let mut out = GraphQLError::new(message, None, &Default::default());
    if let Some(JsonValue::Array(path)) = map.remove("path")
        && let Some(mapped) = map_path(&path)
    {
        out.path = mapped
            .into_iter()
            .filter_map(|seg| match seg {
                JsonValue::String(s) => Some(ResponseDataPathSegment::Field(
                    apollo_compiler::Name::new(s.as_str()).ok()?,
                )),
                JsonValue::Number(n) => {
                    n.as_u64().map(|i| ResponseDataPathSegment::ListIndex(i as usize))
                }
                _ => None,
            })
            .collect();
    }
    if let Some(JsonValue::Object(extensions)) = map.remove("extensions") {
        out.extensions = extensions;
    }
    out.extensions.insert("serviceName", json!(service));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn none() -> PossibleTypes {
        PossibleTypes::new()
    }

    #[test]
    fn type_conditions_on_interfaces_match_their_implementations() {
        let possible = PossibleTypes::from([("Node".to_string(), ["Book".to_string()].into())]);
        let data = json!({ "n": { "__typename": "Book", "id": "1" } });
        let path =
            [f("n"), FlattenNodePathSegment::TypeCondition(BTreeSet::from(["Node".to_string()]))];
        assert_eq!(collect_entities(&data, &path, &possible).len(), 1);
        assert!(collect_entities(&data, &path, &none()).is_empty());
    }

    fn f(name: &str) -> FlattenNodePathSegment {
        FlattenNodePathSegment::Field(name.into())
    }

    #[test]
    fn entities_are_found_through_lists_and_type_conditions_skipping_nulls() {
        let data = json!({ "products": [
            { "__typename": "Book", "id": "1" },
            null,
            { "__typename": "Film", "id": "2" },
            { "__typename": "Book", "id": "3" },
        ]});
        let path = [f("products"), FlattenNodePathSegment::List];
        let all = collect_entities(&data, &path, &none());
        assert_eq!(all.len(), 3);
        let book_path = [
            f("products"),
            FlattenNodePathSegment::List,
            FlattenNodePathSegment::TypeCondition(BTreeSet::from(["Book".to_string()])),
        ];
        let books = collect_entities(&data, &book_path, &none());
        let paths: Vec<_> = books.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            paths,
            vec![
                vec![PathElem::Key("products"), PathElem::Index(0)],
                vec![PathElem::Key("products"), PathElem::Index(3)]
            ]
        );
    }

    #[test]
    fn merging_is_deep_and_in_place() {
        let mut data = json!({ "a": { "list": [ { "id": 1 }, { "id": 2 } ] } });
        merge_at(
            &mut data,
            &[PathElem::Key("a"), PathElem::Key("list"), PathElem::Index(1)],
            json!({ "name": "two" }),
        );
        deep_merge(&mut data, json!({ "a": { "extra": true } }));
        assert_eq!(
            data,
            json!({ "a": { "list": [ { "id": 1 }, { "id": 2, "name": "two" } ], "extra": true } })
        );
        // A path that no longer exists is ignored rather than invented.
        merge_at(&mut data, &[PathElem::Key("missing")], json!({ "x": 1 }));
        assert!(data.get("missing").is_none());
    }

    #[test]
    fn rewrites_set_values_and_rename_keys_only_where_the_type_matches() {
        use hive_router_query_planner::planner::plan_nodes::{KeyRenamer, ValueSetter};
        let setter = FetchRewrite::ValueSetter(ValueSetter {
            path: vec![
                FetchNodePathSegment::TypenameEquals(BTreeSet::from(["Book".to_string()])),
                FetchNodePathSegment::Key("__typename".into()),
            ],
            set_value_to: "Media".into(),
        });
        let mut book = json!({ "__typename": "Book", "id": "1" });
        let mut film = json!({ "__typename": "Film", "id": "2" });
        apply_output_rewrites(&mut book, Some(std::slice::from_ref(&setter)), &none());
        apply_output_rewrites(&mut film, Some(std::slice::from_ref(&setter)), &none());
        assert_eq!(book["__typename"], "Media");
        assert_eq!(film["__typename"], "Film");
        let renamer = FetchRewrite::KeyRenamer(KeyRenamer {
            path: vec![FetchNodePathSegment::Key("_alias_0".into())],
            rename_key_to: "price".into(),
        });
        let mut value = json!([{ "_alias_0": 5 }, { "_alias_0": 6 }]);
        apply_output_rewrites(&mut value, Some(&[renamer]), &none());
        assert_eq!(value, json!([{ "price": 5 }, { "price": 6 }]));
    }

    #[test]
    fn subgraph_errors_keep_their_message_and_name_the_service() {
        let error = json!({ "message": "boom", "path": ["_entities", 1, "name"], "extensions": { "code": "X" } });
        let mapped = subgraph_error(error, "reviews", &|p| {
            Some(vec![json!("products"), json!(4), p[2].clone()])
        })
        .unwrap();
        assert_eq!(mapped.message, "boom");
        assert_eq!(
            serde_json::to_value(&mapped.path).unwrap(),
            serde_json::json!(["products", 4, "name"])
        );
        assert_eq!(mapped.extensions.get("serviceName"), Some(&json!("reviews")));
        assert_eq!(mapped.extensions.get("code"), Some(&json!("X")));
    }
}
