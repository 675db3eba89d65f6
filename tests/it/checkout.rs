//! The purchase scenario through the gateway: cart → card → `placeOrder` → the saga takes the
//! order to CONFIRMED (or CANCELLED with a reason), with exactly-once effects under retries
//! and concurrency.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_no_errors, error_code};

pub(crate) const PLACE: &str = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id number status total { amount currency } } }";
pub(crate) const ORDER: &str = "query($id: ID!) { order(id: $id) { id number status cancelReason total { amount currency } lines { name quantity unitPrice { amount } product { id name } } timeline { status reason } payment { status amount { amount } card { last4 } } } }";

pub(crate) fn address() -> Value {
    json!({ "name": "Ada Lovelace", "line1": "12 Analytical Way", "city": "London", "postalCode": "N1 7AA", "country": "gb" })
}

pub(crate) fn place_input(cart: Option<&str>, method: &str, key: &str) -> Value {
    json!({ "input": { "cartId": cart, "paymentMethodId": method, "shippingAddress": address(), "idempotencyKey": key } })
}

pub(crate) async fn card(app: &TestApp, number: &str, token: Option<&str>) -> String {
    let r = app
        .gateway(
            "mutation($n: String!) { tokenizeCard(input: { number: $n, expMonth: 12, expYear: 2031, cvc: \"123\" }) { id } }",
            json!({ "n": number }),
            token,
        )
        .await;
    assert_no_errors(&r);
    r["data"]["tokenizeCard"]["id"].as_str().unwrap().to_string()
}

pub(crate) async fn a_product(app: &TestApp, admin: &str, stock: i64) -> String {
    let r =
        app.gateway("{ products(first: 1, sort: NEWEST) { nodes { id } } }", json!({}), None).await;
    let id = r["data"]["products"]["nodes"][0]["id"].as_str().unwrap().to_string();
    let set = "mutation($id: ID!, $n: Int!) { setStock(productId: $id, onHand: $n) { available } }";
    assert_no_errors(&app.gateway(set, json!({ "id": id, "n": stock }), Some(admin)).await);
    id
}

/// Customer `email` signs in and buys `quantity` units of the newest product (its stock set to
/// `stock` first) with the approving test card: (token, product id, the `placeOrder` answer).
pub(crate) async fn a_placed_order(
    app: &TestApp,
    admin: &str,
    email: &str,
    stock: i64,
    quantity: i64,
) -> (String, String, Value) {
    let (token, _) = app.customer_token(email).await;
    let product = a_product(app, admin, stock).await;
    add(app, None, &product, quantity, Some(&token)).await;
    let method = card(app, "4242424242424242", Some(&token)).await;
    let key = format!("order-of-{email}");
    let placed = app.gateway(PLACE, place_input(None, &method, &key), Some(&token)).await;
    assert_no_errors(&placed);
    (token, product, placed["data"]["placeOrder"].clone())
}

pub(crate) async fn add(
    app: &TestApp,
    cart: Option<&str>,
    product: &str,
    quantity: i64,
    token: Option<&str>,
) {
    let r = app
        .gateway(
            "mutation($c: ID, $p: ID!, $q: Int!) { addToCart(cartId: $c, productId: $p, quantity: $q) { id } }",
            json!({ "c": cart, "p": product, "q": quantity }),
            token,
        )
        .await;
    assert_no_errors(&r);
}

/// A guest buys one unit of each of `products` (added in that order) with `method`, under
/// idempotency key `key`: the placed order's id.
pub(crate) async fn a_guest_order(
    app: &TestApp,
    products: &[&str],
    method: &str,
    key: &str,
) -> String {
    let guest = app.gateway("mutation { createCart { id } }", json!({}), None).await;
    let cart = guest["data"]["createCart"]["id"].as_str().unwrap().to_string();
    for product in products {
        add(app, Some(&cart), product, 1, None).await;
    }
    let placed = app.gateway(PLACE, place_input(Some(&cart), method, key), None).await;
    assert_no_errors(&placed);
    placed["data"]["placeOrder"]["id"].as_str().unwrap().to_string()
}

/// Polls the order until it leaves PENDING and PAYMENT_AUTHORIZED (with a deadline).
pub(crate) async fn settled(app: &TestApp, id: &str, token: Option<&str>) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.gateway(ORDER, json!({ "id": id }), token).await;
        assert_no_errors(&r);
        let order = r["data"]["order"].clone();
        if matches!(order["status"].as_str(), Some("CONFIRMED" | "CANCELLED")) {
            return order;
        }
        assert!(tokio::time::Instant::now() < deadline, "order {id} still {}", order["status"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn level(app: &TestApp, admin: &str, product: &str) -> Value {
    let r = app
        .gateway(
            "query($id: ID!) { stockLevel(productId: $id) { onHand reserved available } }",
            json!({ "id": product }),
            Some(admin),
        )
        .await;
    r["data"]["stockLevel"].clone()
}

#[tokio::test]
async fn a_signed_in_shopper_checks_out_and_the_order_is_confirmed_paid_and_listed() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let (token, customer) = app.customer_token("buyer@example.com").await;
    let product = a_product(&app, &admin, 5).await;
    add(&app, None, &product, 2, Some(&token)).await;
    let method = card(&app, "4242424242424242", Some(&token)).await;

    let placed = app.gateway(PLACE, place_input(None, &method, "checkout-1"), Some(&token)).await;
    assert_no_errors(&placed);
    let order = &placed["data"]["placeOrder"];
    assert_eq!(order["status"], "PENDING", "answered at once");
    assert!(order["number"].as_str().unwrap().starts_with("BS-"));
    let id = order["id"].as_str().unwrap().to_string();

    let done = settled(&app, &id, Some(&token)).await;
    assert_eq!(done["status"], "CONFIRMED", "{done}");
    let steps: Vec<&Value> =
        done["timeline"].as_array().unwrap().iter().map(|t| &t["status"]).collect();
    assert_eq!(steps, vec!["PENDING", "PAYMENT_AUTHORIZED", "CONFIRMED"]);
    assert_eq!(done["lines"][0]["quantity"], 2);
    assert_eq!(done["lines"][0]["product"]["id"], json!(product));
    assert_eq!(done["total"], order["total"]);
    // The payment is captured (shortly after confirmation) and the card shown by its last digits.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.gateway(ORDER, json!({ "id": id }), Some(&token)).await;
        if r["data"]["order"]["payment"]["status"] == "CAPTURED" {
            assert_eq!(r["data"]["order"]["payment"]["card"]["last4"], "4242");
            assert_eq!(r["data"]["order"]["payment"]["amount"]["amount"], order["total"]["amount"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "payment not captured: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        level(&app, &admin, &product).await,
        json!({ "onHand": 5, "reserved": 2, "available": 3 })
    );

    // The same request again: the same order. The same key for another request: a conflict.
    let again = app.gateway(PLACE, place_input(None, &method, "checkout-1"), Some(&token)).await;
    assert_eq!(again["data"]["placeOrder"]["id"], json!(id));
    // The cart was emptied by the order.
    let cart = app.gateway("{ cart { itemCount } }", json!({}), Some(&token)).await;
    assert_eq!(cart["data"]["cart"]["itemCount"], 0);

    // Listed, newest first, on the customer too.
    let mine = app
        .gateway(
            "{ myOrders(first: 5) { totalCount edges { node { id status } } } }",
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(mine["data"]["myOrders"]["totalCount"], 1);
    assert_eq!(mine["data"]["myOrders"]["edges"][0]["node"]["id"], json!(id));
    let me =
        app.gateway("{ me { id orders(first: 5) { totalCount } } }", json!({}), Some(&token)).await;
    assert_no_errors(&me);
    assert_eq!(me["data"]["me"]["id"], json!(customer));
    assert_eq!(me["data"]["me"]["orders"]["totalCount"], 1);

    // Someone else's order is not theirs to see or cancel.
    let (other, _) = app.customer_token("nosy@example.com").await;
    assert_eq!(
        error_code(&app.gateway(ORDER, json!({ "id": id }), Some(&other)).await),
        "FORBIDDEN"
    );
    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status cancelReason } }";
    assert_eq!(
        error_code(&app.gateway(cancel, json!({ "id": id }), Some(&other)).await),
        "FORBIDDEN"
    );

    // Cancelled before shipping: stock back, money back.
    let cancelled = app.gateway(cancel, json!({ "id": id }), Some(&token)).await;
    assert_no_errors(&cancelled);
    assert_eq!(
        cancelled["data"]["cancelOrder"],
        json!({ "status": "CANCELLED", "cancelReason": "CUSTOMER_CANCELLED" })
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.gateway(ORDER, json!({ "id": id }), Some(&token)).await;
        let stock = level(&app, &admin, &product).await;
        if r["data"]["order"]["payment"]["status"] == "REFUNDED" && stock["reserved"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not compensated: {r} {stock}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        error_code(&app.gateway(cancel, json!({ "id": id }), Some(&token)).await),
        "CONFLICT"
    );
    app.stop().await;
}

#[tokio::test]
async fn declined_cards_and_bad_requests_end_in_clear_answers() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let product = a_product(&app, &admin, 5).await;
    let guest = app.gateway("mutation { createCart { id } }", json!({}), None).await;
    let cart = guest["data"]["createCart"]["id"].as_str().unwrap().to_string();
    let declined_card = card(&app, "4000000000000002", None).await;

    // Bad input: nothing placed.
    let empty = app.gateway(PLACE, place_input(Some(&cart), &declined_card, "k1"), None).await;
    assert_eq!(error_code(&empty), "BAD_USER_INPUT", "an empty cart");
    add(&app, Some(&cart), &product, 1, None).await;
    let mut no_city = place_input(Some(&cart), &declined_card, "k1");
    no_city["input"]["shippingAddress"]["city"] = json!("  ");
    assert_eq!(error_code(&app.gateway(PLACE, no_city, None).await), "BAD_USER_INPUT");
    let mut bad_key = place_input(Some(&cart), &declined_card, "k1");
    bad_key["input"]["idempotencyKey"] = json!("");
    assert_eq!(error_code(&app.gateway(PLACE, bad_key, None).await), "BAD_USER_INPUT");
    let unknown_cart = place_input(Some(&uuid::Uuid::new_v4().to_string()), &declined_card, "k1");
    assert_eq!(error_code(&app.gateway(PLACE, unknown_cart, None).await), "NOT_FOUND");

    // Declined: cancelled with the reason, stock given back.
    let placed = app.gateway(PLACE, place_input(Some(&cart), &declined_card, "k1"), None).await;
    assert_no_errors(&placed);
    let id = placed["data"]["placeOrder"]["id"].as_str().unwrap().to_string();
    let done = settled(&app, &id, None).await;
    assert_eq!(done["status"], "CANCELLED");
    assert_eq!(done["cancelReason"], "PAYMENT_DECLINED");
    assert_eq!(done["payment"]["status"], "DECLINED");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while level(&app, &admin, &product).await["reserved"] != 0 {
        assert!(tokio::time::Instant::now() < deadline, "stock not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The same request again (its cart gone with the order): the same order, placed once.
    let again = app.gateway(PLACE, place_input(Some(&cart), &declined_card, "k1"), None).await;
    assert_eq!(again["data"]["placeOrder"]["id"], json!(id), "{again}");
    // The same key for a different request is a conflict.
    let other_card = card(&app, "4242424242424242", None).await;
    let reused = app.gateway(PLACE, place_input(Some(&cart), &other_card, "k1"), None).await;
    assert_eq!(error_code(&reused), "CONFLICT");
    app.stop().await;
}

#[tokio::test]
async fn two_hundred_concurrent_checkouts_for_ten_units_confirm_exactly_ten() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let product = a_product(&app, &admin, 10).await;
    let method = card(&app, "4242424242424242", None).await;
    let checkouts = (0..200).map(|i| {
        let (app, product, method) = (&app, product.clone(), method.clone());
        async move { a_guest_order(app, &[&product], &method, &format!("buy-{i}")).await }
    });
    let ids = join_all(checkouts).await;
    let mut confirmed = 0;
    for id in &ids {
        let order = settled(&app, id, None).await;
        match order["status"].as_str() {
            Some("CONFIRMED") => confirmed += 1,
            _ => assert_eq!(order["cancelReason"], "OUT_OF_STOCK", "{order}"),
        }
    }
    assert_eq!(confirmed, 10);
    assert_eq!(
        level(&app, &admin, &product).await,
        json!({ "onHand": 10, "reserved": 10, "available": 0 })
    );
    // Captures only for confirmed orders; none for a cancelled one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        use entities::payments::payment;
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        let captured = payment::Entity::find()
            .filter(payment::Column::Status.eq("CAPTURED"))
            .count(&app.payments.db)
            .await
            .unwrap();
        let all = payment::Entity::find().count(&app.payments.db).await.unwrap();
        assert!(captured <= 10 && all == 10, "{captured} captured of {all} payments");
        if captured == 10 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "captures incomplete: {captured}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The confirmed orders' units are kept until shipment (their holds no longer lapse).
    loop {
        use entities::inventory::reservation;
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        let kept = reservation::Entity::find()
            .filter(reservation::Column::Status.eq("CONFIRMED"))
            .count(&app.inventory.db)
            .await
            .unwrap();
        assert!(kept <= 10, "{kept} reservations kept");
        if kept == 10 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "reservations not kept: {kept}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn concurrent_orders_over_overlapping_products_hold_all_their_lines_or_none() {
    // Three products with five units each; thirty shoppers at once each buy two of them (every
    // pair, its lines added in either order). A reservation takes several stock rows at once:
    // all of an order's lines are held or none is, no product is oversold, and an order that
    // could not have all its lines holds none of them.
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let r =
        app.gateway("{ products(first: 3, sort: NEWEST) { nodes { id } } }", json!({}), None).await;
    let products: Vec<String> = r["data"]["products"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(products.len(), 3);
    let set = "mutation($id: ID!, $n: Int!) { setStock(productId: $id, onHand: $n) { available } }";
    for id in &products {
        assert_no_errors(&app.gateway(set, json!({ "id": id, "n": 5 }), Some(&admin)).await);
    }
    let method = card(&app, "4242424242424242", None).await;
    let pairs = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 0), (0, 2)];
    let checkouts = (0..30).map(|i| {
        let (app, method) = (&app, method.clone());
        let (first, second) = pairs[i % pairs.len()];
        let (first, second) = (products[first].clone(), products[second].clone());
        async move { a_guest_order(app, &[&first, &second], &method, &format!("pair-{i}")).await }
    });
    let ids = join_all(checkouts).await;
    let mut held = [0i64; 3];
    let mut confirmed = 0;
    for id in &ids {
        let order = settled(&app, id, None).await;
        match order["status"].as_str() {
            Some("CONFIRMED") => {
                confirmed += 1;
                for line in order["lines"].as_array().unwrap() {
                    let product = line["product"]["id"].as_str().unwrap();
                    let at = products.iter().position(|p| p == product).unwrap();
                    held[at] += line["quantity"].as_i64().unwrap();
                }
            }
            _ => assert_eq!(order["cancelReason"], "OUT_OF_STOCK", "{order}"),
        }
    }
    // Fifteen units in all, two per order: at most seven orders, and at least one (the first
    // reservation always finds stock).
    assert!((1..=7).contains(&confirmed), "{confirmed} confirmed");
    for (at, product) in products.iter().enumerate() {
        assert!(held[at] <= 5, "product {at} sold {} of 5", held[at]);
        assert_eq!(
            level(&app, &admin, product).await,
            json!({ "onHand": 5, "reserved": held[at], "available": 5 - held[at] }),
            "product {at}: reserved exactly what confirmed orders hold"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn checkouts_cut_off_by_a_restart_all_reach_a_final_state() {
    // The first run consumes no events, as if every process died right after the orders were
    // placed; checkouts left pending for a second are asked again after the restart.
    let app = TestApp::spawn_with(|s| {
        s.orders.resume_after_secs = 1;
        s.events.consume = false;
    })
    .await;
    better_store::seed::load(&app.identity, &app.catalog, Some(&app.inventory))
        .await
        .expect("seed");
    let admin = app.admin_token().await;
    let product = a_product(&app, &admin, 5).await;
    let method = card(&app, "4242424242424242", None).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(a_guest_order(&app, &[&product], &method, &format!("r-{i}")).await);
    }
    for id in &ids {
        let r = app.gateway(ORDER, json!({ "id": id }), None).await;
        assert_eq!(r["data"]["order"]["status"], "PENDING");
    }
    // Everything stops mid-saga: events in flight inside the process are lost.
    let app = app.restart_with(|s| s.events.consume = true).await;
    let mut confirmed = 0;
    for id in &ids {
        let order = settled(&app, id, None).await;
        match order["status"].as_str() {
            Some("CONFIRMED") => confirmed += 1,
            _ => assert_eq!(order["cancelReason"], "OUT_OF_STOCK", "{order}"),
        }
    }
    assert_eq!(confirmed, 5, "every order final, none stuck, none oversold");
    let admin = app.admin_token().await;
    assert_eq!(
        level(&app, &admin, &product).await,
        json!({ "onHand": 5, "reserved": 5, "available": 0 })
    );
    app.stop().await;
}
