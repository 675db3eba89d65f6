//! Projection written straight into the response body: no tree, no copy of the data.

use apollo_compiler::schema::Type;

use super::{Bubble, Projection, Seg, Shape};
use crate::execution::value::Value;
use crate::planning::{SelectionItem, SelectionSet};

impl<'a> Projection<'a> {
    /// Writes the projected `data` as JSON straight into `buf`, without building a tree;
    /// false when a null reached `data` (nothing written then). Only for operations whose
    /// objects never select a response key twice (see `PreparedOperation::repeats_keys`):
    /// those need [`Projection::run`], which merges.
    pub fn write(
        &mut self,
        root_type: &str,
        selections: &'a SelectionSet,
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
        map: Option<&Value<'_>>,
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
                    if self.fragment_applies(fragment, type_name, known) {
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
        value: Option<&Value<'_>>,
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
        value: Option<&Value<'_>>,
        ty: &Type,
        selections: &'a SelectionSet,
        parent: &str,
        field: &str,
        buf: &mut Vec<u8>,
    ) -> Result<(), Bubble> {
        match self.shape(value, ty, parent, field)? {
            Shape::Null => buf.extend_from_slice(b"null"),
            Shape::List(items, item) => {
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
            }
            Shape::Object(map, type_name, known) => {
                return self.write_object(Some(map), &type_name, known, selections, buf);
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
