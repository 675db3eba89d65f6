//! Inventory: stock through the gateway, administration, and its part in the checkout by
//! events (reserve, refuse, release, lapse), with no overselling under concurrency.

use futures::future::join_all;
use kernel::events::EventEnvelope;
use sea_orm::TransactionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, assert_no_errors, error_code};

const CREATE: &str =
    "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }";
const SET: &str = "mutation($id: ID!, $n: Int!) { setStock(productId: $id, onHand: $n) { productId onHand reserved available } }";
const STOCK: &str = "query($id: ID!) { product(id: $id) { name stock inStock } }";
const LEVEL: &str = "query($id: ID!) { stockLevel(productId: $id) { onHand reserved available } }";

async fn new_product(app: &TestApp, admin: &str, sku: &str) -> String {
    let input = json!({ "input": {
        "sku": sku, "name": format!("Stock Test {sku}"), "description": "For stock tests.",
        "price": { "amount": "10", "currency": "USD" }, "category": "tents",
        "images": [], "attributes": []
    }});
    let created = app.gateway(CREATE, input, Some(admin)).await;
    assert_no_errors(&created);
    created["data"]["createProduct"]["id"].as_str().unwrap().to_string()
}

async fn stock_of(app: &TestApp, id: &str) -> Value {
    let response = app.gateway(STOCK, json!({ "id": id }), None).await;
    assert_no_errors(&response);
    response["data"]["product"].clone()
}

async fn level(app: &TestApp, admin: &str, id: &str) -> Value {
    let response = app.gateway(LEVEL, json!({ "id": id }), Some(admin)).await;
    assert_no_errors(&response);
    response["data"]["stockLevel"].clone()
}

fn placed(order: Uuid, lines: &[(&str, i64)]) -> EventEnvelope {
    let lines: Vec<Value> =
        lines.iter().map(|(p, q)| json!({ "productId": p, "quantity": q })).collect();
    EventEnvelope::new("order.placed", 1, order, json!({ "orderId": order, "lines": lines }))
}

#[tokio::test]
async fn products_show_their_stock_through_the_gateway_and_admins_count_it() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let id = new_product(&app, &admin, "stock-1").await;
    // The catalog's product and the inventory's stock, in one answer.
    let product = stock_of(&app, &id).await;
    assert_eq!(product, json!({ "name": "Stock Test stock-1", "stock": 0, "inStock": false }));

    let set = app.gateway(SET, json!({ "id": id, "n": 7 }), Some(&admin)).await;
    assert_no_errors(&set);
    assert_eq!(set["data"]["setStock"]["available"], 7);
    assert_eq!(stock_of(&app, &id).await["stock"], 7);
    assert_eq!(stock_of(&app, &id).await["inStock"], true);

    // Bad input changes nothing.
    let (shopper, _) = app.customer_token("stock-shopper@example.com").await;
    let forbidden = app.gateway(SET, json!({ "id": id, "n": 1 }), Some(&shopper)).await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let anonymous = app.gateway(SET, json!({ "id": id, "n": 1 }), None).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let negative = app.gateway(SET, json!({ "id": id, "n": -1 }), Some(&admin)).await;
    assert_eq!(error_code(&negative), "BAD_USER_INPUT");
    let malformed = app.gateway(SET, json!({ "id": "not-an-id", "n": 1 }), Some(&admin)).await;
    assert_eq!(error_code(&malformed), "BAD_USER_INPUT");
    let hidden = app.gateway(LEVEL, json!({ "id": id }), Some(&shopper)).await;
    assert_eq!(error_code(&hidden), "FORBIDDEN");
    assert_eq!(
        level(&app, &admin, &id).await,
        json!({ "onHand": 7, "reserved": 0, "available": 7 })
    );
    app.stop().await;
}

#[tokio::test]
async fn orders_reserve_release_and_are_refused_by_events_exactly_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let tent = Uuid::now_v7().to_string();
    let stove = Uuid::now_v7().to_string();
    for (id, n) in [(&tent, 5), (&stove, 2)] {
        assert_no_errors(&app.gateway(SET, json!({ "id": id, "n": n }), Some(&admin)).await);
    }
    let mut events = app.bus.subscribe("inventory-test", &["stock"]);

    // Placed: both lines held. Published twice (a relay retry): held once.
    let order = Uuid::now_v7();
    let event = placed(order, &[(&tent, 3), (&stove, 1)]);
    app.bus.publish(&event).await.unwrap();
    app.bus.publish(&event).await.unwrap();
    let reserved = TestApp::next_event(&mut events, "stock.reserved").await;
    assert_eq!(reserved.payload["orderId"], json!(order));
    assert_eq!(reserved.causation_id, Some(event.id));
    assert_eq!(reserved.correlation_id, event.correlation_id);
    // Another request for the same order changes nothing and is not answered; asked again
    // for a resumed checkout, it gets its first answer again, and nothing more is held.
    let again = placed(order, &[(&tent, 1)]);
    app.bus.publish(&again).await.unwrap();
    let mut resumed = placed(order, &[(&tent, 3), (&stove, 1)]);
    resumed.payload["resumed"] = json!(true);
    app.bus.publish(&resumed).await.unwrap();
    let marker_order = Uuid::now_v7();
    app.bus.publish(&placed(marker_order, &[(&stove, 1)])).await.unwrap();
    let answer = TestApp::next_event(&mut events, "stock.reserved").await;
    assert_eq!(answer.causation_id, Some(resumed.id), "only the resumed request is answered");
    assert_eq!(answer.payload["lines"], reserved.payload["lines"], "with the first answer");
    let marker = TestApp::next_event(&mut events, "stock.reserved").await;
    assert_eq!(marker.payload["orderId"], json!(marker_order));
    assert_eq!(
        level(&app, &admin, &tent).await,
        json!({ "onHand": 5, "reserved": 3, "available": 2 })
    );
    assert_eq!(level(&app, &admin, &stove).await["available"], 0);

    // Counting below what is reserved is a conflict.
    let below = app.gateway(SET, json!({ "id": tent, "n": 2 }), Some(&admin)).await;
    assert_eq!(error_code(&below), "CONFLICT");

    // Too many: refused as a whole, naming the product; nothing held.
    let greedy = Uuid::now_v7();
    app.bus.publish(&placed(greedy, &[(&tent, 1), (&stove, 1)])).await.unwrap();
    let failed = TestApp::next_event(&mut events, "stock.reservation_failed").await;
    assert_eq!(failed.payload["orderId"], json!(greedy));
    assert_eq!(failed.payload["reason"], "OUT_OF_STOCK");
    assert_eq!(failed.payload["productIds"], json!([stove]));
    assert_eq!(level(&app, &admin, &tent).await["reserved"], 3, "the tent line was not kept");

    // Cancelled: released, reason carried.
    let cancelled = EventEnvelope::new(
        "order.cancelled",
        1,
        order,
        json!({ "orderId": order, "reason": "PAYMENT_DECLINED" }),
    );
    app.bus.publish(&cancelled).await.unwrap();
    let released = TestApp::next_event(&mut events, "stock.released").await;
    assert_eq!(released.payload["reason"], "PAYMENT_DECLINED");
    assert_eq!(
        level(&app, &admin, &tent).await,
        json!({ "onHand": 5, "reserved": 0, "available": 5 })
    );
    assert_eq!(level(&app, &admin, &stove).await["available"], 1);
    app.stop().await;
}

#[tokio::test]
async fn two_hundred_concurrent_reservations_of_ten_units_hold_exactly_ten() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = Uuid::now_v7().to_string();
    assert_no_errors(&app.gateway(SET, json!({ "id": id, "n": 10 }), Some(&admin)).await);
    let product: Uuid = id.parse().unwrap();
    let attempts = (0..200).map(|_| {
        let inventory = app.inventory.clone();
        async move {
            let txn = inventory.db.begin().await.unwrap();
            let line = inventory::stock::Line { product_id: product, quantity: 1 };
            let outcome =
                inventory::stock::reserve(&inventory, &txn, Uuid::now_v7(), &[line], false, None)
                    .await;
            txn.commit().await.unwrap();
            outcome.unwrap()
        }
    });
    let outcomes = join_all(attempts).await;
    let held = outcomes.iter().filter(|o| **o == inventory::stock::Reserved::Held).count();
    assert_eq!(held, 10);
    assert_eq!(outcomes.len() - held, 190, "the rest were refused as out of stock");
    assert_eq!(
        level(&app, &admin, &id).await,
        json!({ "onHand": 10, "reserved": 10, "available": 0 })
    );
    app.stop().await;
}

#[tokio::test]
async fn reservations_never_confirmed_lapse_and_confirmed_ones_stay_until_shipped() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = Uuid::now_v7().to_string();
    assert_no_errors(&app.gateway(SET, json!({ "id": id, "n": 4 }), Some(&admin)).await);
    let mut events = app.bus.subscribe("inventory-test", &["stock"]);
    let (lapsing, kept) = (Uuid::now_v7(), Uuid::now_v7());
    app.bus.publish(&placed(lapsing, &[(&id, 1)])).await.unwrap();
    app.bus.publish(&placed(kept, &[(&id, 2)])).await.unwrap();
    let confirmed = EventEnvelope::new("order.confirmed", 1, kept, json!({ "orderId": kept }));
    app.bus.publish(&confirmed).await.unwrap();
    // Wait until both reservations exist and the confirmation was handled.
    let marker = Uuid::now_v7();
    app.bus.publish(&placed(marker, &[(&id, 1)])).await.unwrap();
    for _ in 0..3 {
        TestApp::next_event(&mut events, "stock.reserved").await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while status_of(&app, kept).await != "CONFIRMED" {
        assert!(tokio::time::Instant::now() < deadline, "confirmation not handled in time");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Long after the reservation time: the merely held ones lapse, the confirmed one stays.
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let released = inventory::stock::expire_held(&app.inventory, later).await.unwrap();
    assert_eq!(released, 2, "the lapsing order and the marker");
    let lapsed = TestApp::next_event(&mut events, "stock.released").await;
    assert_eq!(lapsed.payload["reason"], "EXPIRED");
    assert_eq!(
        level(&app, &admin, &id).await,
        json!({ "onHand": 4, "reserved": 2, "available": 2 })
    );
    // Shipped: the confirmed units leave the shelf.
    let shipped = EventEnvelope::new("shipment.shipped", 1, kept, json!({ "orderId": kept }));
    app.bus.publish(&shipped).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while level(&app, &admin, &id).await != json!({ "onHand": 2, "reserved": 0, "available": 2 }) {
        assert!(tokio::time::Instant::now() < deadline, "shipment not taken off the shelf");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status_of(&app, kept).await, "COMMITTED");
    app.stop().await;
}

#[tokio::test]
async fn an_order_placed_and_confirmed_in_one_batch_keeps_its_units_past_the_reservation_time() {
    use kernel::events::consumer::EventHandler;
    use kernel::events::outbox;
    use kernel::events::unit::Unit;
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = Uuid::now_v7().to_string();
    assert_no_errors(&app.gateway(SET, json!({ "id": id, "n": 3 }), Some(&admin)).await);
    // Handed to the consumer's handler together, as a lane hands what waited in it: the
    // confirmation must see the reservation made for the same order just before it.
    let order = Uuid::now_v7();
    let first = placed(order, &[(&id, 1)]);
    let confirmed = EventEnvelope::new("order.confirmed", 1, order, json!({ "orderId": order }));
    let handler = inventory::events::InventoryEvents(app.inventory.clone());
    let unit = Unit::new(app.inventory.db.clone());
    let (handled, deferred) =
        outbox::deferring(handler.handle_all(&unit, &[&first, &confirmed])).await;
    handled.unwrap();
    match unit.into_begun() {
        Some(txn) => app.inventory.relay.commit(txn, deferred).await.unwrap(),
        None => app.inventory.relay.commit_alone(deferred).await.unwrap(),
    }
    assert_eq!(status_of(&app, order).await, "CONFIRMED");
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let released = inventory::stock::expire_held(&app.inventory, later).await.unwrap();
    assert_eq!(released, 0, "a confirmed order's units do not lapse");
    assert_eq!(
        level(&app, &admin, &id).await,
        json!({ "onHand": 3, "reserved": 1, "available": 2 })
    );
    app.stop().await;
}

async fn status_of(app: &TestApp, order: Uuid) -> String {
    use entities::inventory::reservation;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    reservation::Entity::find()
        .filter(reservation::Column::OrderId.eq(order))
        .one(&app.inventory.db)
        .await
        .unwrap()
        .map(|r| r.status)
        .unwrap_or_default()
}
