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

    // Seeding again changes nothing.
    assert!(!better_store::seed::load(&app.identity, &app.catalog).await.unwrap());
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
        let served = app
            .client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": "{ _service { sdl } }" }))
            .send()
            .await
            .unwrap();
        let served: serde_json::Value = served.json().await.unwrap();
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
