//! Projection written straight into the response body: no tree, no copy of the data.

use super::plan::{FieldType, Item, Set};
use super::{Bubble, Projection, Seg, Shape};
use crate::execution::value::Value;

impl<'a> Projection<'a> {
    /// Writes the projected `data` as JSON straight into `buf`, without building a tree;
    /// false when a null reached `data` (nothing written then). Only for operations whose
    /// objects never select a response key twice (see `PreparedOperation::repeats_keys`):
    /// those need [`Projection::run`], which merges.
    pub fn write(
        &mut self,
        root_type: &str,
        selections: &'a Set,
        data: &Value<'_>,
        buf: &mut Vec<u8>,
    ) -> bool {
        let start = buf.len();
        let data = matches!(data, Value::Object(_)).then_some(data);
        match self.write_object(data, root_type, true, selections, buf) {
            Ok(()) => true,
            Err(Bubble) => {
                buf.truncate(start);
                false
            }
        }
    }

    fn write_object(
        &mut self,
        map: Option<&Value<'_>>,
        type_name: &str,
        known: bool,
        selections: &'a Set,
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
        map: Option<&Value<'_>>,
        type_name: &str,
        known: bool,
        selections: &'a Set,
        buf: &mut Vec<u8>,
        first: &mut bool,
    ) -> Result<(), Bubble> {
        for item in &selections.items {
            match item {
                Item::Field(field) => {
                    if self.skipped(&field.skip_if, &field.include_if) {
                        continue;
                    }
                    let definition = if field.typename {
                        None
                    } else {
                        match field.definition.on(type_name) {
                            Some(d) => Some(d),
                            None => continue, // not in the API schema: nothing to show
                        }
                    };
                    if *first {
                        *first = false;
                    } else {
                        buf.push(b',');
                    }
                    // Response keys are GraphQL names: nothing to escape.
                    buf.push(b'"');
                    buf.extend_from_slice(field.key.as_bytes());
                    buf.extend_from_slice(b"\":");
                    let Some(definition) = definition else {
                        buf.push(b'"');
                        buf.extend_from_slice(type_name.as_bytes());
                        buf.push(b'"');
                        continue;
                    };
                    let value = map.and_then(|m| m.get(&field.key));
                    self.path.push(Seg::Key(&field.key));
                    let written =
                        self.write_value(value, definition, &definition.ty, field, type_name, buf);
                    self.path.pop();
                    written?;
                }
                Item::Fragment(fragment) => {
                    if self.fragment_applies(fragment, type_name, known) {
                        self.write_fields(map, type_name, known, &fragment.set, buf, first)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn write_value(
        &mut self,
        value: Option<&Value<'_>>,
        definition: &'a FieldType,
        ty: &'a apollo_compiler::schema::Type,
        field: &'a super::plan::Field,
        parent: &str,
        buf: &mut Vec<u8>,
    ) -> Result<(), Bubble> {
        let start = buf.len();
        let result = self.write_value_inner(value, definition, ty, field, parent, buf);
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
        value: Option<&Value<'_>>,
        definition: &'a FieldType,
        ty: &'a apollo_compiler::schema::Type,
        field: &'a super::plan::Field,
        parent: &str,
        buf: &mut Vec<u8>,
    ) -> Result<(), Bubble> {
        match self.shape(value, ty, &definition.kind, parent, &field.name)? {
            Shape::Null => buf.extend_from_slice(b"null"),
            Shape::List(items, item) => {
                buf.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    self.path.push(Seg::Index(i));
                    let written = self.write_value(Some(v), definition, item, field, parent, buf);
                    self.path.pop();
                    written?;
                }
                buf.push(b']');
            }
            Shape::Object(map, type_name, known) => {
                return self.write_object(Some(map), &type_name, known, &field.set, buf);
            }
            Shape::Float(f) => {
                let _ = serde_json::to_writer(&mut *buf, &f);
            }
            // Strings and numbers go out exactly as the subgraph wrote them.
            Shape::Leaf(v) => v.write(buf),
        }
        Ok(())
    }
}
