//! Carts through the gateway: guest and customer carts, lines priced from the catalog with
//! their problems (off sale, out of stock), limits, merging on sign-in and idle expiry.

use serde_json::{Value, json};

use crate::support::{TestApp, assert_no_errors, error_code};

const CART_FIELDS: &str = "id itemCount subtotal { amount currency } readyForCheckout lines { quantity problem unitPrice { amount } lineTotal { amount } product { id name inStock } }";

fn op(text: &str) -> String {
    text.replace("CART", CART_FIELDS)
}

async fn products(app: &TestApp, n: usize) -> Vec<(String, String)> {
    let r = app
        .gateway(
            "{ products(first: 30, sort: NEWEST) { nodes { id price { amount } stock } } }",
            json!({}),
            None,
        )
        .await;
    r["data"]["products"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stock"].as_i64().unwrap_or(0) >= 5)
        .take(n)
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["price"]["amount"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn add(
    app: &TestApp,
    cart: Option<&str>,
    product: &str,
    quantity: i64,
    token: Option<&str>,
) -> Value {
    app.gateway(
        &op("mutation($c: ID, $p: ID!, $q: Int!) { addToCart(cartId: $c, productId: $p, quantity: $q) { CART } }"),
        json!({ "c": cart, "p": product, "q": quantity }),
        token,
    )
    .await
}

async fn cart(app: &TestApp, id: Option<&str>, token: Option<&str>) -> Value {
    app.gateway(&op("query($id: ID) { cart(id: $id) { CART } }"), json!({ "id": id }), token).await
}

fn dec(s: &Value) -> rust_decimal::Decimal {
    s.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_guest_fills_a_cart_priced_from_the_catalog_and_bad_input_changes_nothing() {
    let app = TestApp::seeded().await;
    let items = products(&app, 2).await;
    let created = app.gateway(&op("mutation { createCart { CART } }"), json!({}), None).await;
    assert_no_errors(&created);
    let id = created["data"]["createCart"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        created["data"]["createCart"]["subtotal"],
        json!({ "amount": "0.00", "currency": "USD" })
    );

    assert_no_errors(&add(&app, Some(&id), &items[0].0, 2, None).await);
    let filled = add(&app, Some(&id), &items[1].0, 1, None).await;
    assert_no_errors(&filled);
    let c = &filled["data"]["addToCart"];
    assert_eq!(c["itemCount"], 3);
    assert_eq!(c["readyForCheckout"], true);
    let expected =
        dec(&json!(items[0].1)) * rust_decimal::Decimal::from(2) + dec(&json!(items[1].1));
    assert_eq!(dec(&c["subtotal"]["amount"]), expected, "exact decimal subtotal");
    assert_eq!(c["lines"][0]["product"]["id"], json!(items[0].0));
    assert!(c["lines"][0]["product"]["name"].is_string(), "the catalog names the product");
    assert_eq!(c["lines"][0]["product"]["inStock"], true, "the inventory answers too");
    // Adding more of the same product sums the quantity.
    let more = add(&app, Some(&id), &items[0].0, 3, None).await;
    assert_eq!(more["data"]["addToCart"]["lines"][0]["quantity"], 5);

    let before = cart(&app, Some(&id), None).await;
    for (product, quantity, code) in [
        (items[0].0.clone(), 0, "BAD_USER_INPUT"),
        (items[0].0.clone(), 100, "BAD_USER_INPUT"),
        (items[0].0.clone(), 95, "BAD_USER_INPUT"), // 5 + 95 is over the limit of 99
        (uuid::Uuid::now_v7().to_string(), 1, "BAD_USER_INPUT"),
        ("not-an-id".to_string(), 1, "BAD_USER_INPUT"),
    ] {
        let refused = add(&app, Some(&id), &product, quantity, None).await;
        assert_eq!(error_code(&refused), code, "{product} x {quantity}");
    }
    let unknown = add(&app, Some(&uuid::Uuid::new_v4().to_string()), &items[0].0, 1, None).await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    let nameless = add(&app, None, &items[0].0, 1, None).await;
    assert_eq!(error_code(&nameless), "BAD_USER_INPUT");
    assert_eq!(cart(&app, Some(&id), None).await, before, "nothing changed");

    let removed = app
        .gateway(
            &op("mutation($c: ID, $p: ID!) { removeFromCart(cartId: $c, productId: $p) { CART } }"),
            json!({ "c": id, "p": items[1].0 }),
            None,
        )
        .await;
    assert_eq!(removed["data"]["removeFromCart"]["lines"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_cart_holds_at_most_fifty_products_even_when_they_come_at_once_and_the_one_too_many_changes_nothing()
 {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let mut ids = Vec::new();
    for n in 0..=carts::MAX_LINES {
        let input = json!({ "input": {
            "sku": format!("LIMIT-{n}"), "name": format!("Limit Test {n}"),
            "description": "For the cart's line limit.",
            "price": { "amount": "1", "currency": "USD" }, "category": "tents",
            "images": [], "attributes": []
        }});
        let created = app
            .gateway(
                "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }",
                input,
                Some(&admin),
            )
            .await;
        assert_no_errors(&created);
        ids.push(created["data"]["createProduct"]["id"].as_str().unwrap().to_string());
    }
    let created = app.gateway("mutation { createCart { id } }", json!({}), None).await;
    let id = created["data"]["createCart"]["id"].as_str().unwrap().to_string();
    let (last_three, first) = ids.split_at(carts::MAX_LINES - 2);
    for product in first {
        assert_no_errors(&add(&app, Some(&id), product, 1, None).await);
    }
    // Three new products at once into a cart with room for two: exactly two go in.
    let at_once = futures::future::join_all(
        last_three.iter().map(|product| add(&app, Some(&id), product, 1, None)),
    )
    .await;
    let refused: Vec<&Value> = at_once.iter().filter(|r| r.get("errors").is_some()).collect();
    assert_eq!(refused.len(), 1, "one of the three is refused: {at_once:?}");
    assert_eq!(error_code(refused[0]), "BAD_USER_INPUT");
    assert!(refused[0]["errors"][0]["message"].as_str().unwrap().contains("at most 50 products"));
    let before = cart(&app, Some(&id), None).await;
    assert_eq!(before["data"]["cart"]["lines"].as_array().unwrap().len(), carts::MAX_LINES);
    let in_cart = |product: &String| {
        before["data"]["cart"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line["product"]["id"] == json!(product))
    };
    let left_out = last_three.iter().find(|p| !in_cart(p)).unwrap().clone();
    let again = add(&app, Some(&id), &left_out, 1, None).await;
    assert_eq!(error_code(&again), "BAD_USER_INPUT");
    assert_eq!(cart(&app, Some(&id), None).await, before, "nothing changed");
    // A product already in the full cart can still be added to.
    let more = add(&app, Some(&id), &first[0], 2, None).await;
    assert_no_errors(&more);
    assert_eq!(more["data"]["addToCart"]["itemCount"], carts::MAX_LINES as i64 + 2);
    // A product taken out makes room for another.
    let removed = app
        .gateway(
            "mutation($c: ID, $p: ID!) { removeFromCart(cartId: $c, productId: $p) { id } }",
            json!({ "c": id, "p": first[1] }),
            None,
        )
        .await;
    assert_no_errors(&removed);
    let fits = add(&app, Some(&id), &left_out, 1, None).await;
    assert_no_errors(&fits);
    let after = cart(&app, Some(&id), None).await;
    assert_eq!(after["data"]["cart"]["lines"].as_array().unwrap().len(), carts::MAX_LINES);
    app.stop().await;
}

#[tokio::test]
async fn lines_show_their_problems_and_leave_the_subtotal() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let items = products(&app, 3).await;
    let (token, _) = app.customer_token("problems@example.com").await;
    for (product, _) in &items {
        assert_no_errors(&add(&app, None, product, 2, Some(&token)).await);
    }
    // Off sale, one unit left, none left.
    let off = app
        .gateway(
            "mutation($id: ID!) { updateProduct(id: $id, input: { active: false }) { active } }",
            json!({ "id": items[0].0 }),
            Some(&admin),
        )
        .await;
    assert_no_errors(&off);
    for (product, n) in [(&items[1].0, 1), (&items[2].0, 0)] {
        let set =
            "mutation($id: ID!, $n: Int!) { setStock(productId: $id, onHand: $n) { available } }";
        assert_no_errors(&app.gateway(set, json!({ "id": product, "n": n }), Some(&admin)).await);
    }
    let seen = cart(&app, None, Some(&token)).await;
    assert_no_errors(&seen);
    let lines = seen["data"]["cart"]["lines"].as_array().unwrap();
    let problems: Vec<&Value> = lines.iter().map(|l| &l["problem"]).collect();
    assert_eq!(problems, vec!["NO_LONGER_SOLD", "NOT_ENOUGH_STOCK", "OUT_OF_STOCK"]);
    assert_eq!(seen["data"]["cart"]["subtotal"]["amount"], "0.00", "nothing buyable");
    assert_eq!(seen["data"]["cart"]["readyForCheckout"], false);
    // An off-sale product cannot be added.
    let refused = add(&app, None, &items[0].0, 1, Some(&token)).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    app.stop().await;
}

#[tokio::test]
async fn a_guest_cart_merges_into_the_customers_cart_on_sign_in_and_stays_private() {
    let app = TestApp::seeded().await;
    let items = products(&app, 2).await;
    let (token, _) = app.customer_token("merger@example.com").await;
    assert_no_errors(&add(&app, None, &items[0].0, 1, Some(&token)).await);
    let guest = app.gateway(&op("mutation { createCart { CART } }"), json!({}), None).await;
    let guest_id = guest["data"]["createCart"]["id"].as_str().unwrap().to_string();
    assert_no_errors(&add(&app, Some(&guest_id), &items[0].0, 2, None).await);
    assert_no_errors(&add(&app, Some(&guest_id), &items[1].0, 1, None).await);

    let merged = app
        .gateway(
            &op("mutation($g: ID!) { mergeCart(guestCartId: $g) { CART } }"),
            json!({ "g": guest_id }),
            Some(&token),
        )
        .await;
    assert_no_errors(&merged);
    let lines = merged["data"]["mergeCart"]["lines"].as_array().unwrap();
    let quantities: Vec<(Value, Value)> =
        lines.iter().map(|l| (l["product"]["id"].clone(), l["quantity"].clone())).collect();
    assert_eq!(quantities, vec![(json!(items[0].0), json!(3)), (json!(items[1].0), json!(1))]);
    assert_eq!(
        error_code(&cart(&app, Some(&guest_id), None).await),
        "NOT_FOUND",
        "the guest cart is gone"
    );

    // The customer's cart is theirs alone.
    let own_id = merged["data"]["mergeCart"]["id"].as_str().unwrap().to_string();
    let (other, _) = app.customer_token("snoop@example.com").await;
    assert_eq!(error_code(&cart(&app, Some(&own_id), Some(&other)).await), "FORBIDDEN");
    assert_eq!(error_code(&cart(&app, Some(&own_id), None).await), "FORBIDDEN");
    let before = cart(&app, Some(&own_id), Some(&token)).await;
    let set = "mutation($c: ID, $p: ID!) { setCartQuantity(cartId: $c, productId: $p, quantity: 1) { id } }";
    let remove = "mutation($c: ID, $p: ID!) { removeFromCart(cartId: $c, productId: $p) { id } }";
    for caller in [Some(other.as_str()), None] {
        let refused = add(&app, Some(&own_id), &items[1].0, 1, caller).await;
        assert_eq!(error_code(&refused), "FORBIDDEN");
        for change in [set, remove] {
            let refused =
                app.gateway(change, json!({ "c": own_id, "p": items[0].0 }), caller).await;
            assert_eq!(error_code(&refused), "FORBIDDEN", "{change}");
        }
    }
    assert_eq!(cart(&app, Some(&own_id), Some(&token)).await, before, "nothing changed");
    let anonymous_merge = app
        .gateway(
            &op("mutation($g: ID!) { mergeCart(guestCartId: $g) { CART } }"),
            json!({ "g": own_id }),
            None,
        )
        .await;
    assert_eq!(error_code(&anonymous_merge), "UNAUTHENTICATED");

    // Idle past the expiry, a cart is gone even before the sweep deletes it: adding to it
    // neither works nor brings it back.
    use entities::carts::cart as cart_row;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let idle_since = chrono::Utc::now() - chrono::Duration::days(8);
    let id = uuid::Uuid::parse_str(&own_id).unwrap();
    let last_used = async |at: chrono::DateTime<chrono::Utc>| {
        cart_row::Entity::update_many()
            .col_expr(cart_row::Column::UpdatedAt, Expr::value(at))
            .filter(cart_row::Column::Id.eq(id))
            .exec(&app.carts.db)
            .await
            .unwrap();
    };
    last_used(idle_since).await;
    let late = add(&app, Some(&own_id), &items[1].0, 1, Some(&token)).await;
    assert_eq!(error_code(&late), "NOT_FOUND");
    assert_eq!(error_code(&cart(&app, Some(&own_id), Some(&token)).await), "NOT_FOUND");
    last_used(chrono::Utc::now()).await;

    // Idle long enough, carts expire.
    let later = chrono::Utc::now() + chrono::Duration::days(8);
    assert_eq!(carts::carts::expire_idle(&app.carts, later).await.unwrap(), 1);
    assert_eq!(error_code(&cart(&app, Some(&own_id), Some(&token)).await), "NOT_FOUND");
    // Its lines went with it.
    use entities::carts::line as line_row;
    let lines = line_row::Entity::find().filter(line_row::Column::CartId.eq(id));
    assert!(lines.all(&app.carts.db).await.unwrap().is_empty(), "no lines left behind");
    app.stop().await;
}
