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

/// A null in a non-null position, travelling up to the nearest nullable ancestor.
struct Bubble;

/// One projection.
pub struct Projection<'a> {
    schema: &'a Schema,
    implementers: &'a HashMap<Name, Implementers>,
    variables: &'a JsonMap,
    path: Vec<ResponseDataPathSegment>,
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
        selections: &SelectionSet,
        data: &JsonValue,
    ) -> Option<JsonMap> {
        let mut out = JsonMap::new();
        match self.object(data.as_object(), root_type, selections, &mut out) {
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
        selections: &SelectionSet,
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
                    self.path.push(ResponseDataPathSegment::Field(Name::new_unchecked(key)));
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
                    if !self.skipped(&fragment.skip_if, &fragment.include_if)
                        && self.applies(&fragment.type_condition, type_name)
                    {
                        self.object(map, type_name, &fragment.selections, out)?;
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
        selections: &SelectionSet,
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
                    self.path.push(ResponseDataPathSegment::ListIndex(i));
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
                    let type_name = self.object_type(map, name);
                    let mut out = JsonMap::new();
                    let result = self.object(Some(map), &type_name, selections, &mut out);
                    nullable(result.map(|()| JsonValue::Object(out)))
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

    /// The concrete type to read `map` as: the `__typename` the subgraph sent when it names an
    /// object type; otherwise (none, or an interface name from an `@interfaceObject` subgraph)
    /// the declared type if it is an object type, or one of its implementations.
    fn object_type(&self, map: &JsonMap, declared: &Name) -> String {
        if let Some(sent) = map.get("__typename").and_then(|t| t.as_str())
            && matches!(self.schema.types.get(sent), Some(ExtendedType::Object(_)))
        {
            return sent.to_string();
        }
        match self.schema.types.get(declared) {
            Some(ExtendedType::Union(union)) => {
                union.members.iter().next().map(|m| m.name.to_string())
            }
            Some(ExtendedType::Interface(_)) => self
                .implementers
                .get(declared)
                .and_then(|i| i.objects.iter().next())
                .map(|n| n.to_string()),
            _ => None,
        }
        .unwrap_or_else(|| declared.to_string())
    }

    fn null_error(&mut self, parent: &str, field: &str) {
        let message = format!("Cannot return null for non-nullable field {parent}.{field}.");
        let mut error = GraphQLError::new(message, None, &Default::default());
        error.path = self.path.clone();
        self.errors.push(error);
    }

    fn invalid(&mut self, expected: &str, parent: &str, field: &str) -> Result<JsonValue, Bubble> {
        let message = format!("The subgraph did not return {expected} for {parent}.{field}.");
        let mut error = GraphQLError::new(message, None, &Default::default());
        error.path = self.path.clone();
        self.errors.push(error);
        Err(Bubble)
    }
}
