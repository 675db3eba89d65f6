//! After the purchase, under failure: 200 orders, and in the middle of the run every
//! consumer of fulfillment, notifications, rewards and reporting is killed (its task aborted,
//! whatever it was doing) and started again. Every confirmed order still gets exactly one
//! shipment, one confirmation e-mail, one reporting row and one rewards credit; the reports'
//! totals equal the orders' to the cent, and again after a rebuild. Also: who may read
//! reports, and which ranges are refused.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kernel::events::consumer::{Consumer, ConsumerOptions, EventHandler};
use kernel::events::outbox::OutboxRelay;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::checkout::{a_product, add, card, place_input};
use crate::support::{TestApp, assert_no_errors, error_code};

const REPORT: &str = "query($from: String!, $to: String!) { salesReport(from: $from, to: $to) { orders revenue { amount currency } averageOrderValue { amount } days { day orders revenue { amount } } categories { category units revenue { amount } } topProducts(limit: 3) { product { id name } name units revenue { amount } } statusCounts { status orders } } }";

/// A consumer the test starts and kills itself. A killed consumer's database connections are
/// closed with it, as a dead process's are: a transaction it had open is rolled back by the
/// database, never left on a pooled connection for someone else to commit.
struct Running {
    handle: tokio::task::JoinHandle<()>,
    db: Option<DatabaseConnection>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    async fn kill(mut self) {
        self.handle.abort();
        let _ = (&mut self.handle).await;
        if let Some(db) = self.db.take() {
            let _ = db.close().await;
        }
    }
}

fn start(
    app: &TestApp,
    handler: Arc<dyn EventHandler>,
    db: &DatabaseConnection,
    relay: Option<&OutboxRelay>,
) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = Consumer {
        bus: app.bus.clone(),
        db: db.clone(),
        name: format!("{}-{}", handler.group(), uuid::Uuid::new_v4().simple()),
        handler,
        options: ConsumerOptions::default(),
        relay: relay.cloned(),
    };
    let handle = consumer.spawn(async move {
        let _ = stopped.await;
    });
    Running { handle, db: None, _stop: stop }
}

/// A consumer of `service`'s database through connections of its own.
async fn start_alone(
    app: &TestApp,
    service: &str,
    handler: Arc<dyn EventHandler>,
    relay: &OutboxRelay,
) -> Running {
    let db = kernel::db::connect(&app.settings.database, &app.settings.data_dir, service)
        .await
        .expect("a connection of its own");
    let mut running = start(app, handler, &db, Some(relay));
    running.db = Some(db);
    running
}

/// The four consumers under test, started afresh.
async fn after_purchase_consumers(app: &TestApp) -> Vec<Running> {
    vec![
        start_alone(
            app,
            "fulfillment",
            Arc::new(fulfillment::events::FulfillmentEvents(app.fulfillment.clone())),
            &app.fulfillment.relay,
        )
        .await,
        start_alone(
            app,
            "notifications",
            Arc::new(notifications::events::NotificationEvents(app.notifications.clone())),
            &app.notifications.relay,
        )
        .await,
        start_alone(
            app,
            "rewards",
            Arc::new(rewards::events::RewardEvents(app.rewards.clone())),
            &app.rewards.relay,
        )
        .await,
        start_alone(
            app,
            "reporting",
            Arc::new(reporting::events::ReportingEvents(app.reporting.clone())),
            &app.reporting.relay,
        )
        .await,
    ]
}

/// The checkout's consumers, which the test leaves alone.
fn checkout_consumers(app: &TestApp) -> Vec<Running> {
    vec![
        start(
            app,
            Arc::new(inventory::events::InventoryEvents(app.inventory.clone())),
            &app.inventory.db,
            Some(&app.inventory.relay),
        ),
        start(
            app,
            Arc::new(payments::events::PaymentEvents(app.payments.clone())),
            &app.payments.db,
            Some(&app.payments.relay),
        ),
        start(app, Arc::new(carts::events::CartEvents(app.carts.clone())), &app.carts.db, None),
        start(
            app,
            Arc::new(orders::saga::Saga(app.orders.clone())),
            &app.orders.db,
            Some(&app.orders.relay),
        ),
    ]
}

/// Polls `count` until it reaches `want` (with a deadline); it must never go beyond.
async fn reaches<F, Fut>(what: &str, want: u64, count: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = u64>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = count().await;
        assert!(n <= want, "{what}: {n}, more than {want}");
        if n == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {n} of {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_hundred_orders_each_get_one_shipment_mail_report_row_and_credit_through_consumer_kills()
 {
    // The platform runs no consumer here: the test runs them, so that it can kill some.
    let app = TestApp::spawn_with(|s| s.events.consume = false).await;
    better_store::seed::load(&app.identity, &app.catalog, Some(&app.inventory))
        .await
        .expect("seed");
    let checkout = checkout_consumers(&app);
    let mut after = after_purchase_consumers(&app).await;

    let admin = app.admin_token().await;
    let product = a_product(&app, &admin, 1000).await;
    let mut shoppers = Vec::new();
    for i in 0..4 {
        let (token, _) = app.customer_token(&format!("shopper{i}@example.com")).await;
        let method = card(&app, "4242424242424242", Some(&token)).await;
        shoppers.push((token, method));
    }
    let place = |i: usize| {
        let (app, product, shoppers) = (&app, product.clone(), &shoppers);
        async move {
            let (token, method) = &shoppers[i % shoppers.len()];
            let cart = app.gateway("mutation { createCart { id } }", json!({}), None).await;
            let cart = cart["data"]["createCart"]["id"].as_str().unwrap().to_string();
            add(app, Some(&cart), &product, 1 + (i % 3) as i64, None).await;
            let placed = app
                .gateway(
                    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }",
                    place_input(Some(&cart), method, &format!("run-{i}")),
                    Some(token),
                )
                .await;
            assert_no_errors(&placed);
        }
    };
    for chunk in (0..100).collect::<Vec<_>>().chunks(20) {
        join_all(chunk.iter().map(|i| place(*i))).await;
    }
    // Mid-run: every after-purchase consumer dies, whatever it holds, and comes back.
    for running in after.drain(..) {
        running.kill().await;
    }
    after = after_purchase_consumers(&app).await;
    for chunk in (100..200).collect::<Vec<_>>().chunks(20) {
        join_all(chunk.iter().map(|i| place(*i))).await;
    }

    use entities::orders::order;
    let orders_db = app.orders.db.clone();
    reaches("confirmed orders", 200, || {
        let db = orders_db.clone();
        async move {
            order::Entity::find()
                .filter(order::Column::Status.eq("CONFIRMED"))
                .count(&db)
                .await
                .unwrap()
        }
    })
    .await;
    let fulfillment_db = app.fulfillment.db.clone();
    reaches("shipments", 200, || {
        let db = fulfillment_db.clone();
        async move { entities::fulfillment::shipment::Entity::find().count(&db).await.unwrap() }
    })
    .await;
    let mail_db = app.notifications.db.clone();
    reaches("confirmation mails sent", 200, || {
        use entities::notifications::mail;
        let db = mail_db.clone();
        async move {
            mail::Entity::find()
                .filter(mail::Column::Kind.eq("ORDER_CONFIRMATION"))
                .filter(mail::Column::Status.eq("SENT"))
                .count(&db)
                .await
                .unwrap()
        }
    })
    .await;
    let rewards_db = app.rewards.db.clone();
    reaches("rewards credits", 200, || {
        use entities::rewards::entry;
        let db = rewards_db.clone();
        async move {
            entry::Entity::find()
                .filter(entry::Column::Kind.eq("EARNED_PENDING"))
                .count(&db)
                .await
                .unwrap()
        }
    })
    .await;
    let reporting_db = app.reporting.db.clone();
    reaches("reporting rows", 200, || {
        use entities::reporting::sale;
        let db = reporting_db.clone();
        async move {
            sale::Entity::find().filter(sale::Column::Confirmed.eq(true)).count(&db).await.unwrap()
        }
    })
    .await;
    // One of each per order, not merely as many: every order appears once in each.
    let ids: std::collections::HashSet<uuid::Uuid> = order::Entity::find()
        .all(&app.orders.db)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    let shipped: std::collections::HashSet<uuid::Uuid> =
        entities::fulfillment::shipment::Entity::find()
            .all(&app.fulfillment.db)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.order_id)
            .collect();
    assert_eq!(shipped, ids);
    // The mail folder holds exactly one file per mail.
    let files = std::fs::read_dir(app.settings.data_dir.join("mail")).unwrap().count();
    assert_eq!(files, 200);

    // The reports add up to the orders, to the cent; and again after a rebuild.
    let paid: i64 = order::Entity::find()
        .all(&app.orders.db)
        .await
        .unwrap()
        .iter()
        .map(|o| o.total_minor)
        .sum();
    let paid = rust_decimal::Decimal::new(paid, 2).to_string();
    let today = chrono::Utc::now().date_naive().to_string();
    let range = json!({ "from": today, "to": today });
    let report = app.gateway(REPORT, range.clone(), Some(&admin)).await;
    assert_no_errors(&report);
    let sales = &report["data"]["salesReport"];
    assert_eq!(sales["orders"], 200);
    assert_eq!(sales["revenue"]["amount"], json!(paid));
    assert_eq!(sales["days"][0]["revenue"]["amount"], json!(paid));
    assert_eq!(
        sales["categories"][0]["revenue"]["amount"],
        json!(paid),
        "one product, no discount"
    );
    assert_eq!(sales["topProducts"][0]["product"]["id"], json!(product));
    assert!(sales["topProducts"][0]["product"]["name"].is_string(), "the catalog names it");
    assert_eq!(sales["statusCounts"], json!([{ "status": "CONFIRMED", "orders": 200 }]));
    let rebuilt = app.gateway("mutation { rebuildReports }", json!({}), Some(&admin)).await;
    assert_no_errors(&rebuilt);
    assert!(rebuilt["data"]["rebuildReports"].as_i64().unwrap() >= 400, "placed and confirmed");
    let again = app.gateway(REPORT, range, Some(&admin)).await;
    assert_eq!(again["data"], report["data"], "the same model from the history");

    // The test's consumers go before the platform does (its Redis keys go with it).
    for running in after.into_iter().chain(checkout) {
        running.kill().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn reports_are_for_administrators_over_sensible_ranges() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (shopper, _) = app.customer_token("curious@example.com").await;
    let ok = json!({ "from": "2026-11-01", "to": "2026-11-30" });
    assert_eq!(error_code(&app.gateway(REPORT, ok.clone(), None).await), "UNAUTHENTICATED");
    assert_eq!(error_code(&app.gateway(REPORT, ok.clone(), Some(&shopper)).await), "FORBIDDEN");
    let rebuild = "mutation { rebuildReports }";
    assert_eq!(error_code(&app.gateway(rebuild, json!({}), Some(&shopper)).await), "FORBIDDEN");
    let reversed = json!({ "from": "2026-11-30", "to": "2026-11-01" });
    assert_eq!(error_code(&app.gateway(REPORT, reversed, Some(&admin)).await), "BAD_USER_INPUT");
    let long = json!({ "from": "2020-01-01", "to": "2026-11-30" });
    assert_eq!(error_code(&app.gateway(REPORT, long, Some(&admin)).await), "BAD_USER_INPUT");
    let garbled = json!({ "from": "last week", "to": "2026-11-30" });
    assert_eq!(error_code(&app.gateway(REPORT, garbled, Some(&admin)).await), "BAD_USER_INPUT");
    // An empty store reports zeros, not errors.
    let empty = app.gateway(REPORT, ok, Some(&admin)).await;
    assert_no_errors(&empty);
    assert_eq!(empty["data"]["salesReport"]["orders"], 0);
    assert_eq!(empty["data"]["salesReport"]["revenue"]["amount"], "0.00");
    assert_eq!(empty["data"]["salesReport"]["averageOrderValue"]["amount"], "0.00");
    app.stop().await;
}
