//! Loyalty points: earned on a confirmed order (pending until delivery), redeemed at checkout
//! as a discount the order records, given back when that order is cancelled, lost when an
//! undelivered order is cancelled, expired after their time. Never below zero.

use std::time::Duration;

use serde_json::{Value, json};

use crate::checkout::{ORDER, a_product, add, card, place_input, settled};
use crate::support::{TestApp, assert_no_errors, error_code};

const POINTS: &str = "{ me { rewards { balance pending pointValue { amount } transactions { kind points orderId } } } }";
const SHIP: &str = "query($id: ID!) { order(id: $id) { shipment { id } } }";
const ADVANCE: &str = "mutation($id: ID!) { advanceShipment(id: $id) { status } }";
const PLACED: &str = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status subtotal { amount } discount { amount } pointsRedeemed total { amount } } }";

async fn points(app: &TestApp, token: &str) -> Value {
    let r = app.gateway(POINTS, json!({}), Some(token)).await;
    assert_no_errors(&r);
    r["data"]["me"]["rewards"].clone()
}

/// Polls the customer's points until `done` holds (with a deadline).
async fn points_until(app: &TestApp, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rewards = points(app, token).await;
        if done(&rewards) {
            return rewards;
        }
        assert!(tokio::time::Instant::now() < deadline, "points stuck at {rewards}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn with_points(mut input: Value, points: i64) -> Value {
    input["input"]["redeemPoints"] = json!(points);
    input
}

/// Delivers the order's parcel by hand.
async fn deliver(app: &TestApp, admin: &str, token: &str, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let shipment = loop {
        let r = app.gateway(SHIP, json!({ "id": id }), Some(token)).await;
        if let Some(s) = r["data"]["order"]["shipment"]["id"].as_str() {
            break s.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "no shipment for {id}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    for _ in 0..3 {
        assert_no_errors(&app.gateway(ADVANCE, json!({ "id": shipment }), Some(admin)).await);
    }
}

fn decimal(v: &Value) -> rust_decimal::Decimal {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn points_are_earned_on_delivery_redeemed_at_checkout_and_given_back_on_cancel() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let (token, _) = app.customer_token("loyal@example.com").await;
    let product = a_product(&app, &admin, 20).await;
    let method = card(&app, "4242424242424242", Some(&token)).await;

    // Nothing to redeem yet: refused, nothing placed, nothing written.
    add(&app, None, &product, 2, Some(&token)).await;
    let refused = app
        .gateway(PLACED, with_points(place_input(None, &method, "early"), 100), Some(&token))
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("0 points"), "{refused}");
    let mine = app.gateway("{ myOrders(first: 5) { totalCount } }", json!({}), Some(&token)).await;
    assert_eq!(mine["data"]["myOrders"]["totalCount"], 0);

    // A first order earns points: pending until delivered, then spendable.
    let placed = app.gateway(PLACED, place_input(None, &method, "first"), Some(&token)).await;
    assert_no_errors(&placed);
    let first = placed["data"]["placeOrder"].clone();
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(settled(&app, &id, Some(&token)).await["status"], "CONFIRMED");
    let earned = (decimal(&first["total"]["amount"]) * rust_decimal::Decimal::from(10)).floor();
    let earned: i64 = earned.to_string().parse().unwrap();
    assert!(earned > 0);
    let rewards = points_until(&app, &token, |r| r["pending"] == earned).await;
    assert_eq!(rewards["balance"], 0);
    assert_eq!(rewards["pointValue"]["amount"], "0.01");
    deliver(&app, &admin, &token, &id).await;
    let rewards = points_until(&app, &token, |r| r["balance"] == earned).await;
    assert_eq!(rewards["pending"], 0);
    let kinds: Vec<&Value> =
        rewards["transactions"].as_array().unwrap().iter().map(|t| &t["kind"]).collect();
    assert_eq!(kinds, vec!["EARNED", "EARNED_PENDING"]);

    // A guest cannot redeem; a customer cannot redeem more than they have, or pay a whole
    // order with points.
    let guest_cart = app.gateway("mutation { createCart { id } }", json!({}), None).await;
    let guest_cart = guest_cart["data"]["createCart"]["id"].as_str().unwrap().to_string();
    add(&app, Some(&guest_cart), &product, 1, None).await;
    let guest_method = card(&app, "4242424242424242", None).await;
    let guest = app
        .gateway(PLACED, with_points(place_input(Some(&guest_cart), &guest_method, "g"), 100), None)
        .await;
    assert_eq!(error_code(&guest), "UNAUTHENTICATED");
    add(&app, None, &product, 1, Some(&token)).await;
    let too_many = app
        .gateway(
            PLACED,
            with_points(place_input(None, &method, "many"), earned + 100),
            Some(&token),
        )
        .await;
    assert_eq!(error_code(&too_many), "BAD_USER_INPUT");
    let negative =
        app.gateway(PLACED, with_points(place_input(None, &method, "neg"), -5), Some(&token)).await;
    assert_eq!(error_code(&negative), "BAD_USER_INPUT");
    // Someone else's cart: not theirs to redeem on.
    let (other, _) = app.customer_token("other@example.com").await;
    let foreign = app
        .gateway(
            PLACED,
            with_points(place_input(Some(&guest_cart), &method, "f"), 100),
            Some(&other),
        )
        .await;
    assert_ne!(error_code(&foreign), "", "{foreign}");
    assert_eq!(points(&app, &token).await["balance"], earned, "refusals wrote nothing");

    // Redeemed at checkout: the order records the discount and charges the rest.
    let placed = app
        .gateway(PLACED, with_points(place_input(None, &method, "second"), 100), Some(&token))
        .await;
    assert_no_errors(&placed);
    let second = placed["data"]["placeOrder"].clone();
    assert_eq!(second["pointsRedeemed"], 100);
    assert_eq!(second["discount"]["amount"], "1.00");
    assert_eq!(
        decimal(&second["total"]["amount"]),
        decimal(&second["subtotal"]["amount"]) - rust_decimal::Decimal::ONE
    );
    let id2 = second["id"].as_str().unwrap().to_string();
    let order = settled(&app, &id2, Some(&token)).await;
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(order["payment"]["amount"]["amount"], second["total"]["amount"]);
    // The same request again: the same order, no second redemption.
    let again = app
        .gateway(PLACED, with_points(place_input(None, &method, "second"), 100), Some(&token))
        .await;
    assert_eq!(again["data"]["placeOrder"]["id"], json!(id2));
    let rewards = points_until(&app, &token, |r| r["pending"].as_i64() > Some(0)).await;
    assert_eq!(rewards["balance"], earned - 100);

    // Cancelled: the redeemed points come back, the pending ones are lost.
    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status } }";
    assert_no_errors(&app.gateway(cancel, json!({ "id": id2 }), Some(&token)).await);
    let rewards = points_until(&app, &token, |r| r["balance"] == earned && r["pending"] == 0).await;
    let kinds: Vec<&Value> =
        rewards["transactions"].as_array().unwrap().iter().map(|t| &t["kind"]).collect();
    assert!(
        kinds.contains(&&json!("RESTORED")) && kinds.contains(&&json!("REVERSED")),
        "{kinds:?}"
    );
    let r = app.gateway(ORDER, json!({ "id": id2 }), Some(&token)).await;
    assert_eq!(r["data"]["order"]["status"], "CANCELLED");

    // After their time, spendable points expire.
    let later = chrono::Utc::now() + chrono::Duration::days(366);
    let lapsed = rewards::ledger::expire_due(&app.rewards, later).await.unwrap();
    assert!(lapsed >= 1);
    let rewards = points(&app, &token).await;
    assert_eq!(rewards["balance"], 0);
    // Both what was left of the earned points and the points given back lapse.
    let expired: i64 = rewards["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "EXPIRED")
        .map(|t| t["points"].as_i64().unwrap())
        .sum();
    assert_eq!(expired, -earned);

    // Another customer's points are not theirs to read.
    let r = app.gateway(POINTS, json!({}), Some(&other)).await;
    assert_eq!(r["data"]["me"]["rewards"]["balance"], 0);
    app.stop().await;
}
