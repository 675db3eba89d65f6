//! Live order status: the orders subgraph streams committed status changes over WebSocket
//! (`graphql-transport-ws` and the legacy `graphql-ws`), to the order's owner only.

use serde_json::{Value, json};

use crate::checkout::{PLACE, a_placed_order, a_product, add, card, place_input};
use crate::support::{TestApp, assert_no_errors};
use crate::ws_client::{Heard, WsClient};

const CHANGED: &str = "subscription($id: ID!) { orderStatusChanged(orderId: $id) { status previousStatus reason order { id number status } } }";
const MINE: &str = "subscription { myOrderUpdates { status previousStatus order { id } } }";

fn bearer(token: &str) -> Value {
    json!({ "Authorization": format!("Bearer {token}") })
}

/// A signed-in customer's order, placed: (order id, token).
async fn an_order(app: &TestApp, email: &str) -> (String, String) {
    let admin = app.admin_token().await;
    let (token, _, order) = a_placed_order(app, &admin, email, 5, 1).await;
    (order["id"].as_str().unwrap().to_string(), token)
}

#[tokio::test]
async fn a_customer_watches_every_committed_transition_until_delivery() {
    let app = TestApp::spawn_with(|s| s.fulfillment.step_secs = 1).await;
    better_store::seed::load(&app.identity, &app.catalog, Some(&app.inventory))
        .await
        .expect("seed");
    let (token, _) = app.customer_token("watcher@example.com").await;

    // Watching all of their orders from before the order exists.
    let mut mine = WsClient::connect(&app.orders_url, "graphql-transport-ws").await;
    let ack = mine.init(bearer(&token)).await;
    assert!(matches!(&ack, Heard::Message(m) if m["type"] == "connection_ack"), "{ack:?}");
    mine.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": MINE } })).await;

    let admin = app.admin_token().await;
    let product = a_product(&app, &admin, 5).await;
    add(&app, None, &product, 1, Some(&token)).await;
    let method = card(&app, "4242424242424242", Some(&token)).await;
    let placed = app.gateway(PLACE, place_input(None, &method, "watch"), Some(&token)).await;
    let id = placed["data"]["placeOrder"]["id"].as_str().unwrap().to_string();

    // And this one order, from now until it is delivered.
    let mut one = WsClient::connect(&app.orders_url, "graphql-transport-ws").await;
    one.init(bearer(&token)).await;
    one.send(json!({ "id": "o", "type": "subscribe", "payload": { "query": CHANGED, "variables": { "id": id } } }))
        .await;

    let expected =
        ["PENDING", "PAYMENT_AUTHORIZED", "CONFIRMED", "SHIPPED", "OUT_FOR_DELIVERY", "DELIVERED"];
    let mut previous = Value::Null;
    for status in expected {
        let next = mine.message().await;
        assert_eq!(next["type"], "next", "{next}");
        let change = &next["payload"]["data"]["myOrderUpdates"];
        assert_eq!(change["status"], status, "{next}");
        assert_eq!(change["previousStatus"], previous, "{next}");
        assert_eq!(change["order"]["id"], json!(id));
        previous = json!(status);
    }
    // The single-order stream saw a suffix of the same sequence, then completed.
    let mut seen = Vec::new();
    loop {
        let message = one.message().await;
        match message["type"].as_str() {
            Some("next") => {
                let change = &message["payload"]["data"]["orderStatusChanged"];
                assert_eq!(change["order"]["id"], json!(id));
                seen.push(change["status"].as_str().unwrap().to_string());
            }
            Some("complete") => break,
            other => panic!("unexpected {other:?}: {message}"),
        }
    }
    assert!(expected.ends_with(&seen.iter().map(String::as_str).collect::<Vec<_>>()), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("DELIVERED"));
    app.stop().await;
}

#[tokio::test]
async fn strangers_and_bad_tokens_are_turned_away_and_the_legacy_protocol_works() {
    let app = TestApp::seeded().await;
    let (id, token) = an_order(&app, "owner@example.com").await;
    let subscribe = |id: &str| json!({ "id": "s", "type": "subscribe", "payload": { "query": CHANGED, "variables": { "id": id } } });

    // Someone else's order: one result with the error and no data, then the end; nothing
    // streamed.
    let (other, _) = app.customer_token("stranger@example.com").await;
    let mut ws = WsClient::connect(&app.orders_url, "graphql-transport-ws").await;
    ws.init(bearer(&other)).await;
    ws.send(subscribe(&id)).await;
    let refused = ws.message().await;
    assert_eq!(refused["payload"]["data"], Value::Null, "{refused}");
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");
    assert_eq!(ws.message().await["type"], "complete");

    // No token: the customer's order needs one.
    let mut ws = WsClient::connect(&app.orders_url, "graphql-transport-ws").await;
    ws.init(json!({})).await;
    ws.send(subscribe(&id)).await;
    let refused = ws.message().await;
    let code = &refused["payload"]["errors"][0]["extensions"]["code"];
    assert_eq!(code, "UNAUTHENTICATED", "{refused}");
    assert_eq!(ws.message().await["type"], "complete");

    // A token that does not verify: the connection is refused at init.
    let mut ws = WsClient::connect(&app.orders_url, "graphql-transport-ws").await;
    match ws.init(bearer("not-a-token")).await {
        Heard::Closed(code) => assert_eq!(code, 4403),
        Heard::Message(m) => panic!("accepted a bad token: {m}"),
    }

    // The legacy protocol: start → data, for the owner (the order is already confirmed or
    // on its way, so cancel it to see a change arrive).
    let mut ws = WsClient::connect(&app.orders_url, "graphql-ws").await;
    let ack = ws.init(bearer(&token)).await;
    assert!(matches!(&ack, Heard::Message(m) if m["type"] == "connection_ack"), "{ack:?}");
    ws.send(json!({ "id": "l", "type": "start", "payload": { "query": CHANGED, "variables": { "id": id } } }))
        .await;
    crate::checkout::settled(&app, &id, Some(&token)).await;
    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status } }";
    assert_no_errors(&app.gateway(cancel, json!({ "id": id }), Some(&token)).await);
    let data = ws.message().await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["payload"]["data"]["orderStatusChanged"]["status"], "CANCELLED");
    assert_eq!(data["payload"]["data"]["orderStatusChanged"]["reason"], "CUSTOMER_CANCELLED");
    assert_eq!(ws.message().await["type"], "complete");
    app.stop().await;
}
