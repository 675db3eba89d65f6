//! Projection: the client's exact selection, in the client's order, read from the merged
//! response tree, with GraphQL's null propagation: a null (or missing) value in a non-null
//! position nulls the nearest nullable ancestor and is reported once, at its own path.
//!
//! It walks the normalised operation (fragments inlined, abstract selections expanded to
//! concrete types, `@skip`/`@include` left as variable conditions) with the API schema for
//! field types. Operations that introspect go through [`super::introspection`] instead.

use apollo_compiler::response::{GraphQLError, JsonMap, JsonValue, ResponseDataPathSegment};
use apollo_compiler::schema::{ExtendedType, Implementers, Type};
use apollo_compiler::{Name, Schema, collections::HashMap};
use serde_json_bytes::ByteString;

use crate::planning::{SelectionItem, SelectionSet};

/// A step of the path being projected, borrowed from the operation (no allocation per field).
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A null in a non-null position, travelling up to the nearest nullable ancestor.
struct Bubble;

/// One projection.
pub struct Projection<'a> {
    schema: &'a Schema,
    implementers: &'a HashMap<Name, Implementers>,
    variables: &'a JsonMap,
    path: Vec<Seg<'a>>,
    /// Null-propagation errors, at the path of the value that was null.
    pub errors: Vec<GraphQLError>,
}

impl<'a> Projection<'a> {
    /// A projection over `schema` with the operation's coerced `variables`.
    pub fn new(
        schema: &'a Schema,
        implementers: &'a HashMap<Name, Implementers>,
        variables: &'a JsonMap,
    ) -> Self {
        Self { schema, implementers, variables, path: Vec::new(), errors: Vec::new() }
    }

    /// Projects `data` (the merged tree) through the operation's root `selections`.
    /// `None` when a null reached `data` itself.
    pub fn run(
        &mut self,
        root_type: &str,
        selections: &'a SelectionSet,
        data: &JsonValue,
    ) -> Option<JsonMap> {
        let mut out = JsonMap::new();
        match self.object(data.as_object(), root_type, true, selections, &mut out) {
            Ok(()) => Some(out),
            Err(Bubble) => None,
        }
    }

    fn skipped(&self, skip_if: &Option<String>, include_if: &Option<String>) -> bool {
        let var = |name: &String| {
            matches!(self.variables.get(name.as_str()), Some(JsonValue::Bool(true)))
        };
        skip_if.as_ref().is_some_and(var) || include_if.as_ref().is_some_and(|n| !var(n))
    }

    fn applies(&self, condition: &str, type_name: &str) -> bool {
        condition == type_name
            || match self.schema.types.get(condition) {
                Some(ExtendedType::Interface(_)) => {
                    self.implementers.get(condition).is_some_and(|i| i.objects.contains(type_name))
                }
                Some(ExtendedType::Union(u)) => u.members.contains(type_name),
                _ => false,
            }
    }

    fn object(
        &mut self,
        map: Option<&JsonMap>,
        type_name: &str,
        known: bool,
        selections: &'a SelectionSet,
        out: &mut JsonMap,
    ) -> Result<(), Bubble> {
        for item in &selections.items {
            match item {
                SelectionItem::Field(field) => {
                    if field.omit_from_response || self.skipped(&field.skip_if, &field.include_if) {
                        continue;
                    }
                    let key = field.alias.as_deref().unwrap_or(&field.name);
                    if field.name == "__typename" {
                        out.insert(ByteString::from(key), JsonValue::String(type_name.into()));
                        continue;
                    }
                    let Some(definition) = self.schema.type_field(type_name, &field.name).ok()
                    else {
                        continue; // not in the API schema: nothing to show
                    };
                    let value = map.and_then(|m| m.get(key));
                    self.path.push(Seg::Key(key));
                    let completed = self.complete(
                        value,
                        &definition.ty,
                        &field.selections,
                        type_name,
                        &field.name,
                    );
                    self.path.pop();
                    let completed = completed?;
                    match out.get_mut(key) {
                        // The same key selected again (from another fragment): merge objects.
                        Some(existing) => super::data::deep_merge(existing, completed),
                        None => {
                            out.insert(ByteString::from(key), completed);
                        }
                    }
                }
                SelectionItem::InlineFragment(fragment) => {
                    // When the concrete type is unknown, only conditions on abstract types can apply.
                    let concrete_condition = matches!(
                        self.schema.types.get(fragment.type_condition.as_str()),
                        Some(ExtendedType::Object(_))
                    );
                    if !self.skipped(&fragment.skip_if, &fragment.include_if)
                        && (known || !concrete_condition)
                        && self.applies(&fragment.type_condition, type_name)
                    {
                        self.object(map, type_name, known, &fragment.selections, out)?;
                    }
                }
                SelectionItem::FragmentSpread(_) => {}
            }
        }
        Ok(())
    }

    fn complete(
        &mut self,
        value: Option<&JsonValue>,
        ty: &Type,
        selections: &'a SelectionSet,
        parent: &str,
        field: &str,
    ) -> Result<JsonValue, Bubble> {
        let value = match value {
            None | Some(JsonValue::Null) => {
                if ty.is_non_null() {
                    self.null_error(parent, field);
                    return Err(Bubble);
                }
                return Ok(JsonValue::Null);
            }
            Some(v) => v,
        };
        let nullable = |result: Result<JsonValue, Bubble>| match result {
            Err(Bubble) if !ty.is_non_null() => Ok(JsonValue::Null),
            other => other,
        };
        match ty {
            Type::List(item) | Type::NonNullList(item) => {
                let JsonValue::Array(items) = value else {
                    return nullable(self.invalid("a list", parent, field));
                };
                let mut out = Vec::with_capacity(items.len());
                let mut failed = false;
                for (i, v) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i));
                    let completed = self.complete(Some(v), item, selections, parent, field);
                    self.path.pop();
                    match completed {
                        Ok(v) => out.push(v),
                        Err(Bubble) => {
                            failed = true;
                            break;
                        }
                    }
                }
                nullable(if failed { Err(Bubble) } else { Ok(JsonValue::Array(out)) })
            }
            Type::Named(name) | Type::NonNullNamed(name) => match self.schema.types.get(name) {
                Some(
                    ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_),
                ) => {
                    let JsonValue::Object(map) = value else {
                        return nullable(self.invalid("an object", parent, field));
                    };
                    // An object of a type the API schema hides (`@inaccessible`) is no value.
                    let sent = map.get("__typename").and_then(|t| t.as_str());
                    if sent.is_some_and(|t| !self.schema.types.contains_key(t)) {
                        if ty.is_non_null() {
                            self.null_error(parent, field);
                            return Err(Bubble);
                        }
                        return Ok(JsonValue::Null);
                    }
                    let (type_name, known) = self.object_type(map, name);
                    let mut out = JsonMap::new();
                    let result = self.object(Some(map), &type_name, known, selections, &mut out);
                    nullable(result.map(|()| JsonValue::Object(out)))
                }
                // An enum value the API schema does not have (`@inaccessible`) is no value.
                Some(ExtendedType::Enum(e))
                    if !value.as_str().is_some_and(|v| e.values.contains_key(v)) =>
                {
                    if ty.is_non_null() {
                        self.null_error(parent, field);
                        return Err(Bubble);
                    }
                    Ok(JsonValue::Null)
                }
                _ if name == "Float" && (value.is_i64() || value.is_u64()) => {
                    // Float result coercion accepts integers.
                    let float =
                        value.as_f64().and_then(serde_json_bytes::serde_json::Number::from_f64);
                    Ok(float.map_or(JsonValue::Null, JsonValue::Number))
                }
                _ => Ok(value.clone()),
            },
        }
    }

    /// The concrete type to read `map` as, and whether it is known: the `__typename` the
    /// subgraph sent when it names an object type, or the declared type when that is an object
    /// type; otherwise (an interface name from an `@interfaceObject` subgraph, say) one of the
    /// implementations, whose fields include the interface's, marked unknown so that
    /// fragments on concrete types do not apply.
    fn object_type(&self, map: &JsonMap, declared: &Name) -> (String, bool) {
        if let Some(sent) = map.get("__typename").and_then(|t| t.as_str())
            && matches!(self.schema.types.get(sent), Some(ExtendedType::Object(_)))
        {
            return (sent.to_string(), true);
        }
        let fallback = match self.schema.types.get(declared) {
            Some(ExtendedType::Object(_)) => return (declared.to_string(), true),
            Some(ExtendedType::Union(union)) => {
                union.members.iter().next().map(|m| m.name.to_string())
            }
            Some(ExtendedType::Interface(_)) => self
                .implementers
                .get(declared)
                .and_then(|i| i.objects.iter().next())
                .map(|n| n.to_string()),
            _ => None,
        };
        (fallback.unwrap_or_else(|| declared.to_string()), false)
    }

    fn error_path(&self) -> Vec<ResponseDataPathSegment> {
        self.path
            .iter()
            .map(|seg| match seg {
                Seg::Key(k) => ResponseDataPathSegment::Field(Name::new_unchecked(k)),
                Seg::Index(i) => ResponseDataPathSegment::ListIndex(*i),
            })
            .collect()
    }

    fn null_error(&mut self, parent: &str, field: &str) {
        let message = format!("Cannot return null for non-nullable field {parent}.{field}.");
        let mut error = GraphQLError::new(message, None, &Default::default());
        error.path = self.error_path();
        self.errors.push(error);
    }

    fn invalid(&mut self, expected: &str, parent: &str, field: &str) -> Result<JsonValue, Bubble> {
        let message = format!("The subgraph did not return {expected} for {parent}.{field}.");
        let mut error = GraphQLError::new(message, None, &Default::default());
        error.path = self.error_path();
        self.errors.push(error);
        Err(Bubble)
    }
}

impl<'a> Projection<'a> {
    /// Writes the projected `data` as JSON straight into `buf`, without building a tree;
    /// false when a null reached `data` (nothing written then). Only for operations whose
    /// objects never select a response key twice (see `PreparedOperation::repeats_keys`):
    /// those need [`Projection::run`], which merges.
    pub fn write(
        &mut self,
        root_type: &str,
        selections: &'a SelectionSet,
        data: &JsonValue,
        buf: &mut Vec<u8>,
    ) -> bool {
        let start = buf.len();
        match self.write_object(data.as_object(), root_type, true, selections, buf) {
            Ok(()) => true,
            Err(Bubble) => {
                buf.truncate(start);
                false
            }
        }
    }

    fn write_object(
        &mut self,
        map: Option<&JsonMap>,
        type_name: &str,
        known: bool,
        selections: &'a SelectionSet,
        buf: &mut Vec<u8>,
    ) -> Result<(), Bubble> {
        buf.push(b'{');
        let mut first = true;
        self.write_fields(map, type_name, known, selections, buf, &mut first)?;
        buf.push(b'}');
        Ok(())
    }

    fn write_fields(
        &mut self,
        map: Option<&JsonMap>,
        type_name: &str,
        known: bool,
        selections: &'a SelectionSet,
        buf: &mut Vec<u8>,
        first: &mut bool,
    ) -> Result<(), Bubble> {
        for item in &selections.items {
            match item {
                SelectionItem::Field(field) => {
                    if field.omit_from_response || self.skipped(&field.skip_if, &field.include_if) {
                        continue;
                    }
                    let key = field.alias.as_deref().unwrap_or(&field.name);
                    let definition = if field.name == "__typename" {
                        None
                    } else {
                        match self.schema.type_field(type_name, &field.name) {
                            Ok(d) => Some(d),
                            Err(_) => continue, // not in the API schema: nothing to show
                        }
                    };
                    if *first {
                        *first = false;
                    } else {
                        buf.push(b',');
                    }
                    // Response keys are GraphQL names: nothing to escape.
                    buf.push(b'"');
                    buf.extend_from_slice(key.as_bytes());
                    buf.extend_from_slice(b"\":");
                    let Some(definition) = definition else {
                        buf.push(b'"');
                        buf.extend_from_slice(type_name.as_bytes());
                        buf.push(b'"');
                        continue;
                    };
                    let value = map.and_then(|m| m.get(key));
                    self.path.push(Seg::Key(key));
                    let written = self.write_value(
                        value,
                        &definition.ty,
                        &field.selections,
                        type_name,
                        &field.name,
                        buf,
                    );
                    self.path.pop();
                    written?;
                }
                SelectionItem::InlineFragment(fragment) => {
                    let concrete_condition = matches!(
                        self.schema.types.get(fragment.type_condition.as_str()),
                        Some(ExtendedType::Object(_))
                    );
                    if !self.skipped(&fragment.skip_if, &fragment.include_if)
                        && (known || !concrete_condition)
                        && self.applies(&fragment.type_condition, type_name)
                    {
                        self.write_fields(map, type_name, known, &fragment.selections, buf, first)?;
                    }
                }
                SelectionItem::FragmentSpread(_) => {}
            }
        }
        Ok(())
    }

    fn write_value(
        &mut self,
        value: Option<&JsonValue>,
        ty: &Type,
        selections: &'a SelectionSet,
        parent: &str,
        field: &str,
        buf: &mut Vec<u8>,
    ) -> Result<(), Bubble> {
        let start = buf.len();
        let result = self.write_value_inner(value, ty, selections, parent, field, buf);
        match result {
            // A nullable position absorbs a null from below: rewind and write null.
            Err(Bubble) if !ty.is_non_null() => {
                buf.truncate(start);
                buf.extend_from_slice(b"null");
                Ok(())
            }
            other => other,
        }
    }

    fn write_value_inner(
        &mut self,
        value: Option<&JsonValue>,
        ty: &Type,
        selections: &'a SelectionSet,
        parent: &str,
        field: &str,
        buf: &mut Vec<u8>,
    ) -> Result<(), Bubble> {
        let value = match value {
            None | Some(JsonValue::Null) => {
                if ty.is_non_null() {
                    self.null_error(parent, field);
                    return Err(Bubble);
                }
                buf.extend_from_slice(b"null");
                return Ok(());
            }
            Some(v) => v,
        };
        match ty {
            Type::List(item) | Type::NonNullList(item) => {
                let JsonValue::Array(items) = value else {
                    let _ = self.invalid("a list", parent, field);
                    return Err(Bubble);
                };
                buf.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    self.path.push(Seg::Index(i));
                    let written = self.write_value(Some(v), item, selections, parent, field, buf);
                    self.path.pop();
                    written?;
                }
                buf.push(b']');
                Ok(())
            }
            Type::Named(name) | Type::NonNullNamed(name) => match self.schema.types.get(name) {
                Some(
                    ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_),
                ) => {
                    let JsonValue::Object(map) = value else {
                        let _ = self.invalid("an object", parent, field);
                        return Err(Bubble);
                    };
                    let sent = map.get("__typename").and_then(|t| t.as_str());
                    if sent.is_some_and(|t| !self.schema.types.contains_key(t)) {
                        // An object of a type the API schema hides is no value.
                        if ty.is_non_null() {
                            self.null_error(parent, field);
                            return Err(Bubble);
                        }
                        buf.extend_from_slice(b"null");
                        return Ok(());
                    }
                    let (type_name, known) = self.object_type(map, name);
                    self.write_object(Some(map), &type_name, known, selections, buf)
                }
                Some(ExtendedType::Enum(e))
                    if !value.as_str().is_some_and(|v| e.values.contains_key(v)) =>
                {
                    if ty.is_non_null() {
                        self.null_error(parent, field);
                        return Err(Bubble);
                    }
                    buf.extend_from_slice(b"null");
                    Ok(())
                }
                _ if name == "Float" && (value.is_i64() || value.is_u64()) => {
                    let float = value.as_f64().unwrap_or_default();
                    let _ = serde_json::to_writer(&mut *buf, &float);
                    Ok(())
                }
                _ => {
                    let _ = serde_json::to_writer(&mut *buf, value);
                    Ok(())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planning::{FieldSelection, InlineFragmentSelection};
    use serde_json_bytes::json;

    const SDL: &str = "
        type Query { shelf: Shelf! maybe: Shelf items: [Item!] }
        type Shelf { name: String! books: [Book!]! note: String }
        interface Item { id: ID! }
        type Book implements Item { id: ID! title: String! rating: Float }
        type Film implements Item { id: ID! minutes: Int }
    ";

    fn field(name: &str, children: Vec<SelectionItem>) -> SelectionItem {
        SelectionItem::Field(FieldSelection {
            name: name.into(),
            selections: SelectionSet { items: children },
            ..Default::default()
        })
    }

    fn aliased(alias: &str, name: &str) -> SelectionItem {
        SelectionItem::Field(FieldSelection {
            name: name.into(),
            alias: Some(alias.into()),
            ..Default::default()
        })
    }

    fn on(type_condition: &str, children: Vec<SelectionItem>) -> SelectionItem {
        SelectionItem::InlineFragment(InlineFragmentSelection {
            type_condition: type_condition.into(),
            selections: SelectionSet { items: children },
            skip_if: None,
            include_if: None,
        })
    }

    fn run(
        selections: Vec<SelectionItem>,
        data: JsonValue,
        variables: JsonMap,
    ) -> (Option<JsonMap>, Vec<GraphQLError>) {
        let schema = Schema::parse_and_validate(SDL, "schema.graphql").unwrap();
        let implementers = schema.implementers_map();
        let selections = SelectionSet { items: selections };
        let mut projection = Projection::new(&schema, &implementers, &variables);
        let out = projection.run("Query", &selections, &data);
        // The streaming writer gives the same JSON and the same errors as the tree.
        let mut streamed = Projection::new(&schema, &implementers, &variables);
        let mut buf = Vec::new();
        if streamed.write("Query", &selections, &data, &mut buf) {
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                serde_json::to_string(out.as_ref().unwrap()).unwrap()
            );
        } else {
            assert!(out.is_none());
        }
        assert_eq!(format!("{:?}", streamed.errors), format!("{:?}", projection.errors));
        (out, projection.errors)
    }

    #[test]
    fn exactly_the_selection_in_client_order_with_aliases_and_typename() {
        let data = json!({ "shelf": { "books": [{ "title": "B", "id": "1", "rating": 4 }], "label": "S", "unasked": true } });
        let (out, errors) = run(
            vec![field(
                "shelf",
                vec![
                    aliased("label", "name"),
                    field("__typename", vec![]),
                    field("books", vec![field("title", vec![]), field("rating", vec![])]),
                ],
            )],
            data,
            JsonMap::new(),
        );
        assert!(errors.is_empty());
        let out = serde_json::to_string(&out.unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"shelf":{"label":"S","__typename":"Shelf","books":[{"title":"B","rating":4.0}]}}"#
        );
    }

    #[test]
    fn nulls_propagate_to_the_nearest_nullable_parent_with_one_error() {
        let data = json!({ "shelf": { "name": "S", "books": [{ "title": null }] }, "maybe": { "name": null } });
        let (out, errors) =
            run(vec![field("maybe", vec![field("name", vec![])])], data.clone(), JsonMap::new());
        assert_eq!(serde_json::to_string(&out.unwrap()).unwrap(), r#"{"maybe":null}"#);
        assert_eq!(
            serde_json::to_value(&errors[0].path).unwrap(),
            serde_json::json!(["maybe", "name"])
        );
        let (out, errors) = run(
            vec![field("shelf", vec![field("books", vec![field("title", vec![])])])],
            data,
            JsonMap::new(),
        );
        assert!(out.is_none(), "shelf, books and the book are non-null: data becomes null");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            serde_json::to_value(&errors[0].path).unwrap(),
            serde_json::json!(["shelf", "books", 0, "title"])
        );
    }

    #[test]
    fn fragments_apply_by_typename_and_conditions_by_variables() {
        let data = json!({ "items": [
            { "__typename": "Book", "id": "1", "title": "Dune" },
            { "__typename": "Film", "id": "2", "minutes": 155 },
            { "__typename": "Item", "id": "3" },
        ]});
        let mut skipped = FieldSelection { name: "id".into(), ..Default::default() };
        skipped.skip_if = Some("hide".into());
        let selections = vec![field(
            "items",
            vec![
                field("__typename", vec![]),
                SelectionItem::Field(skipped),
                on("Book", vec![field("title", vec![])]),
                on("Film", vec![field("minutes", vec![])]),
            ],
        )];
        let mut variables = JsonMap::new();
        variables.insert("hide", JsonValue::Bool(true));
        let (out, errors) = run(selections, data, variables);
        assert!(errors.is_empty(), "{errors:?}");
        // An interface name (from an @interfaceObject subgraph) reads as an implementation.
        assert_eq!(
            serde_json::to_string(&out.unwrap()).unwrap(),
            r#"{"items":[{"__typename":"Book","title":"Dune"},{"__typename":"Film","minutes":155},{"__typename":"Book"}]}"#
        );
    }
}
