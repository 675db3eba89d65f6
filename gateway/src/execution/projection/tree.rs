//! Projection into a tree, for operations whose objects may select a response key twice.

use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::schema::{ExtendedType, Type};
use serde_json_bytes::ByteString;

use super::{Bubble, Projection, Seg};
use crate::planning::{SelectionItem, SelectionSet};

impl<'a> Projection<'a> {
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
                        Some(existing) => crate::execution::data::deep_merge(existing, completed),
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
}
