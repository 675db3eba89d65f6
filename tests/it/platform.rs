//! The platform as an operator sees it: health, readiness, demo data, checked-in SDL.

use serde_json::json;

use crate::support::{TestApp, assert_no_errors};

#[tokio::test]
async fn services_report_health_and_readiness() {
    let app = TestApp::spawn().await;
    for base in [&app.catalog_url, &app.identity_url] {
        for path in ["health", "ready"] {
            let r = app.client.get(format!("{base}/{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{base}/{path}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_demo_store_loads_once_and_its_accounts_sign_in() {
    let app = TestApp::seeded().await;
    let r = app.catalog("{ products { totalCount } categories { slug } }", json!({}), None).await;
    assert_no_errors(&r);
    assert!(r["data"]["products"]["totalCount"].as_i64().unwrap() >= 500);
    let reviews: i64 = {
        use sea_orm::{EntityTrait, PaginatorTrait};
        entities::catalog::review::Entity::find().count(&app.catalog.db).await.unwrap() as i64
    };
    assert!(reviews >= 2000, "{reviews} reviews");

    // Every demo product has a stock count, some sold out.
    let stock =
        app.gateway("{ products(first: 100) { nodes { stock inStock } } }", json!({}), None).await;
    let nodes = stock["data"]["products"]["nodes"].as_array().expect("products with stock");
    assert!(nodes.iter().any(|n| n["inStock"] == true) && nodes.iter().any(|n| n["stock"] == 0));

    // Seeding again changes nothing.
    let seeded_again =
        better_store::seed::load(&app.identity, &app.catalog, Some(&app.inventory)).await.unwrap();
    assert!(!seeded_again);
    let again = app.catalog("{ products { totalCount } }", json!({}), None).await;
    assert_eq!(again["data"]["products"]["totalCount"], r["data"]["products"]["totalCount"]);

    for (email, password) in [
        (identity::demo::SHOPPER_EMAIL, identity::demo::SHOPPER_PASSWORD),
        (identity::demo::ADMIN_EMAIL, identity::demo::ADMIN_PASSWORD),
    ] {
        let r = app
            .identity(
                "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { customer { roles } } }",
                json!({ "e": email, "p": password }),
                None,
            )
            .await;
        assert_no_errors(&r);
    }
    app.stop().await;
}

#[tokio::test]
async fn checked_in_sdl_matches_what_each_subgraph_serves() {
    let app = TestApp::spawn().await;
    for (name, base) in [("catalog", &app.catalog_url), ("identity", &app.identity_url)] {
        let body = json!({ "query": "{ _service { sdl } }" });
        let served =
            crate::support::post_json(&app.client, &format!("{base}/graphql"), &body, None).await;
        let served =
            format!("{}\n", served["data"]["_service"]["sdl"].as_str().unwrap().trim_end());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schema")
            .join(format!("{name}.graphql"));
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            served == checked_in,
            "{} is stale: run `cargo run -- schema` and commit the result",
            path.display()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn checked_in_supergraph_is_the_composition_of_the_subgraphs() {
    let composed = better_store::sdl::supergraph_sdl().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/supergraph.graphql");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        composed == checked_in,
        "{} is stale: run `cargo run -- schema` and commit the result",
        path.display()
    );
    // It is a supergraph our gateway (and any Federation v2 gateway) can load.
    gateway::supergraph::Supergraph::load(&checked_in).expect("the gateway loads the supergraph");
}

#[tokio::test]
async fn a_service_started_alone_verifies_tokens_with_identitys_jwks() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;

    // The catalog alone, as `serve --only catalog` runs it in production.
    let dir = crate::support::TempDir::new();
    let mut settings = crate::support::test_settings(&dir);
    let alone = better_store::Platform::build(
        &settings,
        &[better_store::Service::Catalog],
        better_store::Listen::Ephemeral,
    )
    .await;
    assert!(alone.is_err(), "without identity or a JWKS URL there is no way to verify tokens");
    settings.auth.jwks_url = Some(format!("{}/.well-known/jwks.json", app.identity_url));
    let platform = better_store::Platform::build(
        &settings,
        &[better_store::Service::Catalog],
        better_store::Listen::Ephemeral,
    )
    .await
    .unwrap();
    assert!(platform.addr(better_store::Service::Identity).is_none());
    let url = format!("http://{}/graphql", platform.addr(better_store::Service::Catalog).unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(platform.run(async move {
        let _ = rx.await;
    }));

    let create = json!({ "query": "mutation { createProduct(input: { sku: \"A-1\", name: \"A\", description: \"\", price: { amount: \"1\", currency: \"USD\" }, category: \"none\" }) { id } }" });
    let with_admin = crate::support::post_json(&app.client, &url, &create, Some(&admin)).await;
    // Authorised (the identity-signed token verified); refused only for the unknown category.
    assert_eq!(crate::support::error_code(&with_admin), "BAD_USER_INPUT");
    let forged = kernel::auth::TokenIssuer::new(kernel::auth::KeyPair::generate(), &settings.auth)
        .issue(uuid::Uuid::now_v7(), &[kernel::auth::Role::Admin])
        .unwrap()
        .0;
    let with_forged = crate::support::post_json(&app.client, &url, &create, Some(&forged)).await;
    assert_eq!(crate::support::error_code(&with_forged), "UNAUTHENTICATED");
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn outbox_rows_left_unpublished_are_relayed_later() {
    use sea_orm::EntityTrait;
    let app = TestApp::spawn().await;
    let mut events = app.bus.subscribe("test", &["product"]);
    // As if the process died between committing a change and publishing its event.
    let event = kernel::events::EventEnvelope::new(
        "product.price_changed",
        1,
        "0195f2d4-5c1a-7000-8000-000000000001",
        json!({
            "productId": "0195f2d4-5c1a-7000-8000-000000000001",
            "oldPrice": { "amount": "10.00", "currency": "USD" },
            "newPrice": { "amount": "12.50", "currency": "USD" },
        }),
    );
    kernel::events::outbox::append(&app.catalog.db, &event).await.unwrap();
    app.catalog.relay.wake();
    let relayed = TestApp::next_event(&mut events, "product.price_changed").await;
    assert_eq!(relayed, event, "the envelope arrives as it was recorded");
    // The relay deletes the row after the bus accepted it (at-least-once): poll for that.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let row = kernel::events::outbox::entity::Entity::find_by_id(event.id)
            .one(&app.catalog.db)
            .await
            .unwrap();
        if row.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the row is deleted once published, so it is not sent again"
        );
        tokio::task::yield_now().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn an_upgraded_outbox_keeps_only_what_is_still_to_publish() {
    use migrations::MigratorTrait;
    use sea_orm::EntityTrait;
    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    // The catalog's schema as an earlier version left it: published rows were marked.
    let before = migrations::catalog::Migrator::migrations().len() as u32 - 1;
    migrations::catalog::Migrator::up(&db, Some(before)).await.unwrap();
    let (published, pending) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (id, published_at) in [(published, Some(chrono::Utc::now())), (pending, None)] {
        let row = kernel::events::outbox::entity::Model {
            id,
            event_type: "product.price_changed".into(),
            version: 1,
            occurred_at: chrono::Utc::now(),
            aggregate_id: "p".into(),
            correlation_id: id,
            causation_id: None,
            payload: json!({}),
            published_at,
        };
        let row = kernel::events::outbox::entity::ActiveModel::from(row);
        kernel::events::outbox::entity::Entity::insert(row)
            .exec_without_returning(&db)
            .await
            .unwrap();
    }
    migrations::catalog::Migrator::up(&db, None).await.unwrap();
    let left: Vec<uuid::Uuid> = kernel::events::outbox::entity::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(left, vec![pending], "the published row is gone, the pending one stays");
}

#[tokio::test]
async fn upgraded_mails_keep_their_rows_and_indexes_and_take_guests() {
    use migrations::MigratorTrait;
    use sea_orm::EntityTrait;
    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    // The notifications' schema before guests' mails: `customer_id` was required.
    let before = migrations::notifications::Migrator::migrations().len() as u32 - 1;
    migrations::notifications::Migrator::up(&db, Some(before)).await.unwrap();
    let mail = |id: uuid::Uuid, customer_id: Option<uuid::Uuid>, to_address: Option<&str>| {
        entities::notifications::mail::ActiveModel::from(entities::notifications::mail::Model {
            id,
            kind: "ORDER_CONFIRMATION".into(),
            order_id: id,
            customer_id,
            to_address: to_address.map(str::to_string),
            subject: "Your order".into(),
            text_body: "text".into(),
            html_body: "<p>html</p>".into(),
            status: "PENDING".into(),
            attempts: 0,
            next_attempt_at: chrono::Utc::now(),
            last_error: None,
            sent_at: None,
            created_at: chrono::Utc::now(),
        })
    };
    let (earlier, customer) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let insert =
        |row| entities::notifications::mail::Entity::insert(row).exec_without_returning(&db);
    insert(mail(earlier, Some(customer), None)).await.unwrap();
    assert!(insert(mail(uuid::Uuid::now_v7(), None, Some("g@example.com"))).await.is_err());

    migrations::notifications::Migrator::up(&db, None).await.unwrap();
    let kept = entities::notifications::mail::Entity::find_by_id(earlier).one(&db).await.unwrap();
    assert_eq!(kept.expect("the earlier mail is kept").customer_id, Some(customer));
    insert(mail(uuid::Uuid::now_v7(), None, Some("g@example.com"))).await.unwrap();
    // The indexes came back: still one mail of a kind per order.
    let mut twice = mail(uuid::Uuid::now_v7(), Some(customer), None);
    twice.order_id = sea_orm::ActiveValue::Set(earlier);
    let twice = insert(twice).await;
    assert!(twice.is_err(), "a second mail of the kind for the order is refused");
}
