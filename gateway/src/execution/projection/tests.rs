//! Projection tests: the tree and the stream must agree.

use super::*;
use crate::planning::{FieldSelection, InlineFragmentSelection, SelectionItem, SelectionSet};
use serde_json_bytes::json;

const SDL: &str = "
    type Query { shelf: Shelf! maybe: Shelf items: [Item!] }
    type Shelf { name: String! books: [Book!]! note: String }
    interface Item { id: ID! label: String }
    type Book implements Item { id: ID! title: String! rating: Float label: String! }
    type Film implements Item { id: ID! minutes: Int label: String }
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
    let plan = plan::Plan::build(&schema, &implementers, "Query", &selections);
    let selections = &plan.root;
    let data = crate::execution::value::from_json(&data);
    let mut projection = Projection::new(&schema, &implementers, &variables);
    let out = projection.run("Query", selections, &data);
    // The streaming writer gives the same JSON and the same errors as the tree.
    let mut streamed = Projection::new(&schema, &implementers, &variables);
    let mut buf = Vec::new();
    if streamed.write("Query", selections, &data, &mut buf) {
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

#[test]
fn a_field_an_implementation_narrows_to_non_null_follows_the_runtime_type() {
    let selections = || vec![field("items", vec![field("label", vec![])])];
    let film = json!({ "items": [{ "__typename": "Film", "label": null }] });
    let (out, errors) = run(selections(), film, JsonMap::new());
    assert!(errors.is_empty());
    assert_eq!(serde_json::to_string(&out.unwrap()).unwrap(), r#"{"items":[{"label":null}]}"#);
    // Book.label is `String!`: its null reaches the nullable list, with one error.
    let book = json!({ "items": [{ "__typename": "Book", "label": null }] });
    let (out, errors) = run(selections(), book, JsonMap::new());
    assert_eq!(serde_json::to_string(&out.unwrap()).unwrap(), r#"{"items":null}"#);
    assert_eq!(errors[0].message, "Cannot return null for non-nullable field Book.label.");
}
