//! The catalog through its HTTP endpoint: lookups, search, filters, facets, paging, admin
//! changes, reviews, and what bad input gets.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::{TestApp, assert_no_errors, error_code};

const PRODUCT_FIELDS: &str = "id sku slug name description price { amount currency } images { url alt } \
    attributes { name value } category { slug name parent { slug } } rating { average count } createdAt";

async fn first_product(app: &TestApp) -> Value {
    let r = app
        .catalog(
            &format!("{{ products(first: 1) {{ nodes {{ {PRODUCT_FIELDS} }} }} }}"),
            json!({}),
            None,
        )
        .await;
    assert_no_errors(&r);
    r["data"]["products"]["nodes"][0].clone()
}

#[tokio::test]
async fn a_product_is_found_by_id_or_slug_with_its_category_rating_and_reviews() {
    let app = TestApp::seeded().await;
    let product = first_product(&app).await;
    let query = format!(
        "query($id: ID, $slug: String) {{ product(id: $id, slug: $slug) {{ {PRODUCT_FIELDS} \
         reviews(first: 100) {{ totalCount nodes {{ rating title author {{ id }} }} }} }} }}"
    );
    let by_id = app.catalog(&query, json!({ "id": product["id"] }), None).await;
    let by_slug = app.catalog(&query, json!({ "slug": product["slug"] }), None).await;
    assert_no_errors(&by_id);
    assert_eq!(by_id, by_slug);
    let p = &by_id["data"]["product"];
    assert_eq!(p["price"]["currency"], "USD");
    assert!(p["category"]["parent"]["slug"].is_string(), "demo products sit in nested categories");
    let reviews = p["reviews"]["nodes"].as_array().unwrap();
    assert_eq!(reviews.len() as i64, p["rating"]["count"].as_i64().unwrap());
    assert_eq!(p["reviews"]["totalCount"], p["rating"]["count"]);
    if !reviews.is_empty() {
        let sum: i64 = reviews.iter().map(|r| r["rating"].as_i64().unwrap()).sum();
        let average: f64 = p["rating"]["average"].as_str().unwrap().parse().unwrap();
        assert!((average - sum as f64 / reviews.len() as f64).abs() < 0.01);
    }

    // Unknown or malformed ids and slugs are null, without errors.
    for vars in [
        json!({ "id": uuid::Uuid::now_v7().to_string() }),
        json!({ "slug": "no-such-thing" }),
        json!({ "id": "42" }),
    ] {
        let r = app.catalog(&query, vars, None).await;
        assert_no_errors(&r);
        assert!(r["data"]["product"].is_null());
    }
    let both =
        app.catalog(&query, json!({ "id": product["id"], "slug": product["slug"] }), None).await;
    assert_eq!(error_code(&both), "BAD_USER_INPUT");
    app.stop().await;
}

#[tokio::test]
async fn search_is_ranked_full_text_and_sql_is_just_text() {
    let app = TestApp::seeded().await;
    let search = |text: &str| {
        let app = &app;
        let text = text.to_string();
        async move {
            let r = app
                .catalog(
                    "query($s: String!) { products(search: $s, first: 100) { totalCount nodes { name description } } }",
                    json!({ "s": text }),
                    None,
                )
                .await;
            assert_no_errors(&r);
            r["data"]["products"].clone()
        }
    };
    let hits = search("espresso machine").await;
    let nodes = hits["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty());
    for n in nodes {
        let text = format!("{} {}", n["name"], n["description"]).to_lowercase();
        assert!(text.contains("espresso") && text.contains("machine"), "{text}");
    }

    // Prefixes match and a word in the name outranks the same word in a description.
    let keyboards = search("mechan").await;
    let first = keyboards["nodes"][0]["name"].as_str().unwrap();
    assert!(first.contains("Mechanical"), "{first}");

    let injection = search("'; DROP TABLE products; --").await;
    assert!(injection["totalCount"].as_i64().is_some());
    let all = app.catalog("{ products { totalCount } }", json!({}), None).await;
    assert_eq!(all["data"]["products"]["totalCount"], 552, "the catalog is intact");
    let nothing = search("\" OR 1=1 -- )(*").await;
    assert!(nothing["totalCount"].is_i64(), "query syntax in the text is not an error");
    assert_eq!(search("zzzzqqq").await["totalCount"], 0);
    app.stop().await;
}

#[tokio::test]
async fn filters_sorting_paging_and_facets_agree() {
    let app = TestApp::seeded().await;
    let query = "query($f: ProductFilter, $sort: ProductSort, $first: Int, $after: String) {
        products(filter: $f, sort: $sort, first: $first, after: $after) {
            totalCount
            pageInfo { hasNextPage hasPreviousPage endCursor }
            nodes { id price { amount } rating { average } category { slug parent { slug parent { slug } } } }
            facets {
                categories { category { slug } count }
                priceBands { min { amount } max { amount } count }
                ratings { minRating count }
            }
        } }";
    let run = |vars: Value| {
        let app = &app;
        async move {
            let r = app.catalog(query, vars, None).await;
            assert_no_errors(&r);
            r["data"]["products"].clone()
        }
    };

    // Category filter includes sub-categories; the facet count matches the total.
    let footwear = run(json!({ "f": { "category": "footwear" }, "first": 100 })).await;
    assert_eq!(footwear["totalCount"], 72);
    for n in footwear["nodes"].as_array().unwrap() {
        assert_eq!(n["category"]["parent"]["parent"]["slug"], "footwear");
    }
    let facet = footwear["facets"]["categories"].as_array().unwrap();
    let footwear_facet = facet.iter().find(|c| c["category"]["slug"] == "footwear").unwrap();
    assert_eq!(footwear_facet["count"], 72);
    let band_total: i64 = footwear["facets"]["priceBands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert_eq!(band_total, 72, "every product falls in one price band");

    // Price range and rating filters, sorted by price.
    let ranged = run(json!({ "f": { "minPrice": "50", "maxPrice": "100.00", "minRating": 4 }, "sort": "PRICE_ASC", "first": 100 })).await;
    let prices: Vec<f64> = ranged["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["price"]["amount"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(!prices.is_empty());
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "ascending prices");
    assert!(prices.iter().all(|p| (50.0..=100.0).contains(p)));
    for n in ranged["nodes"].as_array().unwrap() {
        assert!(n["rating"]["average"].as_str().unwrap().parse::<f64>().unwrap() >= 4.0);
    }
    // Each facet ignores its own filter: other price bands still have counts.
    let bands = ranged["facets"]["priceBands"].as_array().unwrap();
    assert!(bands.iter().filter(|b| b["count"].as_i64().unwrap() > 0).count() > 1);
    let four_up = ranged["facets"]["ratings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["minRating"] == 4)
        .unwrap()["count"]
        .clone();
    let in_band: i64 = bands
        .iter()
        .filter(|b| b["min"]["amount"] == "50.00")
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert!(ranged["totalCount"].as_i64().unwrap() <= in_band.max(four_up.as_i64().unwrap()));

    // Paging walks every product exactly once.
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = run(json!({ "first": 100, "after": after, "sort": "NAME" })).await;
        for n in page["nodes"].as_array().unwrap() {
            assert!(seen.insert(n["id"].as_str().unwrap().to_string()), "no product twice");
        }
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        assert_eq!(page["pageInfo"]["hasPreviousPage"], after.is_some());
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 552);

    // Bad paging and filter input.
    for vars in [
        json!({ "first": 101 }),
        json!({ "first": -1 }),
        json!({ "after": "not-a-cursor" }),
        json!({ "f": { "minPrice": "10.001" } }),
        json!({ "f": { "minPrice": "-1" } }),
        json!({ "f": { "minPrice": "20", "maxPrice": "10" } }),
        json!({ "f": { "minRating": 6 } }),
    ] {
        let r = app.catalog(query, vars.clone(), None).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{vars}");
    }
    app.stop().await;
}

#[tokio::test]
async fn categories_form_a_tree() {
    let app = TestApp::seeded().await;
    let r = app
        .catalog(
            "{ categories { slug children { slug parent { slug } children { name } } } }",
            json!({}),
            None,
        )
        .await;
    assert_no_errors(&r);
    let roots = r["data"]["categories"].as_array().unwrap();
    assert_eq!(roots.len(), 6);
    assert_eq!(roots[0]["slug"], "apparel");
    assert_eq!(roots[0]["children"][0]["parent"]["slug"], "apparel");
    assert!(!roots[0]["children"][0]["children"].as_array().unwrap().is_empty());
    app.stop().await;
}

const CREATE: &str = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id sku slug name price { amount currency } category { slug } attributes { name value } } }";

fn new_product(sku: &str) -> Value {
    json!({ "input": {
        "sku": sku, "name": "Aurora Test Lantern", "description": "A lantern made for tests.",
        "price": { "amount": "49.5", "currency": "USD" }, "category": "tents",
        "images": [{ "url": "https://images.example.com/lantern.jpg", "alt": "Lantern" }],
        "attributes": [{ "name": "Lumens", "value": "300" }]
    }})
}

#[tokio::test]
async fn admins_create_update_and_reprice_products_and_events_follow() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let mut events = app.bus.subscribe("test", &["product"]);

    let created = app.catalog(CREATE, new_product("lantern-1"), Some(&admin)).await;
    assert_no_errors(&created);
    let p = &created["data"]["createProduct"];
    assert_eq!(p["sku"], "LANTERN-1");
    assert_eq!(p["slug"], "aurora-test-lantern");
    assert_eq!(p["price"], json!({ "amount": "49.50", "currency": "USD" }));
    let id = p["id"].as_str().unwrap().to_string();
    TestApp::next_event(&mut events, "product.created").await;

    // The duplicate SKU is a conflict and writes nothing.
    let dup = app.catalog(CREATE, new_product("LANTERN-1"), Some(&admin)).await;
    assert_eq!(error_code(&dup), "CONFLICT");

    // Updating the name makes the product findable by it.
    let updated = app
        .catalog(
            "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"Borealis Camp Lantern\", slug: \"borealis-camp-lantern\" }) { name slug } }",
            json!({ "id": id }),
            Some(&admin),
        )
        .await;
    assert_no_errors(&updated);
    let found =
        app.catalog("{ products(search: \"borealis\") { nodes { id } } }", json!({}), None).await;
    assert_eq!(found["data"]["products"]["nodes"][0]["id"], id.as_str());
    let old = app
        .catalog("{ products(search: \"aurora lantern\") { totalCount } }", json!({}), None)
        .await;
    assert_eq!(old["data"]["products"]["totalCount"], 0);

    // A price change is saved and announced with the old and new price.
    let repriced = app
        .catalog(
            "mutation($id: ID!) { changeProductPrice(id: $id, price: { amount: \"39.99\", currency: \"USD\" }) { price { amount } } }",
            json!({ "id": id }),
            Some(&admin),
        )
        .await;
    assert_no_errors(&repriced);
    assert_eq!(repriced["data"]["changeProductPrice"]["price"]["amount"], "39.99");
    let event = TestApp::next_event(&mut events, "product.price_changed").await;
    assert_eq!(event.aggregate_id, id);
    assert_eq!(event.payload["oldPrice"]["amount"], "49.50");
    assert_eq!(event.payload["newPrice"]["amount"], "39.99");
    app.stop().await;
}

#[tokio::test]
async fn catalog_changes_refuse_non_admins_and_bad_input_and_write_nothing() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let (customer, _) = app.customer_token("someone@example.com").await;

    assert_eq!(error_code(&app.catalog(CREATE, new_product("X-1"), None).await), "UNAUTHENTICATED");
    assert_eq!(
        error_code(&app.catalog(CREATE, new_product("X-1"), Some(&customer)).await),
        "FORBIDDEN"
    );
    let mut bad_inputs = vec![];
    for (path, value) in [
        ("sku", json!("no spaces allowed")),
        ("name", json!("")),
        ("category", json!("no-such-category")),
        ("slug", json!("Bad Slug")),
    ] {
        let mut vars = new_product("X-1");
        vars["input"][path] = value;
        bad_inputs.push(vars);
    }
    for price in [
        json!({ "amount": "1.234", "currency": "USD" }),
        json!({ "amount": "-1", "currency": "USD" }),
        json!({ "amount": "1", "currency": "EUR" }),
        json!({ "amount": "1", "currency": "ZZZ" }),
    ] {
        let mut vars = new_product("X-1");
        vars["input"]["price"] = price;
        bad_inputs.push(vars);
    }
    let mut vars = new_product("X-1");
    vars["input"]["images"] = json!([{ "url": "javascript:alert(1)" }]);
    bad_inputs.push(vars);
    for vars in bad_inputs {
        let r = app.catalog(CREATE, vars.clone(), Some(&admin)).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{vars}");
    }
    let count = app.catalog("{ products { totalCount } }", json!({}), None).await;
    assert_eq!(count["data"]["products"]["totalCount"], 552, "nothing was written");

    let product = first_product(&app).await;
    let reprice = "mutation($id: ID!, $amount: Decimal!) { changeProductPrice(id: $id, price: { amount: $amount, currency: \"USD\" }) { id } }";
    let r = app
        .catalog(reprice, json!({ "id": product["id"], "amount": "1.00" }), Some(&customer))
        .await;
    assert_eq!(error_code(&r), "FORBIDDEN");
    let r = app
        .catalog(
            reprice,
            json!({ "id": uuid::Uuid::now_v7().to_string(), "amount": "1.00" }),
            Some(&admin),
        )
        .await;
    assert_eq!(error_code(&r), "NOT_FOUND");
    let after = app
        .catalog(
            "query($id: ID) { product(id: $id) { price { amount } } }",
            json!({ "id": product["id"] }),
            None,
        )
        .await;
    assert_eq!(after["data"]["product"]["price"]["amount"], product["price"]["amount"]);
    app.stop().await;
}

const ADD_REVIEW: &str = "mutation($input: AddReviewInput!) { addReview(input: $input) { id rating title author { id } product { rating { average count } } } }";

#[tokio::test]
async fn customers_review_once_and_the_rating_follows() {
    let app = TestApp::seeded().await;
    let (token, customer_id) = app.customer_token("reviewer@example.com").await;
    let product = first_product(&app).await;
    let review = |rating: i64| json!({ "input": { "productId": product["id"], "rating": rating, "title": "Great", "body": "Works well." } });

    let r = app.catalog(ADD_REVIEW, review(5), Some(&token)).await;
    assert_no_errors(&r);
    let added = &r["data"]["addReview"];
    assert_eq!(added["author"]["id"], customer_id.as_str());
    let before_count = product["rating"]["count"].as_i64().unwrap();
    assert_eq!(added["product"]["rating"]["count"], before_count + 1);

    let again = app.catalog(ADD_REVIEW, review(4), Some(&token)).await;
    assert_eq!(error_code(&again), "CONFLICT");
    for rating in [0, 6] {
        let (other, _) = app.customer_token(&format!("r{rating}@example.com")).await;
        assert_eq!(
            error_code(&app.catalog(ADD_REVIEW, review(rating), Some(&other)).await),
            "BAD_USER_INPUT"
        );
    }
    assert_eq!(error_code(&app.catalog(ADD_REVIEW, review(5), None).await), "UNAUTHENTICATED");
    let missing = json!({ "input": { "productId": uuid::Uuid::now_v7().to_string(), "rating": 3, "title": "x", "body": "y" } });
    assert_eq!(error_code(&app.catalog(ADD_REVIEW, missing, Some(&token)).await), "NOT_FOUND");

    let after = app
        .catalog(
            "query($id: ID) { product(id: $id) { rating { count } } }",
            json!({ "id": product["id"] }),
            None,
        )
        .await;
    assert_eq!(
        after["data"]["product"]["rating"]["count"],
        before_count + 1,
        "only the first review counted"
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_tampered_unsigned_and_foreign_tokens_are_refused() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let app = TestApp::seeded().await;
    let (token, customer_id) = app.customer_token("victim@example.com").await;
    let product = first_product(&app).await;
    let vars =
        json!({ "input": { "productId": product["id"], "rating": 5, "title": "t", "body": "b" } });

    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["roles"] = json!(["CUSTOMER", "ADMIN"]);
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = parts.join(".");
    let unsigned =
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);

    let foreign_keys = kernel::auth::KeyPair::generate();
    let (foreign, _) = kernel::auth::TokenIssuer::new(foreign_keys, &app.settings.auth)
        .issue(customer_id.parse().unwrap(), &[kernel::auth::Role::Admin])
        .unwrap();
    let keys = kernel::auth::KeyPair::load(&app.settings.auth, &app.settings.data_dir).unwrap();
    let (expired, _) = kernel::auth::TokenIssuer::new(keys, &app.settings.auth)
        .issue_for(
            customer_id.parse().unwrap(),
            &[kernel::auth::Role::Customer],
            chrono::Duration::hours(-1),
        )
        .unwrap();

    for bad in [tampered.as_str(), unsigned.as_str(), foreign.as_str(), expired.as_str(), "garbage"]
    {
        let r = app.catalog(ADD_REVIEW, vars.clone(), Some(bad)).await;
        assert_eq!(error_code(&r), "UNAUTHENTICATED", "{bad}");
        let r = app.catalog(CREATE, new_product("EVIL-1"), Some(bad)).await;
        assert_eq!(error_code(&r), "UNAUTHENTICATED");
    }
    let r = app.identity("{ me { id } }", json!({}), Some(&tampered)).await;
    assert_eq!(error_code(&r), "UNAUTHENTICATED");
    let after = app
        .catalog(
            "query($id: ID) { product(id: $id) { rating { count } } }",
            json!({ "id": product["id"] }),
            None,
        )
        .await;
    assert_eq!(
        after["data"]["product"]["rating"]["count"], product["rating"]["count"],
        "nothing was written"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_batch_of_entity_references_costs_one_product_query() {
    let dir = crate::support::TempDir::new();
    let settings = crate::support::test_settings(&dir);
    let mut db =
        kernel::db::connect(&settings.database, &settings.data_dir, "catalog").await.unwrap();
    let statements = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = statements.clone();
    db.set_metric_callback(move |info| seen.lock().unwrap().push(info.statement.sql.clone()));
    let keys = kernel::auth::KeyPair::generate();
    let verifier = Arc::new(kernel::auth::TokenVerifier::for_keys(&keys, &settings.auth));
    let bus: Arc<dyn kernel::events::bus::EventBus> =
        Arc::new(kernel::events::bus::InProcessBus::default());
    let (assembled, catalog) =
        better_store::services::catalog(&settings, db, verifier, bus).await.unwrap();
    let reviewers: Vec<uuid::Uuid> = (1..=60u128).map(uuid::Uuid::from_u128).collect();
    catalog::demo::load(&catalog, &reviewers).await.unwrap();
    let ids: Vec<String> = {
        use sea_orm::{EntityTrait, QuerySelect};
        entities::catalog::product::Entity::find()
            .limit(100)
            .all(&catalog.db)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id.to_string())
            .collect()
    };
    assert_eq!(ids.len(), 100);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kernel::server::run(listener, assembled.router, async move {
        let _ = rx.await;
    }));
    statements.lock().unwrap().clear();
    let representations: Vec<Value> =
        ids.iter().map(|id| json!({ "__typename": "Product", "id": id })).collect();
    let body = json!({
        "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id name price { amount } } } }",
        "variables": { "r": representations }
    });
    let url = format!("http://{addr}/graphql");
    let response = crate::support::post_json(&reqwest::Client::new(), &url, &body, None).await;
    assert_no_errors(&response);
    let entities = response["data"]["_entities"].as_array().unwrap();
    assert_eq!(entities.len(), 100);
    assert_eq!(entities[42]["id"], ids[42].as_str(), "entities come back in request order");
    let product_queries: Vec<String> = statements
        .lock()
        .unwrap()
        .iter()
        .filter(|sql| sql.contains("FROM \"products\""))
        .cloned()
        .collect();
    assert_eq!(product_queries.len(), 1, "one query for 100 references: {product_queries:#?}");
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn products_taken_off_sale_leave_listings_and_other_contexts_read_prices_with_etags() {
    let app = TestApp::seeded().await;
    let admin = app.admin_token().await;
    let first = app
        .catalog(
            "{ products(first: 1, sort: NEWEST) { totalCount nodes { id name } } }",
            json!({}),
            None,
        )
        .await;
    let total = first["data"]["products"]["totalCount"].as_i64().unwrap();
    let id = first["data"]["products"]["nodes"][0]["id"].as_str().unwrap().to_string();

    let url = format!("{}/internal/products?ids={id}", app.catalog_url);
    let answer = app.client.get(&url).send().await.unwrap();
    assert_eq!(answer.headers()["cache-control"], "no-cache");
    let etag = answer.headers()["etag"].to_str().unwrap().to_string();
    let facts: Value = answer.json().await.unwrap();
    assert_eq!(facts["products"][0]["id"], json!(id));
    assert_eq!(facts["products"][0]["active"], true);
    assert!(facts["products"][0]["price"]["amount"].is_string(), "prices are exact decimals");
    let unchanged = app.client.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(unchanged.status(), 304);
    for bad in ["", "not-an-id"] {
        let refused = app
            .client
            .get(format!("{}/internal/products?ids={bad}", app.catalog_url))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
    }

    let off = app
        .catalog(
            "mutation($id: ID!) { updateProduct(id: $id, input: { active: false }) { active } }",
            json!({ "id": id }),
            Some(&admin),
        )
        .await;
    assert_eq!(off["data"]["updateProduct"]["active"], false);
    let after = app.catalog("{ products(first: 1) { totalCount } }", json!({}), None).await;
    assert_eq!(after["data"]["products"]["totalCount"].as_i64().unwrap(), total - 1);
    // Still readable by id (orders and carts name it), and the change shows to other contexts.
    let read = app
        .catalog("query($id: ID!) { product(id: $id) { active } }", json!({ "id": id }), None)
        .await;
    assert_eq!(read["data"]["product"]["active"], false);
    let changed = app.client.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    let facts: Value = changed.json().await.unwrap();
    assert_eq!(facts["products"][0]["active"], false);
    app.stop().await;
}
