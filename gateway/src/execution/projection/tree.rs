//! Projection into a tree, for operations whose objects may select a response key twice.

use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::schema::Type;
use serde_json_bytes::ByteString;

use super::{Bubble, Projection, Seg, Shape};
use crate::execution::value::Value;
use crate::planning::{SelectionItem, SelectionSet};

impl<'a> Projection<'a> {
    /// Projects `data` (the merged tree) through the operation's root `selections`.
    /// `None` when a null reached `data` itself.
    pub fn run(
        &mut self,
        root_type: &str,
        selections: &'a SelectionSet,
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
                        Some(existing) => merge_json(existing, completed),
                        None => {
                            out.insert(ByteString::from(key), completed);
                        }
                    }
                }
                SelectionItem::InlineFragment(fragment) => {
                    if self.fragment_applies(fragment, type_name, known) {
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
        value: Option<&Value<'_>>,
        ty: &Type,
        selections: &'a SelectionSet,
        parent: &str,
        field: &str,
    ) -> Result<JsonValue, Bubble> {
        let completed = match self.shape(value, ty, parent, field) {
            Ok(Shape::Null) => Ok(JsonValue::Null),
            Ok(Shape::List(items, item)) => {
                let mut out = Vec::with_capacity(items.len());
                let mut result = Ok(());
                for (i, v) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i));
                    let completed = self.complete(Some(v), item, selections, parent, field);
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
                let result = self.object(Some(map), &type_name, known, selections, &mut out);
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
