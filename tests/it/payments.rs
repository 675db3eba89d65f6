//! Payments: cards checked and tokenised (nothing sensitive kept), and each order's payment
//! authorised, captured, voided or refunded by events, once per idempotency key.

use futures::StreamExt;
use kernel::events::EventEnvelope;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, assert_no_errors, error_code};

const TOKENIZE: &str = "mutation($input: CardInput!) { tokenizeCard(input: $input) { id brand last4 expMonth expYear } }";
const PAYMENT: &str = "query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Order { payment { status amount { amount currency } declineReason card { brand last4 } } } } }";

fn card(number: &str) -> Value {
    json!({ "input": { "number": number, "expMonth": 12, "expYear": 2031, "cvc": "123" } })
}

async fn tokenize(app: &TestApp, number: &str, token: Option<&str>) -> String {
    let response = app.gateway(TOKENIZE, card(number), token).await;
    assert_no_errors(&response);
    response["data"]["tokenizeCard"]["id"].as_str().unwrap().to_string()
}

fn request(order: Uuid, customer: Option<&str>, method: &str, key: &str) -> EventEnvelope {
    EventEnvelope::new(
        "order.payment_requested",
        1,
        order,
        json!({
            "orderId": order, "customerId": customer, "paymentMethodId": method,
            "amount": { "amount": "59.90", "currency": "USD" }, "idempotencyKey": key,
        }),
    )
}

async fn payment_of(app: &TestApp, order: Uuid, token: Option<&str>) -> Value {
    let reps = json!({ "reps": [{ "__typename": "Order", "id": order }] });
    app.payments(PAYMENT, reps, token).await
}

/// Waits for the next event of `event_type` about `order`.
async fn next_for(
    events: &mut futures::stream::BoxStream<'static, EventEnvelope>,
    event_type: &str,
    order: Uuid,
) -> EventEnvelope {
    loop {
        let event = TestApp::next_event(events, event_type).await;
        if event.payload["orderId"] == json!(order) {
            return event;
        }
    }
}

#[tokio::test]
async fn cards_are_checked_and_only_brand_last_digits_and_expiry_are_kept() {
    let app = TestApp::spawn().await;
    let (shopper, _) = app.customer_token("cards@example.com").await;
    let saved = app.gateway(TOKENIZE, card("4242 4242 4242 4242"), Some(&shopper)).await;
    assert_no_errors(&saved);
    let method = &saved["data"]["tokenizeCard"];
    assert_eq!(
        (method["brand"].clone(), method["last4"].clone(), method["expYear"].clone()),
        (json!("VISA"), json!("4242"), json!(2031))
    );
    let mine = app.gateway("{ myPaymentMethods { id last4 } }", json!({}), Some(&shopper)).await;
    assert_eq!(mine["data"]["myPaymentMethods"][0]["id"], method["id"]);

    for (input, fragment) in [
        (
            json!({ "number": "4242 4242 4242 4241", "expMonth": 12, "expYear": 2031, "cvc": "123" }),
            "not valid",
        ),
        (
            json!({ "number": "4242 4242 4242 4242", "expMonth": 1, "expYear": 2020, "cvc": "123" }),
            "expired",
        ),
        (
            json!({ "number": "4242 4242 4242 4242", "expMonth": 12, "expYear": 2031, "cvc": "12a" }),
            "security code",
        ),
        (
            json!({ "number": "3782 822463 10005", "expMonth": 12, "expYear": 2031, "cvc": "123" }),
            "4 digits",
        ),
    ] {
        let refused = app.gateway(TOKENIZE, json!({ "input": input }), Some(&shopper)).await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT");
        let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(fragment), "{message}");
    }
    // Nothing in the payments database holds the number (or a long run of its digits).
    let db = &app.payments.db;
    for table in ["payment_methods", "processor_tokens"] {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT * FROM {table}"),
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{table}: one card");
        let text = format!("{rows:?}");
        assert!(!text.contains("424242424242") && !text.contains("4242 4242"), "{table}: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_payment_is_authorised_once_captured_on_confirmation_and_refunded_on_cancellation() {
    let app = TestApp::spawn().await;
    let (owner, owner_id) = app.customer_token("payer@example.com").await;
    let (other, _) = app.customer_token("someone-else@example.com").await;
    let method = tokenize(&app, "4242424242424242", Some(&owner)).await;
    let mut events = app.bus.subscribe("payments-test", &["payment"]);

    let order = Uuid::now_v7();
    let asked = request(order, Some(&owner_id), &method, "order-key-1");
    app.bus.publish(&asked).await.unwrap();
    app.bus.publish(&asked).await.unwrap();
    let authorized = next_for(&mut events, "payment.authorized", order).await;
    assert_eq!(authorized.payload["amount"], json!({ "amount": "59.90", "currency": "USD" }));
    assert_eq!(authorized.causation_id, Some(asked.id));
    // The same request under the same key (a retry from orders) authorises nothing more.
    app.bus.publish(&request(order, Some(&owner_id), &method, "order-key-1")).await.unwrap();

    let confirmed = EventEnvelope::new("order.confirmed", 1, order, json!({ "orderId": order }));
    app.bus.publish(&confirmed).await.unwrap();
    next_for(&mut events, "payment.captured", order).await;
    let seen = payment_of(&app, order, Some(&owner)).await;
    assert_no_errors(&seen);
    assert_eq!(
        seen["data"]["_entities"][0]["payment"],
        json!({ "status": "CAPTURED", "amount": { "amount": "59.90", "currency": "USD" },
                "declineReason": null, "card": { "brand": "VISA", "last4": "4242" } })
    );
    assert_eq!(error_code(&payment_of(&app, order, Some(&other)).await), "FORBIDDEN");

    let cancelled = EventEnvelope::new(
        "order.cancelled",
        1,
        order,
        json!({ "orderId": order, "reason": "CUSTOMER_CANCELLED" }),
    );
    app.bus.publish(&cancelled).await.unwrap();
    let refunded = next_for(&mut events, "payment.refunded", order).await;
    assert_eq!(refunded.payload["voided"], false);
    let seen = payment_of(&app, order, Some(&owner)).await;
    assert_eq!(seen["data"]["_entities"][0]["payment"]["status"], "REFUNDED");
    let count = {
        use sea_orm::{EntityTrait, PaginatorTrait};
        entities::payments::payment::Entity::find().count(&app.payments.db).await.unwrap()
    };
    assert_eq!(count, 1, "one payment for the order, however often it was asked for");
    app.stop().await;
}

#[tokio::test]
async fn test_cards_decline_lack_funds_or_recover_from_transient_failures() {
    let app = TestApp::spawn().await;
    let mut events = app.bus.subscribe("payments-test", &["payment"]);
    let mut outcomes = Vec::new();
    for number in ["4000000000000002", "4000000000009995", "4000000000000119", "5555555555554444"] {
        let method = tokenize(&app, number, None).await;
        let order = Uuid::now_v7();
        app.bus.publish(&request(order, None, &method, &format!("key-{order}"))).await.unwrap();
        outcomes.push(order);
    }
    // Answers for different orders may come in any order (Redis spreads them by order).
    let mut answered = std::collections::HashMap::new();
    while answered.len() < outcomes.len() {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("an answer in time")
            .expect("bus open");
        if next.event_type.starts_with("payment.") {
            crate::support::assert_follows_schema(&next);
            let order = next.payload["orderId"].clone();
            answered.insert(order, (next.event_type.clone(), next.payload["reason"].clone()));
        }
    }
    let answers: Vec<(String, Value)> =
        outcomes.iter().map(|order| answered[&json!(order)].clone()).collect();
    assert_eq!(
        answers,
        vec![
            ("payment.declined".to_string(), json!("CARD_DECLINED")),
            ("payment.declined".to_string(), json!("INSUFFICIENT_FUNDS")),
            ("payment.authorized".to_string(), Value::Null),
            ("payment.authorized".to_string(), Value::Null),
        ]
    );
    // Cancelling an authorised order drops the hold (a void).
    let order = outcomes[3];
    app.bus
        .publish(&EventEnvelope::new(
            "order.cancelled",
            1,
            order,
            json!({ "orderId": order, "reason": "OUT_OF_STOCK" }),
        ))
        .await
        .unwrap();
    let voided = next_for(&mut events, "payment.refunded", order).await;
    assert_eq!(voided.payload["voided"], true);
    app.stop().await;
}

#[tokio::test]
async fn another_customers_card_cannot_pay_for_an_order() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.customer_token("card-owner@example.com").await;
    let (_, thief_id) = app.customer_token("card-thief@example.com").await;
    let method = tokenize(&app, "4242424242424242", Some(&owner)).await;
    let mut events = app.bus.subscribe("payments-test", &["payment"]);
    let order = Uuid::now_v7();
    app.bus.publish(&request(order, Some(&thief_id), &method, "k")).await.unwrap();
    let declined = next_for(&mut events, "payment.declined", order).await;
    assert_eq!(declined.payload["reason"], "INVALID_PAYMENT_METHOD");
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_request_gets_the_first_answer_whatever_card_it_names() {
    let app = TestApp::spawn().await;
    let first_card = tokenize(&app, "4242424242424242", None).await;
    let second_card = tokenize(&app, "5555555555554444", None).await;
    let unknown_card = Uuid::now_v7().to_string();
    let mut events = app.bus.subscribe("payments-test", &["payment"]);

    // Paid with one card; asked again under the same key naming another: the same payment
    // answers, and the other card is not charged.
    let paid = Uuid::now_v7();
    app.bus.publish(&request(paid, None, &first_card, "paid-key")).await.unwrap();
    let authorized = next_for(&mut events, "payment.authorized", paid).await;
    app.bus.publish(&request(paid, None, &second_card, "paid-key")).await.unwrap();
    let again = next_for(&mut events, "payment.authorized", paid).await;
    assert_eq!(again.payload["paymentId"], authorized.payload["paymentId"]);

    // A card that does not exist is declined, and declined again when asked again.
    let refused = Uuid::now_v7();
    app.bus.publish(&request(refused, None, &unknown_card, "refused-key")).await.unwrap();
    let declined = next_for(&mut events, "payment.declined", refused).await;
    assert_eq!(declined.payload["reason"], "INVALID_PAYMENT_METHOD");
    app.bus.publish(&request(refused, None, &unknown_card, "refused-key")).await.unwrap();
    let again = next_for(&mut events, "payment.declined", refused).await;
    assert_eq!(again.payload["paymentId"], declined.payload["paymentId"]);

    let payments = {
        use sea_orm::EntityTrait;
        entities::payments::payment::Entity::find().all(&app.payments.db).await.unwrap()
    };
    assert_eq!(payments.len(), 2, "one payment per order, however often asked");
    let charged: Vec<String> = payments.iter().map(|p| p.payment_method_id.to_string()).collect();
    assert!(!charged.contains(&second_card), "the second card was never charged: {charged:?}");
    app.stop().await;
}
