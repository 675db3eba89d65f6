//! The gateway in front of the real catalog and identity subgraphs: one endpoint for the whole
//! graph, GraphQL-over-HTTP semantics, and partial results when a subgraph is down.

use serde_json::{Value, json};

use crate::support::{TestApp, assert_no_errors, error_code};

const PRODUCT_PAGE: &str = "query($slug: String!) { product(slug: $slug) {
    name price { amount currency }
    reviews(first: 5) { totalCount nodes { id rating author { id displayName } } }
} }";

async fn some_reviewed_slug(app: &TestApp) -> String {
    let r = app
        .catalog("{ products(first: 1, sort: RATING) { nodes { slug } } }", json!({}), None)
        .await;
    r["data"]["products"]["nodes"][0]["slug"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn one_request_reads_a_product_its_reviews_and_their_authors() {
    let app = TestApp::seeded().await;
    let slug = some_reviewed_slug(&app).await;
    let through_gateway = app.gateway(PRODUCT_PAGE, json!({ "slug": slug }), None).await;
    assert_no_errors(&through_gateway);
    let product = &through_gateway["data"]["product"];
    let reviews = product["reviews"]["nodes"].as_array().unwrap();
    assert!(!reviews.is_empty());

    // The catalog alone knows the reviews; identity alone knows the authors' names.
    let direct = app
        .catalog(
            "query($slug: String!) { product(slug: $slug) { reviews(first: 5) { nodes { id author { id } } } } }",
            json!({ "slug": slug }),
            None,
        )
        .await;
    let direct_reviews = direct["data"]["product"]["reviews"]["nodes"].as_array().unwrap();
    for (via, direct) in reviews.iter().zip(direct_reviews) {
        assert_eq!(via["id"], direct["id"]);
        assert_eq!(via["author"]["id"], direct["author"]["id"]);
        let id = via["author"]["id"].as_str().unwrap();
        let from_identity = app
            .identity(
                "query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { displayName } } }",
                json!({ "r": [{ "__typename": "Customer", "id": id }] }),
                None,
            )
            .await;
        assert_eq!(
            via["author"]["displayName"],
            from_identity["data"]["_entities"][0]["displayName"]
        );
    }
    // Exactly the client's selection, in the client's order.
    let keys: Vec<&String> = product.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "price", "reviews"]);
    app.stop().await;
}

#[tokio::test]
async fn signed_in_customers_use_the_gateway_with_their_token() {
    let app = TestApp::seeded().await;
    let signed_in = app
        .gateway(
            "mutation { signIn(email: \"shopper@betterstore.dev\", password: \"happy-shopping-1\") { accessToken } }",
            json!({}),
            None,
        )
        .await;
    assert_no_errors(&signed_in);
    let token = signed_in["data"]["signIn"]["accessToken"].as_str().unwrap().to_string();
    let me = app.gateway("{ me { email displayName } }", json!({}), Some(&token)).await;
    assert_no_errors(&me);
    assert_eq!(me["data"]["me"]["email"], "shopper@betterstore.dev");

    let slug = some_reviewed_slug(&app).await;
    let product = app
        .gateway("query($s: String!) { product(slug: $s) { id } }", json!({ "s": slug }), None)
        .await;
    let review = app
        .gateway(
            "mutation($id: ID!) { addReview(input: { productId: $id, rating: 5, title: \"Via the gateway\", body: \"One endpoint.\" }) { author { displayName } } }",
            json!({ "id": product["data"]["product"]["id"] }),
            Some(&token),
        )
        .await;
    assert_no_errors(&review);
    assert_eq!(review["data"]["addReview"]["author"]["displayName"], "Sam S.");
    let anonymous = app.gateway("mutation { addReview(input: { productId: \"x\", rating: 5, title: \"t\", body: \"b\" }) { id } }", json!({}), None).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    app.stop().await;
}

async fn raw(
    app: &TestApp,
    method: &str,
    path_and_query: &str,
    content_type: &str,
    accept: &str,
    body: &str,
) -> (u16, String, Value) {
    let url = format!("{}{path_and_query}", app.gateway_url);
    let request = match method {
        "GET" => app.client.get(url),
        _ => app.client.post(url).header("content-type", content_type).body(body.to_string()),
    };
    let response = request.header("accept", accept).send().await.unwrap();
    let status = response.status().as_u16();
    let content = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (status, content, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn the_endpoint_follows_graphql_over_http() {
    let app = TestApp::spawn().await;
    const GQL: &str = "application/graphql-response+json";
    const JSON: &str = "application/json";
    let post = |body: &'static str, accept: &'static str| {
        raw(&app, "POST", "/graphql", JSON, accept, body)
    };

    let (status, content, body) = post(r#"{"query":"{ categories { slug } }"}"#, GQL).await;
    assert_eq!((status, content.starts_with(GQL)), (200, true));
    assert_eq!(body["data"]["categories"], json!([]));

    // Request errors: 400 under the GraphQL response type, 200 under plain JSON.
    for bad in [
        r#"{"query":"{ nope }"}"#,
        r#"{"query":"{ product(slug: 1) { name } }"}"#,
        r#"{"query":"query($s: String!) { product(slug: $s) { name } }"}"#,
        r#"{"query":"query($s: String!) { product(slug: $s) { name } }","variables":{"s":5}}"#,
        r#"{"query":"query A { categories { slug } }","operationName":"B"}"#,
        r#"{"query":"query A { categories { slug } } query B { categories { slug } }"}"#,
        r#"{"query":"{ categories { children { children { children { children { children { children { children { children { children { children { children { children { children { children { children { slug } } } } } } } } } } } } } } } }"}"#,
        r#"{"query":"{ categories {"}"#,
    ] {
        let (status, _, body) = post(bad, GQL).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.get("data").is_none(), "request errors carry no data: {body}");
        assert!(body["errors"][0]["message"].is_string());
        let (status, content, _) = post(bad, JSON).await;
        assert_eq!((status, content.starts_with(JSON)), (200, true), "{bad}");
    }
    let aliases: String = (0..31).map(|i| format!("a{i}: categories {{ slug }} ")).collect();
    let (status, _, _) = raw(
        &app,
        "POST",
        "/graphql",
        JSON,
        GQL,
        &json!({ "query": format!("{{ {aliases} }}") }).to_string(),
    )
    .await;
    assert_eq!(status, 400, "alias limit");

    let (status, _, _) = post("{not json", GQL).await;
    assert_eq!(status, 400);
    let (status, _, _) =
        raw(&app, "POST", "/graphql", "text/plain", GQL, r#"{"query":"{ categories { slug } }"}"#)
            .await;
    assert_eq!(status, 415);
    let big = format!(
        r#"{{"query":"{{ categories {{ slug }} }}","extensions":{{"pad":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let (status, _, _) = raw(&app, "POST", "/graphql", JSON, GQL, &big).await;
    assert_eq!(status, 413);

    let (status, _, body) =
        raw(&app, "GET", "/graphql?query=%7B%20categories%20%7B%20slug%20%7D%20%7D", "", GQL, "")
            .await;
    assert_eq!((status, body["data"]["categories"].clone()), (200, json!([])));
    let (status, _, _) = raw(
        &app,
        "GET",
        "/graphql?query=mutation%20%7B%20signOut(refreshToken%3A%20%22x%22)%20%7D",
        "",
        GQL,
        "",
    )
    .await;
    assert_eq!(status, 405);

    let (status, _, body) = post(
        r#"{"query":"{ __schema { queryType { name } } __type(name: \"Product\") { kind } }"}"#,
        GQL,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"],
        json!({ "__schema": { "queryType": { "name": "Query" } }, "__type": { "kind": "OBJECT" } })
    );
    let (status, content, page) = raw(&app, "GET", "/graphql", "", "text/html", "").await;
    assert_eq!((status, content.starts_with("text/html")), (200, true));
    assert!(page.as_str().unwrap().contains("GraphiQL"));
    for path in ["/health", "/ready"] {
        assert_eq!(raw(&app, "GET", path, "", "*/*", "").await.0, 200);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_subgraph_that_is_down_gives_partial_data_and_an_error_naming_it() {
    let app = TestApp::seeded().await;
    // A gateway whose identity subgraph points at a port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let supergraph = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/supergraph.graphql"),
    )
    .unwrap()
    .replace("http://127.0.0.1:4001/graphql", &format!("{}/graphql", app.catalog_url))
    .replace("http://127.0.0.1:4002/graphql", &format!("http://{closed}/graphql"));
    let router = gateway::app(&supergraph, &gateway::GatewayOptions::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway::serve(listener, router, async move {
        let _ = rx.await;
    }));

    let slug = some_reviewed_slug(&app).await;
    let body = json!({ "query": "query($s: String!) { products(first: 1) { totalCount } product(slug: $s) { name reviews(first: 2) { nodes { author { displayName } } } } }", "variables": { "s": slug } });
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        crate::support::post_json(&app.client, &url, &body, None),
    )
    .await
    .expect("no hung request");
    assert_eq!(
        response["data"]["products"]["totalCount"], 552,
        "what the catalog answered is kept"
    );
    let errors = response["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["extensions"]["serviceName"] == "identity"
            && e["message"].as_str().unwrap().contains("identity")),
        "{response:#}"
    );
    let _ = tx.send(());
    server.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_at_the_edge_with_401() {
    let app = TestApp::spawn().await;
    let (token, _) = app.customer_token("edge@example.com").await;
    let forged =
        kernel::auth::TokenIssuer::new(kernel::auth::KeyPair::generate(), &app.settings.auth)
            .issue(uuid::Uuid::now_v7(), &[kernel::auth::Role::Admin])
            .unwrap()
            .0;
    let body = json!({ "query": "{ me { email } }" });
    for bad in [forged.as_str(), "not-a-jwt", &format!("{token}x")] {
        let response = app
            .client
            .post(format!("{}/graphql", app.gateway_url))
            .bearer_auth(bad)
            .header("accept", "application/graphql-response+json")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{bad}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    let me = app.gateway("{ me { email } }", json!({}), Some(&token)).await;
    assert_eq!(me["data"]["me"]["email"], "edge@example.com");
    app.stop().await;
}
