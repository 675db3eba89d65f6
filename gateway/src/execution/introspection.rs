//! Projection for operations that introspect: the client's exact selection read from the merged
//! response tree. apollo-compiler's executor walks the client's operation over a JSON-backed
//! object, so aliases, fragments, `@skip`/`@include`, `__typename`, leaf coercion and null
//! propagation for non-null fields all follow the GraphQL specification; it also answers the
//! introspection meta-fields from the API schema.

use apollo_compiler::collections::HashMap;
use apollo_compiler::executable::Operation;
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{ExecutionResponse, GraphQLError, JsonMap, JsonValue};
use apollo_compiler::schema::{ExtendedType, Implementers, Type};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name, Schema};

/// What resolving needs to know about the schema.
struct Types<'a> {
    schema: &'a Schema,
    implementers: &'a HashMap<Name, Implementers>,
}

impl<'a> Types<'a> {
    /// The concrete object type to read `map` as, for a field declared as `declared`: the
    /// `__typename` the subgraph sent when it names an object type; otherwise (none sent, or
    /// an interface name from an `@interfaceObject` subgraph) the declared type when it is an
    /// object type, or else one of its implementations, whose fields include the interface's.
    fn object_type(&self, map: &'a JsonMap, declared: &'a Name) -> &'a str {
        if let Some(sent) = map.get("__typename").and_then(|t| t.as_str())
            && matches!(self.schema.types.get(sent), Some(ExtendedType::Object(_)))
        {
            return sent;
        }
        match self.schema.types.get(declared) {
            Some(ExtendedType::Object(_)) => declared.as_str(),
            Some(ExtendedType::Union(union)) => {
                union.members.iter().next().map_or(declared.as_str(), |m| m.name.as_str())
            }
            _ => self
                .implementers
                .get(declared)
                .and_then(|i| i.objects.iter().next())
                .map_or(declared.as_str(), |n| n.as_str()),
        }
    }
}

/// An object of the response tree, seen as a GraphQL object of a known type.
struct JsonObject<'a> {
    map: Option<&'a JsonMap>,
    type_name: &'a str,
    types: &'a Types<'a>,
}

impl ObjectValue for JsonObject<'_> {
    fn type_name(&self) -> &str {
        self.type_name
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let key = info
            .field_selections()
            .first()
            .map(|f| f.response_key().as_str())
            .unwrap_or(info.field_name());
        let Some(value) = self.map.and_then(|m| m.get(key)) else {
            return Ok(ResolvedValue::null());
        };
        resolve(value, &info.field_definition().ty, self.types)
    }
}

fn resolve<'a>(
    value: &'a JsonValue,
    ty: &'a Type,
    types: &'a Types<'a>,
) -> Result<ResolvedValue<'a>, FieldError> {
    if value.is_null() {
        return Ok(ResolvedValue::null());
    }
    match ty {
        Type::List(item) | Type::NonNullList(item) => match value {
            JsonValue::Array(items) => Ok(ResolvedValue::List(Box::new(
                items.iter().map(move |v| resolve(v, item, types)),
            ))),
            _ => Err(FieldError { message: "expected a list from the subgraph".into() }),
        },
        Type::Named(name) | Type::NonNullNamed(name) => match types.schema.types.get(name) {
            Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_)) => {
                let JsonValue::Object(map) = value else {
                    return Err(FieldError {
                        message: "expected an object from the subgraph".into(),
                    });
                };
                let type_name = types.object_type(map, name);
                Ok(ResolvedValue::object(JsonObject { map: Some(map), type_name, types }))
            }
            // Float result coercion accepts integers (GraphQL spec, Float, Result Coercion).
            _ if name == "Float" && (value.is_i64() || value.is_u64()) => {
                let float = value.as_f64().and_then(serde_json_bytes::serde_json::Number::from_f64);
                Ok(ResolvedValue::leaf(float.map_or(JsonValue::Null, JsonValue::Number)))
            }
            _ => Ok(ResolvedValue::leaf(value.clone())),
        },
    }
}

/// Projects `data` (the merged subgraph results) through the client's operation.
pub fn project(
    schema: &Valid<Schema>,
    implementers: &HashMap<Name, Implementers>,
    document: &Valid<ExecutableDocument>,
    operation: &Operation,
    variables: &Valid<JsonMap>,
    data: &JsonValue,
    introspection: bool,
) -> Result<ExecutionResponse, Box<GraphQLError>> {
    let types = Types { schema, implementers };
    let root = JsonObject {
        map: data.as_object(),
        type_name: operation.object_type().as_str(),
        types: &types,
    };
    Execution::new(schema, document)
        .implementers_map(implementers)
        .operation(operation)
        .coerced_variable_values(variables)
        .enable_schema_introspection(introspection)
        .execute_sync(&root)
        .map_err(|e| Box::new(e.to_graphql_error(&document.sources)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json_bytes::json;

    const SDL: &str = "
        type Query { shelf: Shelf! maybe: Shelf items: [Item!] }
        type Shelf { name: String! books: [Book!]! note: String }
        interface Item { id: ID! }
        type Book implements Item { id: ID! title: String! }
        type Film implements Item { id: ID! minutes: Int }
    ";

    fn run(query: &str, data: JsonValue) -> serde_json::Value {
        let schema = Schema::parse_and_validate(SDL, "schema.graphql").unwrap();
        let document =
            ExecutableDocument::parse_and_validate(&schema, query, "query.graphql").unwrap();
        let operation = document.operations.get(None).unwrap();
        let variables =
            apollo_compiler::request::coerce_variable_values(&schema, operation, &JsonMap::new())
                .unwrap();
        let implementers = schema.implementers_map();
        let response =
            project(&schema, &implementers, &document, operation, &variables, &data, false)
                .unwrap();
        serde_json::to_value(&response).unwrap()
    }

    #[test]
    fn the_client_selection_is_projected_in_client_order_with_aliases() {
        // Subgraph data is keyed by response keys (aliases), in whatever order fetches merged it.
        let data = json!({ "shelf": { "books": [{ "title": "B", "id": "1" }], "label": "S", "unasked": true } });
        let out = run("{ shelf { label: name books { title } } }", data);
        assert_eq!(
            out["data"],
            serde_json::json!({ "shelf": { "label": "S", "books": [{ "title": "B" }] } })
        );
        let keys: Vec<_> = out["data"]["shelf"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["label", "books"], "the client's order, nothing unasked");
    }

    #[test]
    fn a_null_non_null_field_nulls_its_nearest_nullable_parent_with_an_error() {
        // `books[0].title` is non-null and missing: the book, then the non-null list and the
        // non-null shelf are nulled up to `data`, which has no nullable parent.
        let out = run(
            "{ shelf { name books { title } } }",
            json!({ "shelf": { "name": "S", "books": [{ "title": null }] } }),
        );
        assert_eq!(out["data"], serde_json::Value::Null);
        assert_eq!(out["errors"][0]["path"], serde_json::json!(["shelf", "books", 0, "title"]));
        // A nullable parent stops the propagation.
        let out = run("{ maybe { name } }", json!({ "maybe": { "name": null } }));
        assert_eq!(out["data"], serde_json::json!({ "maybe": null }));
        assert_eq!(out["errors"][0]["path"], serde_json::json!(["maybe", "name"]));
    }

    #[test]
    fn abstract_types_follow_typename_and_fragments() {
        let data = json!({ "items": [
            { "__typename": "Book", "id": "1", "title": "Dune" },
            { "__typename": "Film", "id": "2", "minutes": 155 },
        ]});
        let out =
            run("{ items { __typename id ... on Book { title } ... on Film { minutes } } }", data);
        assert_eq!(
            out["data"]["items"],
            serde_json::json!([
                { "__typename": "Book", "id": "1", "title": "Dune" },
                { "__typename": "Film", "id": "2", "minutes": 155 },
            ])
        );
    }
}
