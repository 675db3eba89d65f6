//! Live order tracking through the gateway: every transport a storefront uses, each event
//! resolved across the graph (catalog, fulfillment), refusals at subscribe, and clean-up when
//! a client goes away.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::checkout::a_placed_order;
use crate::support::{TestApp, assert_no_errors};
use crate::ws_client::{Heard, WsClient};

const TRACK: &str = "subscription($id: ID!) { orderStatusChanged(orderId: $id) { status previousStatus at reason order { number total { amount currency } lines { quantity product { name } } shipment { trackingNumber } } } }";

const STATUSES: [&str; 6] =
    ["PENDING", "PAYMENT_AUTHORIZED", "CONFIRMED", "SHIPPED", "OUT_FOR_DELIVERY", "DELIVERED"];

fn bearer(token: &str) -> Value {
    json!({ "Authorization": format!("Bearer {token}") })
}

/// A platform whose carrier takes a second per step, and a customer's order just placed.
async fn placed() -> (TestApp, String, String) {
    placed_with_carrier_step(1).await
}

async fn placed_with_carrier_step(step_secs: u64) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(|s| s.fulfillment.step_secs = step_secs).await;
    better_store::seed::load(&app.identity, &app.catalog, Some(&app.inventory))
        .await
        .expect("seed");
    let admin = app.admin_token().await;
    let (token, _, order) = a_placed_order(&app, &admin, "tracker@example.com", 5, 2).await;
    let id = order["id"].as_str().unwrap().to_string();
    (app, id, token)
}

/// Checks a stream of events: a suffix of the order's life, ending DELIVERED, every event
/// resolved across the graph.
fn check_events(events: &[Value]) {
    let statuses: Vec<&str> = events.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert!(!statuses.is_empty() && STATUSES.ends_with(&statuses), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"DELIVERED"));
    for event in events {
        let order = &event["order"];
        assert!(order["number"].as_str().unwrap().starts_with("BS-"), "{event}");
        assert_eq!(order["total"]["currency"], "USD");
        assert_eq!(order["lines"][0]["quantity"], 2);
        assert!(order["lines"][0]["product"]["name"].is_string(), "the catalog named it: {event}");
    }
    let delivered = events.last().unwrap();
    assert!(delivered["order"]["shipment"]["trackingNumber"].as_str().unwrap().starts_with("BSP"));
}

/// Reads a graphql-transport-ws or graphql-ws stream until `complete`.
async fn until_complete(ws: &mut WsClient, next: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let message = ws.message().await;
        match message["type"].as_str() {
            Some(t) if t == next => {
                assert!(message["payload"]["errors"].is_null(), "{message}");
                events.push(message["payload"]["data"]["orderStatusChanged"].clone());
            }
            Some("complete") => return events,
            other => panic!("unexpected {other:?}: {message}"),
        }
    }
}

#[tokio::test]
async fn an_order_is_tracked_live_through_the_gateway_over_websocket() {
    let (app, id, token) = placed().await;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": TRACK, "variables": { "id": id } } });
    let mut modern = WsClient::connect(&app.gateway_url, "graphql-transport-ws").await;
    let ack = modern.init(bearer(&token)).await;
    assert!(matches!(&ack, Heard::Message(m) if m["type"] == "connection_ack"), "{ack:?}");
    modern.send(subscribe).await;
    let mut legacy = WsClient::connect(&app.gateway_url, "graphql-ws").await;
    legacy.init(bearer(&token)).await;
    legacy
        .send(json!({ "id": "1", "type": "start", "payload": { "query": TRACK, "variables": { "id": id } } }))
        .await;
    check_events(&until_complete(&mut modern, "next").await);
    check_events(&until_complete(&mut legacy, "data").await);
    app.stop().await;
}

/// The chunks of a streaming HTTP response, as text, until it ends.
async fn streamed(app: &TestApp, accept: &str, id: &str, token: &str) -> String {
    let response = app
        .client
        .post(format!("{}/graphql", app.gateway_url))
        .header("accept", accept)
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({ "query": TRACK, "variables": { "id": id } }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let mut response = response;
    let mut body = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("the stream moves within the deadline");
        match chunk {
            Ok(Some(bytes)) => body.push_str(&String::from_utf8_lossy(&bytes)),
            _ => return body,
        }
    }
}

#[tokio::test]
async fn an_order_is_tracked_live_over_server_sent_events_and_multipart_http() {
    let (app, id, token) = placed().await;
    let (sse, multipart) = tokio::join!(
        streamed(&app, "text/event-stream", &id, &token),
        streamed(&app, "multipart/mixed;subscriptionSpec=1.0, application/json", &id, &token),
    );
    // Server-sent events: `next` events, then `complete`.
    let events: Vec<Value> = sse
        .split("\n\n")
        .filter_map(|block| block.strip_prefix("event: next\ndata: "))
        .map(|data| {
            serde_json::from_str::<Value>(data).unwrap()["data"]["orderStatusChanged"].clone()
        })
        .collect();
    check_events(&events);
    assert!(sse.trim_end().ends_with("event: complete\ndata:"), "{sse}");
    // Multipart: one JSON part per event (heartbeats are `{}`), then the closing boundary.
    let events: Vec<Value> = multipart
        .split("\r\n--graphql")
        .filter_map(|part| part.split("\r\n\r\n").nth(1))
        .filter_map(|json| serde_json::from_str::<Value>(json).ok())
        .filter(|part| part.get("payload").is_some())
        .map(|part| part["payload"]["data"]["orderStatusChanged"].clone())
        .collect();
    check_events(&events);
    assert!(multipart.ends_with("\r\n--graphql--\r\n"), "{multipart:?}");
    app.stop().await;
}

#[tokio::test]
async fn refused_subscriptions_stream_nothing_and_a_client_that_leaves_leaves_nothing_behind() {
    let (app, id, token) = placed().await;
    let subscribe = json!({ "id": "s", "type": "subscribe", "payload": { "query": TRACK, "variables": { "id": id } } });

    // Another customer's order: the protocol's error, nothing streamed.
    let (other, _) = app.customer_token("someone@example.com").await;
    let mut ws = WsClient::connect(&app.gateway_url, "graphql-transport-ws").await;
    ws.init(bearer(&other)).await;
    ws.send(subscribe.clone()).await;
    let refused = ws.message().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");
    // No token at all.
    let mut ws = WsClient::connect(&app.gateway_url, "graphql-transport-ws").await;
    ws.init(json!({})).await;
    ws.send(subscribe.clone()).await;
    let refused = ws.message().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "UNAUTHENTICATED", "{refused}");
    // A token that does not verify (expired, forged): refused at connection_init.
    let mut ws = WsClient::connect(&app.gateway_url, "graphql-transport-ws").await;
    match ws.init(bearer("eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl")).await {
        Heard::Closed(code) => assert_eq!(code, 4403),
        Heard::Message(m) => panic!("accepted a bad token: {m}"),
    }
    // Subscribing before connection_init: 4401.
    let mut ws = WsClient::connect(&app.gateway_url, "graphql-transport-ws").await;
    ws.send(subscribe.clone()).await;
    assert!(matches!(ws.next().await, Heard::Closed(4401)));

    // The owner subscribes, then goes away mid-stream: the orders subgraph ends up with no
    // subscriber (the gateway's upstream subscription went with the client).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut ws = WsClient::connect(&app.gateway_url, "graphql-transport-ws").await;
    ws.init(bearer(&token)).await;
    ws.send(subscribe).await;
    while app.orders.feed.subscribers() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never subscribed upstream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(ws);
    while app.orders.feed.subscribers() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "an upstream subscription was left behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_subscriber_on_one_gateway_sees_a_change_made_through_another_replica() {
    // Two processes sharing databases only make sense on PostgreSQL and Redis (CI runs them).
    if std::env::var("TEST_DATABASE_URL").is_err() || std::env::var("TEST_REDIS_URL").is_err() {
        eprintln!("skipped: needs TEST_DATABASE_URL and TEST_REDIS_URL");
        return;
    }
    // The carrier waits an hour: the order stays cancellable.
    let (a, id, token) = placed_with_carrier_step(3600).await;
    let b = a.replica().await;
    crate::checkout::settled(&a, &id, Some(&token)).await;
    // Subscribed on gateway A (and so on A's orders replica)...
    let mut ws = WsClient::connect(&a.gateway_url, "graphql-transport-ws").await;
    ws.init(bearer(&token)).await;
    let query = "subscription($id: ID!) { orderStatusChanged(orderId: $id) { status reason } }";
    ws.send(json!({ "id": "x", "type": "subscribe", "payload": { "query": query, "variables": { "id": id } } }))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while a.orders.feed.subscribers() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...the change is made through gateway B and B's orders replica.
    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status } }";
    assert_no_errors(&b.gateway(cancel, json!({ "id": id }), Some(&token)).await);
    let event = ws.message().await;
    assert_eq!(event["payload"]["data"]["orderStatusChanged"]["status"], "CANCELLED", "{event}");
    assert_eq!(event["payload"]["data"]["orderStatusChanged"]["reason"], "CUSTOMER_CANCELLED");
    assert_eq!(ws.message().await["type"], "complete");
    b.stop_replica().await;
    a.stop().await;
}

/// A subgraph that accepts one subscription, sends one result, then drops the connection
/// (as a crashed process does). Speaks `graphql-transport-ws` by hand.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback returns its Response.
async fn a_subgraph_that_dies() -> String {
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let callback = |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
                                mut response: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    response.headers_mut().insert(
                        "Sec-WebSocket-Protocol",
                        "graphql-transport-ws".parse().unwrap(),
                    );
                    Ok(response)
                };
                let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await
                else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = socket.next().await {
                    let message: Value = serde_json::from_str(&text).unwrap_or_default();
                    match message["type"].as_str() {
                        Some("connection_init") => {
                            let ack = json!({ "type": "connection_ack" }).to_string();
                            let _ = socket.send(Message::text(ack)).await;
                        }
                        Some("subscribe") => {
                            let next = json!({ "id": message["id"], "type": "next", "payload": { "data": { "ticks": 1 } } });
                            let _ = socket.send(Message::text(next.to_string())).await;
                            // Gone, without a goodbye.
                            return;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn when_a_subgraph_connection_drops_the_client_stream_ends_with_an_error() {
    let url = a_subgraph_that_dies().await;
    let sdl = r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
type Query { hello: String }
type Subscription { ticks: Int! }
"#;
    let supergraph = gateway::compose::compose(&[gateway::compose::SubgraphSdl {
        name: "ticker".into(),
        url,
        sdl: sdl.into(),
    }])
    .expect("composes");
    let app = gateway::app(&supergraph, &gateway::GatewayOptions::default()).await.expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gateway::serve(listener, app, async {
        let _ = stopped.await;
    }));

    let mut ws = WsClient::connect(&gateway_url, "graphql-transport-ws").await;
    ws.init(json!({})).await;
    ws.send(
        json!({ "id": "t", "type": "subscribe", "payload": { "query": "subscription { ticks }" } }),
    )
    .await;
    let first = ws.message().await;
    assert_eq!(first["payload"]["data"]["ticks"], 1, "{first}");
    let lost = ws.message().await;
    assert_eq!(lost["type"], "next", "{lost}");
    assert_eq!(lost["payload"]["errors"][0]["extensions"]["code"], "SUBSCRIPTION_UPSTREAM_LOST");
    assert_eq!(ws.message().await["type"], "complete", "the stream ends; it does not hang");
    let _ = stop.send(());
    drop(ws);
    let _ = served.await;
}

#[tokio::test]
async fn a_connection_holds_a_bounded_number_of_subscriptions_and_a_client_a_bounded_number_of_connections()
 {
    let app = TestApp::spawn_with(|s| {
        s.gateway.subscriptions_per_connection = 2;
        s.gateway.live_connections_per_client = 1;
    })
    .await;
    let (token, _) = app.customer_token("busy@example.com").await;
    let mut ws = WsClient::connect(&app.gateway_url, "graphql-transport-ws").await;
    ws.init(bearer(&token)).await;
    for id in ["1", "2", "3"] {
        let query = "subscription { myOrderUpdates { status } }";
        ws.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query } })).await;
    }
    let refused = ws.message().await;
    assert_eq!(refused["id"], "3", "{refused}");
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS");
    // A second live connection from the same address is turned away.
    let url = format!("{}/graphql", app.gateway_url.replacen("http", "ws", 1));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("graphql-transport-ws"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("a second connection was let in: {:?}", other.map(|(_, r)| r.status())),
    }
    drop(ws);
    app.stop().await;
}
