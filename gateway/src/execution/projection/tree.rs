//! Projection into a tree, for operations whose objects may select a response key twice.

use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::schema::Type;
use serde_json_bytes::ByteString;

use super::plan::{Field, FieldType, Item, Set};
use super::{Bubble, Projection, Seg, Shape};
use crate::execution::value::Value;

impl<'a> Projection<'a> {
    /// Projects `data` (the merged tree) through the operation's root `selections`.
    /// `None` when a null reached `data` itself.
    pub fn run(
        &mut self,
        root_type: &str,
        selections: &'a Set,
        data: &Value<'_>,
    ) -> Option<JsonMap> {
        let mut out = JsonMap::new();
        let data = matches!(data, Value::Object(_)).then_some(data);
        match self.object(data, root_type, true, selections, &mut out) {
            Ok(()) => Some(out),
            Err(Bubble) => None,
        }
    }

    fn object(
        &mut self,
        map: Option<&Value<'_>>,
        type_name: &str,
        known: bool,
        selections: &'a Set,
        out: &mut JsonMap,
    ) -> Result<(), Bubble> {
        for item in &selections.items {
            match item {
                Item::Field(field) => {
                    if self.skipped(&field.skip_if, &field.include_if) {
                        continue;
                    }
                    let key = field.key.as_str();
                    if field.typename {
                        out.insert(ByteString::from(key), JsonValue::String(type_name.into()));
                        continue;
                    }
                    let Some(definition) = field.definition.on(type_name) else {
                        continue; // not in the API schema: nothing to show
                    };
                    let value = map.and_then(|m| m.get(key));
                    self.path.push(Seg::Key(key));
                    let completed =
                        self.complete(value, definition, &definition.ty, field, type_name);
                    self.path.pop();
                    let completed = completed?;
                    match out.get_mut(key) {
                        // The same key selected again (from another fragment): merge objects.
                        Some(existing) => merge_json(existing, completed),
                        None => {
                            out.insert(ByteString::from(key), completed);
                        }
                    }
                }
                Item::Fragment(fragment) => {
                    if self.fragment_applies(fragment, type_name, known) {
                        self.object(map, type_name, known, &fragment.set, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn complete(
        &mut self,
        value: Option<&Value<'_>>,
        definition: &'a FieldType,
        ty: &'a Type,
        field: &'a Field,
        parent: &str,
    ) -> Result<JsonValue, Bubble> {
        let completed = match self.shape(value, ty, &definition.kind, parent, &field.name) {
            Ok(Shape::Null) => Ok(JsonValue::Null),
            Ok(Shape::List(items, item)) => {
                let mut out = Vec::with_capacity(items.len());
                let mut result = Ok(());
                for (i, v) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i));
                    let completed = self.complete(Some(v), definition, item, field, parent);
                    self.path.pop();
                    match completed {
                        Ok(v) => out.push(v),
                        Err(bubble) => {
                            result = Err(bubble);
                            break;
                        }
                    }
                }
                result.map(|()| JsonValue::Array(out))
            }
            Ok(Shape::Object(map, type_name, known)) => {
                let mut out = JsonMap::new();
                let result = self.object(Some(map), &type_name, known, &field.set, &mut out);
                result.map(|()| JsonValue::Object(out))
            }
            Ok(Shape::Float(f)) => Ok(serde_json_bytes::serde_json::Number::from_f64(f)
                .map_or(JsonValue::Null, JsonValue::Number)),
            Ok(Shape::Leaf(v)) => Ok(v.to_json()),
            Err(bubble) => Err(bubble),
        };
        match completed {
            // A nullable position absorbs a null from below.
            Err(Bubble) if !ty.is_non_null() => Ok(JsonValue::Null),
            other => other,
        }
    }
}

/// Merges the completion of a key selected again into the first one: objects key by key.
fn merge_json(dst: &mut JsonValue, src: JsonValue) {
    match (dst, src) {
        (JsonValue::Object(d), JsonValue::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(k.as_str()) {
                    Some(existing) => merge_json(existing, v),
                    None => {
                        d.insert(k, v);
                    }
                }
            }
        }
        (JsonValue::Array(d), JsonValue::Array(s)) if d.len() == s.len() => {
            for (dv, sv) in d.iter_mut().zip(s) {
                merge_json(dv, sv);
            }
        }
        (dst, src) => *dst = src,
    }
}
