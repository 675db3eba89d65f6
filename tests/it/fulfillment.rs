//! After the purchase: every confirmed order gets a parcel, the simulated carrier takes it to
//! the door on its clock (or an administrator does by hand), and the order follows through
//! SHIPPED, OUT_FOR_DELIVERY and DELIVERED.

use std::time::Duration;

use serde_json::{Value, json};

use crate::checkout::{ORDER, a_placed_order, level, settled};
use crate::support::{TestApp, assert_follows_schema, assert_no_errors, error_code};

const TRACKED: &str = "query($id: ID!) { order(id: $id) { status timeline { status reason } shipment { id carrier trackingNumber status reason items { productId name quantity } events { status description } } } }";
const ADVANCE: &str = "mutation($id: ID!) { advanceShipment(id: $id) { status } }";
const FAIL: &str =
    "mutation($id: ID!, $r: String!) { failShipment(id: $id, reason: $r) { status reason } }";

/// Polls the order until `done` holds (with a deadline), and returns it.
async fn order_until(
    app: &TestApp,
    id: &str,
    token: Option<&str>,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.gateway(TRACKED, json!({ "id": id }), token).await;
        assert_no_errors(&r);
        let order = r["data"]["order"].clone();
        if done(&order) {
            return order;
        }
        assert!(tokio::time::Instant::now() < deadline, "order {id} stuck at {order}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A signed-in customer's confirmed order of `quantity` units of a product with `stock`.
async fn confirmed_order(
    app: &TestApp,
    admin: &str,
    email: &str,
    stock: i64,
) -> (String, String, String) {
    let (token, product, order) = a_placed_order(app, admin, email, stock, 2).await;
    let id = order["id"].as_str().unwrap().to_string();
    assert_eq!(settled(app, &id, Some(&token)).await["status"], "CONFIRMED");
    (token, id, product)
}

#[tokio::test]
async fn the_carrier_delivers_a_confirmed_order_on_its_clock_and_the_order_completes() {
    let app = TestApp::spawn_with(|s| s.fulfillment.step_secs = 1).await;
    better_store::seed::load(&app.identity, &app.catalog, Some(&app.inventory))
        .await
        .expect("seed");
    let mut events = app.bus.subscribe("schema-check", &["order", "shipment"]);
    let admin = app.admin_token().await;
    let (token, id, product) = confirmed_order(&app, &admin, "parcel@example.com", 5).await;

    let done = order_until(&app, &id, Some(&token), |o| o["status"] == "DELIVERED").await;
    let shipment = &done["shipment"];
    assert_eq!(shipment["status"], "DELIVERED");
    assert_eq!(shipment["carrier"], "Better Parcel");
    let tracking = shipment["trackingNumber"].as_str().unwrap();
    assert!(tracking.starts_with("BSP") && tracking.len() == 15, "{tracking}");
    assert_eq!(shipment["items"][0]["productId"], json!(product));
    assert_eq!(shipment["items"][0]["quantity"], 2);
    let steps: Vec<&Value> =
        shipment["events"].as_array().unwrap().iter().map(|e| &e["status"]).collect();
    assert_eq!(steps, vec!["PREPARING", "SHIPPED", "OUT_FOR_DELIVERY", "DELIVERED"]);
    assert_eq!(shipment["events"][1]["description"], "Handed to Better Parcel");
    let timeline: Vec<&Value> =
        done["timeline"].as_array().unwrap().iter().map(|t| &t["status"]).collect();
    assert_eq!(
        timeline,
        vec![
            "PENDING",
            "PAYMENT_AUTHORIZED",
            "CONFIRMED",
            "SHIPPED",
            "OUT_FOR_DELIVERY",
            "DELIVERED"
        ]
    );
    // Shipped units left the shelf: no longer reserved, no longer on hand.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stock = level(&app, &admin, &product).await;
        if stock == json!({ "onHand": 3, "reserved": 0, "available": 3 }) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "stock not committed: {stock}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A delivered order cannot be cancelled; another customer cannot see its parcel.
    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status } }";
    assert_eq!(
        error_code(&app.gateway(cancel, json!({ "id": id }), Some(&token)).await),
        "CONFLICT"
    );
    let (other, _) = app.customer_token("nosy@example.com").await;
    let peek = "query($id: ID!) { order(id: $id) { shipment { trackingNumber } } }";
    // Every event of the order's life follows its documented schema.
    let mut seen = std::collections::BTreeSet::new();
    while let Some(Some(event)) =
        futures::FutureExt::now_or_never(futures::StreamExt::next(&mut events))
    {
        assert_follows_schema(&event);
        seen.insert(event.event_type.clone());
    }
    for expected in [
        "order.placed",
        "order.confirmed",
        "order.delivered",
        "shipment.created",
        "shipment.shipped",
        "shipment.out_for_delivery",
        "shipment.delivered",
    ] {
        assert!(seen.contains(expected), "{expected} not seen in {seen:?}");
    }
    assert_eq!(
        error_code(&app.gateway(peek, json!({ "id": id }), Some(&other)).await),
        "FORBIDDEN"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_administrator_moves_and_fails_parcels_by_hand_within_the_rules() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let (token, id, _) = confirmed_order(&app, &admin, "hand@example.com", 5).await;
    let order = order_until(&app, &id, Some(&token), |o| o["shipment"].is_object()).await;
    assert_eq!(order["shipment"]["status"], "PREPARING");
    let shipment = order["shipment"]["id"].as_str().unwrap().to_string();

    // Only administrators, with a real shipment id, and a reason on one line.
    let vars = json!({ "id": shipment });
    assert_eq!(error_code(&app.gateway(ADVANCE, vars.clone(), Some(&token)).await), "FORBIDDEN");
    assert_eq!(error_code(&app.gateway(ADVANCE, vars.clone(), None).await), "UNAUTHENTICATED");
    let bad = json!({ "id": "not-an-id" });
    assert_eq!(error_code(&app.gateway(ADVANCE, bad, Some(&admin)).await), "BAD_USER_INPUT");
    let unknown = json!({ "id": uuid::Uuid::new_v4() });
    assert_eq!(error_code(&app.gateway(ADVANCE, unknown, Some(&admin)).await), "NOT_FOUND");
    // A parcel still in the warehouse cannot fail delivery.
    let fail = json!({ "id": shipment, "r": "nobody home" });
    assert_eq!(error_code(&app.gateway(FAIL, fail.clone(), Some(&admin)).await), "CONFLICT");

    let shipped = app.gateway(ADVANCE, vars.clone(), Some(&admin)).await;
    assert_eq!(shipped["data"]["advanceShipment"]["status"], "SHIPPED", "{shipped}");
    order_until(&app, &id, Some(&token), |o| o["status"] == "SHIPPED").await;
    let blank = json!({ "id": shipment, "r": "  " });
    assert_eq!(error_code(&app.gateway(FAIL, blank, Some(&admin)).await), "BAD_USER_INPUT");
    let failed = app.gateway(FAIL, fail.clone(), Some(&admin)).await;
    assert_eq!(
        failed["data"]["failShipment"],
        json!({ "status": "FAILED", "reason": "nobody home" })
    );
    let order = order_until(&app, &id, Some(&token), |o| o["status"] == "DELIVERY_FAILED").await;
    assert_eq!(order["timeline"].as_array().unwrap().last().unwrap()["reason"], "nobody home");
    // Nothing moves a failed parcel, and nothing was written by the refusals.
    assert_eq!(error_code(&app.gateway(ADVANCE, vars.clone(), Some(&admin)).await), "CONFLICT");
    assert_eq!(error_code(&app.gateway(FAIL, fail, Some(&admin)).await), "CONFLICT");
    let order = app.gateway(TRACKED, json!({ "id": id }), Some(&token)).await;
    let steps: Vec<&Value> = order["data"]["order"]["shipment"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["status"])
        .collect();
    assert_eq!(steps, vec!["PREPARING", "SHIPPED", "FAILED"]);
    app.stop().await;
}

#[tokio::test]
async fn a_delivered_parcel_cannot_be_advanced_and_a_cancelled_order_cancels_its_parcel() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let (token, id, _) = confirmed_order(&app, &admin, "door@example.com", 5).await;
    let order = order_until(&app, &id, Some(&token), |o| o["shipment"].is_object()).await;
    let vars = json!({ "id": order["shipment"]["id"] });
    for expected in ["SHIPPED", "OUT_FOR_DELIVERY", "DELIVERED"] {
        let r = app.gateway(ADVANCE, vars.clone(), Some(&admin)).await;
        assert_eq!(r["data"]["advanceShipment"]["status"], expected, "{r}");
    }
    let refused = app.gateway(ADVANCE, vars.clone(), Some(&admin)).await;
    assert_eq!(error_code(&refused), "CONFLICT");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("delivered"), "{refused}");
    order_until(&app, &id, Some(&token), |o| o["status"] == "DELIVERED").await;

    // Another order, cancelled while its parcel is being prepared: the parcel is cancelled.
    let (token, _, order) = a_placed_order(&app, &admin, "changed-mind@example.com", 5, 1).await;
    let id = order["id"].as_str().unwrap().to_string();
    order_until(&app, &id, Some(&token), |o| o["shipment"].is_object()).await;
    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status } }";
    assert_no_errors(&app.gateway(cancel, json!({ "id": id }), Some(&token)).await);
    let order =
        order_until(&app, &id, Some(&token), |o| o["shipment"]["status"] == "CANCELLED").await;
    assert_eq!(order["shipment"]["reason"], "ORDER_CANCELLED");
    let r = app.gateway(ORDER, json!({ "id": id }), Some(&token)).await;
    assert_eq!(r["data"]["order"]["status"], "CANCELLED");
    app.stop().await;
}
