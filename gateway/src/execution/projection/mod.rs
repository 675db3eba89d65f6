//! Projection: the client's exact selection, in the client's order, read from the merged
//! response tree, with GraphQL's null propagation: a null (or missing) value in a non-null
//! position nulls the nearest nullable ancestor and is reported once, at its own path.
//!
//! It walks the [`plan`] of the normalised operation (fragments inlined, abstract selections
//! expanded to concrete types, `@skip`/`@include` left as variable conditions, field types
//! looked up once per operation). Operations that introspect go through
//! [`super::introspection`] instead.
//!
//! [`stream`] writes the JSON straight into the response body; [`tree`] builds a tree,
//! which can merge an object's fields selected twice (see `PreparedOperation::repeats_keys`).

pub mod plan;
mod stream;
#[cfg(test)]
mod tests;
mod tree;

use std::borrow::Cow;

use apollo_compiler::response::{GraphQLError, JsonMap, JsonValue, ResponseDataPathSegment};
use apollo_compiler::schema::{ExtendedType, Implementers, Type};
use apollo_compiler::{Name, Schema, collections::HashMap};

use super::value::Value;
use plan::{Fragment, Kind};

/// A step of the path being projected, borrowed from the operation (no allocation per field).
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A null in a non-null position, travelling up to the nearest nullable ancestor.
struct Bubble;

/// What a value of the response tree is, read as a given type: the one decision both the
/// tree and the stream projection act on.
enum Shape<'v, 't> {
    /// No value: null, missing, or something the API schema hides (`@inaccessible` object
    /// types and enum values). Only ever returned for nullable positions.
    Null,
    /// A list, with its item type.
    List(&'v [Value<'v>], &'t Type),
    /// An object, read as `type_name` (`known` false when that is a stand-in implementation).
    Object(&'v Value<'v>, Cow<'v, str>, bool),
    /// An integer in a `Float` position: result coercion turns it into a float.
    Float(f64),
    /// Any other leaf, as sent.
    Leaf(&'v Value<'v>),
}

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

    fn skipped(&self, skip_if: &Option<String>, include_if: &Option<String>) -> bool {
        let var = |name: &String| {
            matches!(self.variables.get(name.as_str()), Some(JsonValue::Bool(true)))
        };
        skip_if.as_ref().is_some_and(var) || include_if.as_ref().is_some_and(|n| !var(n))
    }

    /// Whether an inline fragment applies to an object read as `type_name`. When the concrete
    /// type is not known, only conditions on abstract types can apply.
    fn fragment_applies(&self, fragment: &Fragment, type_name: &str, known: bool) -> bool {
        !self.skipped(&fragment.skip_if, &fragment.include_if)
            && (known || !fragment.concrete)
            && fragment.covers(type_name)
    }

    /// Classifies `value` for a position of type `ty` holding `kind` values (field
    /// `parent.field`); a null where `ty` is non-null, and a value of the wrong kind, are
    /// reported and bubble up.
    fn shape<'v, 't: 'v>(
        &mut self,
        value: Option<&'v Value<'v>>,
        ty: &'t Type,
        kind: &Kind,
        parent: &str,
        field: &str,
    ) -> Result<Shape<'v, 't>, Bubble> {
        let shape = match (value, ty) {
            (None | Some(Value::Null), _) => Shape::Null,
            (Some(value), Type::List(item) | Type::NonNullList(item)) => match value {
                Value::Array(items) => Shape::List(items, item),
                _ => return Err(self.invalid("a list", parent, field)),
            },
            (Some(value), Type::Named(name) | Type::NonNullNamed(name)) => match kind {
                Kind::Composite(object) => match value {
                    Value::Object(_) => {
                        let sent = value.typename();
                        match sent {
                            // The common case: an object type, and the subgraph says so.
                            Some(ref t) if *object && t == name.as_str() => {
                                Shape::Object(value, Cow::Borrowed(name.as_str()), true)
                            }
                            Some(ref t) if !self.schema.types.contains_key(t.as_ref()) => {
                                Shape::Null
                            }
                            _ => {
                                let (type_name, known) = self.object_type(sent, name);
                                Shape::Object(value, type_name, known)
                            }
                        }
                    }
                    _ => return Err(self.invalid("an object", parent, field)),
                },
                Kind::Enum => match (self.schema.types.get(name), value.as_str()) {
                    (Some(ExtendedType::Enum(e)), Some(v)) if e.values.contains_key(v.as_ref()) => {
                        Shape::Leaf(value)
                    }
                    _ => Shape::Null,
                },
                Kind::Float => match value {
                    Value::Number(raw) if super::value::is_integer(raw) => {
                        Shape::Float(raw.parse().unwrap_or_default())
                    }
                    _ => Shape::Leaf(value),
                },
                Kind::Scalar => Shape::Leaf(value),
            },
        };
        if matches!(shape, Shape::Null) && ty.is_non_null() {
            self.null_error(parent, field);
            return Err(Bubble);
        }
        Ok(shape)
    }

    /// The concrete type to read an object as, and whether it is known: the `__typename` the
    /// subgraph sent when it names an object type, or the declared type when that is an object
    /// type; otherwise (an interface name from an `@interfaceObject` subgraph, say) one of the
    /// implementations, whose fields include the interface's, marked unknown so that
    /// fragments on concrete types do not apply.
    fn object_type<'v>(
        &self,
        sent: Option<Cow<'v, str>>,
        declared: &'v Name,
    ) -> (Cow<'v, str>, bool) {
        if let Some(sent) = sent
            && matches!(self.schema.types.get(sent.as_ref()), Some(ExtendedType::Object(_)))
        {
            return (sent, true);
        }
        let fallback = match self.schema.types.get(declared) {
            Some(ExtendedType::Object(_)) => return (Cow::Borrowed(declared.as_str()), true),
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
        (fallback.map_or(Cow::Borrowed(declared.as_str()), Cow::Owned), false)
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

    fn invalid(&mut self, expected: &str, parent: &str, field: &str) -> Bubble {
        let message = format!("The subgraph did not return {expected} for {parent}.{field}.");
        let mut error = GraphQLError::new(message, None, &Default::default());
        error.path = self.error_path();
        self.errors.push(error);
        Bubble
    }
}
