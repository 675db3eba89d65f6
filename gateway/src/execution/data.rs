//! The response tree during execution: finding entities under a plan path, writing their
//! representations, merging fetched data back in place, plan rewrites, and subgraph errors.

use apollo_compiler::response::{GraphQLError, JsonValue, ResponseDataPathSegment};
use serde_json_bytes::json;

use super::value::Value;
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

/// True when `value` is an object whose `__typename` matches one of `conditions`.
fn typename_fits<'c>(
    value: &Value<'_>,
    mut conditions: impl Iterator<Item = &'c String>,
    possible: &PossibleTypes,
) -> bool {
    value.typename().is_some_and(|t| conditions.any(|c| fits(possible, c, &t)))
}

/// Every non-null object found by following `path` from `root`, with where it was found.
pub fn collect_entities<'v, 'a, 'p>(
    root: &'v Value<'a>,
    path: &'p [FlattenNodePathSegment],
    possible: &PossibleTypes,
) -> Vec<(Vec<PathElem<'p>>, &'v Value<'a>)> {
    let mut out = Vec::new();
    walk(root, path, possible, &mut Vec::new(), &mut out);
    out
}

fn walk<'v, 'a, 'p>(
    value: &'v Value<'a>,
    path: &'p [FlattenNodePathSegment],
    possible: &PossibleTypes,
    at: &mut Vec<PathElem<'p>>,
    out: &mut Vec<(Vec<PathElem<'p>>, &'v Value<'a>)>,
) {
    match (path.first(), value) {
        (_, Value::Null) => {}
        (None, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                at.push(PathElem::Index(i));
                walk(item, path, possible, at, out);
                at.pop();
            }
        }
        (None, Value::Object(_)) => out.push((at.clone(), value)),
        (None, _) => {}
        (Some(FlattenNodePathSegment::Field(name)), Value::Object(_)) => {
            if let Some(next) = value.get(name) {
                at.push(PathElem::Key(name.as_str()));
                walk(next, &path[1..], possible, at, out);
                at.pop();
            }
        }
        (Some(FlattenNodePathSegment::List), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                at.push(PathElem::Index(i));
                walk(item, &path[1..], possible, at, out);
                at.pop();
            }
        }
        (Some(FlattenNodePathSegment::TypeCondition(types)), Value::Object(_))
            if typename_fits(value, types.iter(), possible) =>
        {
            walk(value, &path[1..], possible, at, out);
        }
        _ => {}
    }
}

/// Visits mutably, in the order [`collect_entities`] finds them, the objects at `path`, with
/// where each is.
pub fn visit_entities_mut<'a, 'p>(
    root: &mut Value<'a>,
    path: &'p [FlattenNodePathSegment],
    possible: &PossibleTypes,
    visit: &mut dyn FnMut(&[PathElem<'p>], &mut Value<'a>),
) {
    walk_mut(root, path, possible, &mut Vec::new(), visit);
}

fn walk_mut<'a, 'p>(
    value: &mut Value<'a>,
    path: &'p [FlattenNodePathSegment],
    possible: &PossibleTypes,
    at: &mut Vec<PathElem<'p>>,
    visit: &mut dyn FnMut(&[PathElem<'p>], &mut Value<'a>),
) {
    match path.first() {
        _ if value.is_null() => {}
        None => match value {
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    at.push(PathElem::Index(i));
                    walk_mut(item, path, possible, at, visit);
                    at.pop();
                }
            }
            Value::Object(_) => visit(at, value),
            _ => {}
        },
        Some(FlattenNodePathSegment::Field(name)) => {
            if let Value::Object(fields) = value
                && let Some((_, next)) = fields.iter_mut().find(|(k, _)| *k == name.as_str())
            {
                at.push(PathElem::Key(name.as_str()));
                walk_mut(next, &path[1..], possible, at, visit);
                at.pop();
            }
        }
        Some(FlattenNodePathSegment::List) => {
            if let Value::Array(items) = value {
                for (i, item) in items.iter_mut().enumerate() {
                    at.push(PathElem::Index(i));
                    walk_mut(item, &path[1..], possible, at, visit);
                    at.pop();
                }
            }
        }
        Some(FlattenNodePathSegment::TypeCondition(types)) => {
            if matches!(value, Value::Object(_)) && typename_fits(value, types.iter(), possible) {
                walk_mut(value, &path[1..], possible, at, visit);
            }
        }
    }
}

/// True when two paths into the tree are the same. Keys normally come from the same plan
/// strings, so their addresses are compared before their text.
pub fn same_path(a: &[PathElem<'_>], b: &[PathElem<'_>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (PathElem::Index(x), PathElem::Index(y)) => x == y,
            (PathElem::Key(x), PathElem::Key(y)) => {
                (x.as_ptr() == y.as_ptr() && x.len() == y.len()) || x == y
            }
            _ => false,
        })
}

/// The representation of `entity` for an `_entities` fetch: the `requires` selection projected
/// from it (under the names the subgraph expects), with the plan's input rewrites applied.
/// `None` when the entity lacks a field the selection needs (an earlier subgraph could not
/// resolve it) or is of a type the selection does not cover: such an entity is not sent, and
/// keeps what it already has.
pub fn representation<'a>(
    entity: &Value<'a>,
    requires: &'a [SelectionItem],
    rewrites: Option<&'a [FetchRewrite]>,
    possible: &PossibleTypes,
) -> Option<Value<'a>> {
    let mut projector = Representation { possible, complete: true };
    let mut rep = projector.project(entity, requires);
    // An entity no type condition of the selection matched has nothing to send.
    if !projector.complete || rep.get("__typename").is_none() {
        return None;
    }
    for rewrite in rewrites.unwrap_or_default() {
        apply_rewrite(&mut rep, rewrite, possible);
    }
    Some(rep)
}

/// Projects a `requires` selection out of an entity, noting whether anything was missing.
struct Representation<'p> {
    possible: &'p PossibleTypes,
    complete: bool,
}

impl Representation<'_> {
    fn project<'a>(&mut self, value: &Value<'a>, items: &'a [SelectionItem]) -> Value<'a> {
        match value {
            Value::Object(_) => {
                let mut out = Vec::with_capacity(items.len());
                self.project_into(value, items, &mut out);
                Value::Object(out)
            }
            Value::Array(list) => {
                Value::Array(list.iter().map(|v| self.project(v, items)).collect())
            }
            other => other.clone(),
        }
    }

    fn project_into<'a>(
        &mut self,
        value: &Value<'a>,
        items: &'a [SelectionItem],
        out: &mut Vec<(&'a str, Value<'a>)>,
    ) {
        for item in items {
            match item {
                SelectionItem::Field(field) => {
                    // In a `requires` selection `price: _internal_qp_alias_0` reads the data
                    // under the field's name and writes the key the alias gives.
                    match value.get(&field.name) {
                        Some(v) => {
                            let projected = if field.selections.items.is_empty() {
                                v.clone()
                            } else {
                                self.project(v, &field.selections.items)
                            };
                            let key = field.alias.as_deref().unwrap_or(&field.name);
                            out.push((key, projected));
                        }
                        None => self.complete = false,
                    }
                }
                SelectionItem::InlineFragment(fragment) => {
                    let applies = value
                        .typename()
                        .is_none_or(|t| fits(self.possible, &fragment.type_condition, &t));
                    if applies {
                        self.project_into(value, &fragment.selections.items, out);
                    }
                }
                SelectionItem::FragmentSpread(_) => {}
            }
        }
    }
}

/// Applies the plan's output rewrites to a fetched value.
pub fn apply_output_rewrites<'a>(
    value: &mut Value<'a>,
    rewrites: Option<&'a [FetchRewrite]>,
    possible: &PossibleTypes,
) {
    for rewrite in rewrites.unwrap_or_default() {
        apply_rewrite(value, rewrite, possible);
    }
}

fn apply_rewrite<'a>(value: &mut Value<'a>, rewrite: &'a FetchRewrite, possible: &PossibleTypes) {
    match rewrite {
        FetchRewrite::ValueSetter(setter) => {
            // Type names are GraphQL names: nothing in them needs escaping.
            rewrite_at(value, &setter.path, possible, &mut |target| {
                *target = Value::String(setter.set_value_to.as_str())
            });
        }
        FetchRewrite::KeyRenamer(renamer) => {
            let Some((FetchNodePathSegment::Key(old), parent)) = renamer.path.split_last() else {
                return;
            };
            rewrite_at(value, parent, possible, &mut |target| {
                if let Value::Object(fields) = target
                    && let Some(field) = fields.iter_mut().find(|(k, _)| *k == old.as_str())
                {
                    field.0 = renamer.rename_key_to.as_str();
                }
            });
        }
    }
}

fn rewrite_at<'a>(
    value: &mut Value<'a>,
    path: &[FetchNodePathSegment],
    possible: &PossibleTypes,
    action: &mut dyn FnMut(&mut Value<'a>),
) {
    if let Value::Array(items) = value {
        for item in items {
            rewrite_at(item, path, possible, action);
        }
        return;
    }
    match path.first() {
        None => action(value),
        Some(FetchNodePathSegment::Key(key)) => {
            if let Value::Object(fields) = value
                && let Some((_, next)) = fields.iter_mut().find(|(k, _)| *k == key.as_str())
            {
                rewrite_at(next, &path[1..], possible, action);
            }
        }
        Some(FetchNodePathSegment::TypenameEquals(types)) => {
            if typename_fits(value, types.iter(), possible) {
                rewrite_at(value, &path[1..], possible, action);
            }
        }
    }
}

/// Merges `src` into `dst`: objects key by key, lists of equal length item by item.
pub fn deep_merge<'a>(dst: &mut Value<'a>, src: Value<'a>) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            if d.is_empty() {
                *d = s;
                return;
            }
            for (k, v) in s {
                match d.iter_mut().find(|(dk, _)| *dk == k) {
                    Some((_, existing)) => deep_merge(existing, v),
                    None => d.push((k, v)),
                }
            }
        }
        (Value::Array(d), Value::Array(s)) if d.len() == s.len() => {
            for (dv, sv) in d.iter_mut().zip(s) {
                deep_merge(dv, sv);
            }
        }
        (dst, src) => *dst = src,
    }
}

/// The value at `path`, when it is still there.
pub fn target_at<'v, 'a>(
    root: &'v mut Value<'a>,
    path: &[PathElem<'_>],
) -> Option<&'v mut Value<'a>> {
    let mut target = root;
    for elem in path {
        target = match (elem, target) {
            (PathElem::Key(k), Value::Object(fields)) => {
                fields.iter_mut().find(|(key, _)| key == k).map(|(_, v)| v)?
            }
            (PathElem::Index(i), Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(target)
}

/// Merges `value` into the object at `path`.
pub fn merge_at<'a>(root: &mut Value<'a>, path: &[PathElem<'_>], value: Value<'a>) {
    if let Some(target) = target_at(root, path) {
        deep_merge(target, value);
    }
}

/// A subgraph's error as a client error: path mapped (or dropped), the service named.
pub fn subgraph_error(
    error: &Value<'_>,
    service: &str,
    map_path: &dyn Fn(&[JsonValue]) -> Option<Vec<JsonValue>>,
) -> Option<GraphQLError> {
    let JsonValue::Object(mut map) = error.to_json() else { return None };
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
    use crate::execution::value::from_json;
    use std::collections::BTreeSet;

    fn none() -> PossibleTypes {
        PossibleTypes::new()
    }

    #[test]
    fn type_conditions_on_interfaces_match_their_implementations() {
        let possible = PossibleTypes::from([("Node".to_string(), ["Book".to_string()].into())]);
        let data = from_json(&json!({ "n": { "__typename": "Book", "id": "1" } }));
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
        let data = from_json(&json!({ "products": [
            { "__typename": "Book", "id": "1" },
            null,
            { "__typename": "Film", "id": "2" },
            { "__typename": "Book", "id": "3" },
        ]}));
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
        let mut data = from_json(&json!({ "a": { "list": [ { "id": 1 }, { "id": 2 } ] } }));
        merge_at(
            &mut data,
            &[PathElem::Key("a"), PathElem::Key("list"), PathElem::Index(1)],
            from_json(&json!({ "name": "two" })),
        );
        deep_merge(&mut data, from_json(&json!({ "a": { "extra": true } })));
        assert_eq!(
            data.to_json(),
            json!({ "a": { "list": [ { "id": 1 }, { "id": 2, "name": "two" } ], "extra": true } })
        );
        // A path that no longer exists is ignored rather than invented.
        merge_at(&mut data, &[PathElem::Key("missing")], from_json(&json!({ "x": 1 })));
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
        let mut book = from_json(&json!({ "__typename": "Book", "id": "1" }));
        let mut film = from_json(&json!({ "__typename": "Film", "id": "2" }));
        apply_output_rewrites(&mut book, Some(std::slice::from_ref(&setter)), &none());
        apply_output_rewrites(&mut film, Some(std::slice::from_ref(&setter)), &none());
        assert_eq!(book.to_json()["__typename"], "Media");
        assert_eq!(film.to_json()["__typename"], "Film");
        let renamer = FetchRewrite::KeyRenamer(KeyRenamer {
            path: vec![FetchNodePathSegment::Key("_alias_0".into())],
            rename_key_to: "price".into(),
        });
        let mut value = from_json(&json!([{ "_alias_0": 5 }, { "_alias_0": 6 }]));
        let renamers = [renamer];
        apply_output_rewrites(&mut value, Some(&renamers), &none());
        assert_eq!(value.to_json(), json!([{ "price": 5 }, { "price": 6 }]));
    }

    #[test]
    fn subgraph_errors_keep_their_message_and_name_the_service() {
        let error = json!({ "message": "boom", "path": ["_entities", 1, "name"], "extensions": { "code": "X" } });
        let mapped = subgraph_error(&from_json(&error), "reviews", &|p| {
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
