//! The projection plan: the normalised operation with what projection needs of the API schema
//! looked up once per operation (each field's type, what kind of value it holds, which object
//! types each fragment applies to), so that projecting a response does no schema lookups.

use std::collections::HashSet;

use apollo_compiler::schema::{ExtendedType, Implementers, Type};
use apollo_compiler::{Name, Schema, collections::HashMap};

use crate::planning::{SelectionItem, SelectionSet};

/// A selection set, ready to project.
#[derive(Debug, Default)]
pub struct Set {
    /// Fields and fragments in the client's order (fields the client did not ask for, such
    /// as keys the plan added, are left out).
    pub items: Vec<Item>,
}

/// One selection.
#[derive(Debug)]
pub enum Item {
    /// A field.
    Field(Field),
    /// An inline fragment.
    Fragment(Fragment),
}

/// A selected field.
#[derive(Debug)]
pub struct Field {
    /// The response key (alias or name).
    pub key: String,
    /// The field's name.
    pub name: String,
    /// `@skip(if: $var)`.
    pub skip_if: Option<String>,
    /// `@include(if: $var)`.
    pub include_if: Option<String>,
    /// True for `__typename`.
    pub typename: bool,
    /// The field's definition, by the object type the parent is read as.
    pub definition: Definition,
    /// The sub-selection.
    pub set: Set,
}

/// A field's definition on its parent, for each type the parent may be read as.
#[derive(Debug)]
pub enum Definition {
    /// The same whatever the parent's type; `None`: not in the API schema (not shown).
    Uniform(Option<FieldType>),
    /// Implementations disagree (a covariant type): per object type name.
    ByType(Vec<(String, Option<FieldType>)>),
}

impl Definition {
    /// The definition when the parent is read as `type_name`; `None` when the field is not
    /// on it.
    pub fn on(&self, type_name: &str) -> Option<&FieldType> {
        match self {
            Definition::Uniform(definition) => definition.as_ref(),
            Definition::ByType(types) => {
                types.iter().find(|(name, _)| name == type_name).and_then(|(_, d)| d.as_ref())
            }
        }
    }
}

/// A field's type, with the kind of its named type.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldType {
    /// The type, with its list and non-null wrappers.
    pub ty: Type,
    /// What its named type is.
    pub kind: Kind,
}

/// What kind of named type a value is read as.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// An object type (`true`), or an interface or union (`false`).
    Composite(bool),
    /// An enum: values the API schema hides read as null.
    Enum,
    /// `Float`: integers are coerced.
    Float,
    /// Any other scalar: written as sent.
    Scalar,
}

/// An inline fragment.
#[derive(Debug)]
pub struct Fragment {
    /// The type condition.
    pub type_condition: String,
    /// True when the condition names an object type.
    pub concrete: bool,
    /// The object types an abstract condition covers.
    pub covers: HashSet<String>,
    /// `@skip(if: $var)`.
    pub skip_if: Option<String>,
    /// `@include(if: $var)`.
    pub include_if: Option<String>,
    /// The sub-selection.
    pub set: Set,
}

impl Fragment {
    /// Whether the fragment's condition holds for an object of type `type_name`.
    pub fn covers(&self, type_name: &str) -> bool {
        self.type_condition == type_name || self.covers.contains(type_name)
    }
}

/// The whole operation's projection plan.
#[derive(Debug)]
pub struct Plan {
    /// The root selection.
    pub root: Set,
}

impl Plan {
    /// The plan of `selections` on the root type `root_type`.
    pub fn build(
        schema: &Schema,
        implementers: &HashMap<Name, Implementers>,
        root_type: &str,
        selections: &SelectionSet,
    ) -> Self {
        let builder = Builder { schema, implementers };
        Self { root: builder.set(selections, root_type) }
    }
}

struct Builder<'s> {
    schema: &'s Schema,
    implementers: &'s HashMap<Name, Implementers>,
}

impl Builder<'_> {
    fn set(&self, selections: &SelectionSet, parent: &str) -> Set {
        let mut items = Vec::with_capacity(selections.items.len());
        for item in &selections.items {
            match item {
                SelectionItem::Field(field) if !field.omit_from_response => {
                    let typename = field.name == "__typename";
                    let definition = if typename {
                        Definition::Uniform(None)
                    } else {
                        self.definition(parent, &field.name)
                    };
                    let child = match self.schema.type_field(parent, &field.name) {
                        Ok(d) => d.ty.inner_named_type().to_string(),
                        Err(_) => String::new(),
                    };
                    items.push(Item::Field(Field {
                        key: field.alias.clone().unwrap_or_else(|| field.name.clone()),
                        name: field.name.clone(),
                        skip_if: field.skip_if.clone(),
                        include_if: field.include_if.clone(),
                        typename,
                        definition,
                        set: self.set(&field.selections, &child),
                    }));
                }
                SelectionItem::Field(_) | SelectionItem::FragmentSpread(_) => {}
                SelectionItem::InlineFragment(fragment) => {
                    let condition = fragment.type_condition.as_str();
                    items.push(Item::Fragment(Fragment {
                        type_condition: condition.to_string(),
                        concrete: matches!(
                            self.schema.types.get(condition),
                            Some(ExtendedType::Object(_))
                        ),
                        covers: self.objects_of(condition).into_iter().collect(),
                        skip_if: fragment.skip_if.clone(),
                        include_if: fragment.include_if.clone(),
                        set: self.set(&fragment.selections, condition),
                    }));
                }
            }
        }
        Set { items }
    }

    /// The object types an abstract type stands for (none for other types).
    fn objects_of(&self, name: &str) -> Vec<String> {
        match self.schema.types.get(name) {
            Some(ExtendedType::Interface(_)) => self
                .implementers
                .get(name)
                .map(|i| i.objects.iter().map(|o| o.to_string()).collect())
                .unwrap_or_default(),
            Some(ExtendedType::Union(union)) => {
                union.members.iter().map(|m| m.name.to_string()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The field's definition for every type its parent may be read as: the parent itself,
    /// and the object types an abstract parent stands for.
    fn definition(&self, parent: &str, field: &str) -> Definition {
        let on = |type_name: &str| {
            self.schema
                .type_field(type_name, field)
                .ok()
                .map(|d| FieldType { kind: self.kind(d.ty.inner_named_type()), ty: d.ty.clone() })
        };
        let own = on(parent);
        let others: Vec<(String, Option<FieldType>)> =
            self.objects_of(parent).into_iter().map(|o| (o.clone(), on(&o))).collect();
        if others.iter().all(|(_, d)| *d == own) {
            Definition::Uniform(own)
        } else {
            let mut by_type = others;
            by_type.push((parent.to_string(), own));
            Definition::ByType(by_type)
        }
    }

    fn kind(&self, named: &Name) -> Kind {
        match self.schema.types.get(named) {
            Some(ExtendedType::Object(_)) => Kind::Composite(true),
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => Kind::Composite(false),
            Some(ExtendedType::Enum(_)) => Kind::Enum,
            _ if named == "Float" => Kind::Float,
            _ => Kind::Scalar,
        }
    }
}
