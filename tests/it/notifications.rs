//! The receipt: a confirmed order is e-mailed to its customer, or to the address a guest gave
//! at checkout (and its shipping with the tracking number), written as `.eml` files by default
//! or sent over SMTP; a mail server that refuses delays the mail, never loses or doubles it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::checkout::{PLACE, a_placed_order, a_product, add, card, place_input, settled};
use crate::smtp_sink::SmtpSink;
use crate::support::{TestApp, assert_no_errors, error_code};

const MINE: &str =
    "{ me { notifications { id kind orderId subject body to status attempts sentAt } } }";

/// Polls `me { notifications }` until `done` holds (with a deadline).
async fn notifications_until(
    app: &TestApp,
    token: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.gateway(MINE, json!({}), Some(token)).await;
        assert_no_errors(&r);
        let list = r["data"]["me"]["notifications"].as_array().cloned().unwrap_or_default();
        if done(&list) {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "notifications: {list:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A signed-in customer's confirmed order: (token, order id, order number).
async fn a_confirmed_order(app: &TestApp, email: &str) -> (String, String, String) {
    let admin = app.admin_token().await;
    let (token, _, order) = a_placed_order(app, &admin, email, 5, 2).await;
    let id = order["id"].as_str().unwrap().to_string();
    assert_eq!(settled(app, &id, Some(&token)).await["status"], "CONFIRMED");
    (token, id, order["number"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn the_receipt_and_the_shipping_notice_are_written_as_eml_files_and_listed() {
    let app = TestApp::seeded().await;
    let (token, id, number) = a_confirmed_order(&app, "receipt@example.com").await;

    let list =
        notifications_until(&app, &token, |l| l.first().is_some_and(|n| n["status"] == "SENT"))
            .await;
    assert_eq!(list.len(), 1);
    let receipt = &list[0];
    assert_eq!(receipt["kind"], "ORDER_CONFIRMATION");
    assert_eq!(receipt["orderId"], json!(id));
    assert_eq!(receipt["to"], "receipt@example.com");
    assert_eq!(receipt["attempts"], 1);
    assert_eq!(receipt["subject"], format!("Your order {number} is confirmed"));
    let body = receipt["body"].as_str().unwrap();
    assert!(body.contains("Total: ") && body.contains("12 Analytical Way"), "{body}");

    // The file a mail program opens: headers, the plain-text and the HTML part.
    let file =
        app.settings.data_dir.join("mail").join(format!("{}.eml", receipt["id"].as_str().unwrap()));
    let eml = std::fs::read_to_string(&file).expect("the receipt is written as an .eml file");
    assert!(eml.contains(&format!("Subject: Your order {number} is confirmed")), "{eml}");
    assert!(
        eml.contains("To: receipt@example.com") || eml.contains("<receipt@example.com>"),
        "{eml}"
    );
    assert!(eml.contains("text/plain") && eml.contains("text/html"), "{eml}");
    assert!(eml.contains("London"), "{eml}");

    // It ships: a second mail, with the tracking number.
    let admin = app.admin_token().await;
    let r = app
        .gateway(
            "query($id: ID!) { order(id: $id) { shipment { id trackingNumber } } }",
            json!({ "id": id }),
            Some(&token),
        )
        .await;
    let tracking = r["data"]["order"]["shipment"]["trackingNumber"].as_str().unwrap().to_string();
    let advance = "mutation($id: ID!) { advanceShipment(id: $id) { status } }";
    let shipped = app
        .gateway(advance, json!({ "id": r["data"]["order"]["shipment"]["id"] }), Some(&admin))
        .await;
    assert_no_errors(&shipped);
    let list = notifications_until(&app, &token, |l| {
        l.len() == 2 && l.iter().all(|n| n["status"] == "SENT")
    })
    .await;
    assert_eq!(list[0]["kind"], "SHIPPING", "newest first");
    assert!(list[0]["body"].as_str().unwrap().contains(&tracking));
    let file =
        app.settings.data_dir.join("mail").join(format!("{}.eml", list[0]["id"].as_str().unwrap()));
    assert!(std::fs::read_to_string(file).unwrap().contains(&tracking));

    // Only the customer's own.
    let (other, _) = app.customer_token("someone-else@example.com").await;
    let theirs = app.gateway(MINE, json!({}), Some(&other)).await;
    assert_eq!(theirs["data"]["me"]["notifications"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_mail_server_that_refuses_then_accepts_delays_the_receipt_without_losing_or_doubling_it()
{
    let sink = SmtpSink::start(2).await;
    let url = format!("smtp://{}", sink.addr);
    let app = TestApp::spawn_with(|s| {
        s.notifications.smtp_url = Some(url.into());
        s.notifications.retry_base_millis = 50;
    })
    .await;
    better_store::seed::load(&app.identity, &app.catalog, Some(&app.inventory))
        .await
        .expect("seed");
    let (token, _, number) = a_confirmed_order(&app, "patient@example.com").await;

    let list =
        notifications_until(&app, &token, |l| l.first().is_some_and(|n| n["status"] == "SENT"))
            .await;
    assert_eq!(list[0]["attempts"], 3, "two refusals, then accepted: {list:?}");
    assert!(sink.connections() >= 3);
    let received = sink.received();
    assert_eq!(received.len(), 1, "sent once");
    assert_eq!(received[0].to, vec!["patient@example.com".to_string()]);
    let data = &received[0].data;
    assert!(data.contains(&format!("Subject: Your order {number} is confirmed")), "{data}");
    assert!(data.contains("From: \"Better Store\" <orders@betterstore.dev>"), "{data}");
    assert!(data.contains("Total: "), "{data}");
    assert!(!data.contains("4242424242424242"), "no card number in mail");
    app.stop().await;
}

/// The `.eml` files written so far that hold every one of `needles`.
fn mails_with(app: &TestApp, needles: &[&str]) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(app.settings.data_dir.join("mail")) else {
        return Vec::new();
    };
    dir.filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter(|eml| needles.iter().all(|needle| eml.contains(needle)))
        .collect()
}

/// Polls the mail folder until a file holds every one of `needles` (with a deadline).
async fn a_mail_with(app: &TestApp, needles: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(eml) = mails_with(app, needles).pop() {
            return eml;
        }
        assert!(tokio::time::Instant::now() < deadline, "no mail with {needles:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_guest_who_gives_an_email_gets_the_receipt_and_the_shipping_notice_there() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let product = a_product(&app, &admin, 5).await;
    let method = card(&app, "4242424242424242", None).await;
    let guest = app.gateway("mutation { createCart { id } }", json!({}), None).await;
    let cart = guest["data"]["createCart"]["id"].as_str().unwrap().to_string();
    add(&app, Some(&cart), &product, 1, None).await;

    // Not an address: refused, and nothing placed (the same cart and key still place below).
    let mut input = place_input(Some(&cart), &method, "guest-with-mail");
    input["input"]["email"] = json!("guest at example");
    let refused = app.gateway(PLACE, input.clone(), None).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");

    input["input"]["email"] = json!("  Guest.Shopper@Example.COM ");
    let placed = app.gateway(PLACE, input, None).await;
    assert_no_errors(&placed);
    let id = placed["data"]["placeOrder"]["id"].as_str().unwrap().to_string();
    let number = placed["data"]["placeOrder"]["number"].as_str().unwrap().to_string();
    assert_eq!(settled(&app, &id, None).await["status"], "CONFIRMED");
    let read = "query($id: ID!) { order(id: $id) { email shipment { id trackingNumber } } }";
    let order = app.gateway(read, json!({ "id": id }), None).await;
    assert_no_errors(&order);
    assert_eq!(order["data"]["order"]["email"], "guest.shopper@example.com", "normalised");

    let address = "guest.shopper@example.com";
    let receipt =
        a_mail_with(&app, &[address, &format!("Subject: Your order {number} is confirmed")]).await;
    assert!(receipt.contains("12 Analytical Way"), "{receipt}");

    // It ships: the notice goes to the same address, with the tracking number.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let shipment = loop {
        let order = app.gateway(read, json!({ "id": id }), None).await;
        let shipment = order["data"]["order"]["shipment"].clone();
        if !shipment.is_null() {
            break shipment;
        }
        assert!(tokio::time::Instant::now() < deadline, "no shipment for {id}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let tracking = shipment["trackingNumber"].as_str().unwrap();
    let advance = "mutation($id: ID!) { advanceShipment(id: $id) { status } }";
    let shipped = app.gateway(advance, json!({ "id": shipment["id"] }), Some(&admin)).await;
    assert_no_errors(&shipped);
    a_mail_with(&app, &[address, tracking]).await;
    assert_eq!(mails_with(&app, &[address]).len(), 2, "the receipt and the notice, once each");

    // Signed in, the account's address is the order's: a second one is refused.
    let (token, _) = app.customer_token("member@example.com").await;
    add(&app, None, &product, 1, Some(&token)).await;
    let method = card(&app, "4242424242424242", Some(&token)).await;
    let mut input = place_input(None, &method, "member-with-mail");
    input["input"]["email"] = json!("elsewhere@example.com");
    let refused = app.gateway(PLACE, input, Some(&token)).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    let placed = app.gateway(PLACE, place_input(None, &method, "member-with-mail"), Some(&token));
    assert_no_errors(&placed.await);
    app.stop().await;
}
