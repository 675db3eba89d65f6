//! Identity through its HTTP endpoint: accounts, sessions, roles, privacy, JWKS, limits.

use serde_json::{Value, json};

use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, assert_no_errors, error_code};

const SIGN_IN: &str = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { accessToken refreshToken customer { id email roles } } }";
const REFRESH: &str =
    "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";
const SIGN_OUT: &str = "mutation($t: String!) { signOut(refreshToken: $t) }";
const ME: &str = "{ me { id email name displayName roles } }";

async fn sign_in(app: &TestApp, email: &str, password: &str) -> Value {
    app.identity(SIGN_IN, json!({ "e": email, "p": password }), None).await
}

#[tokio::test]
async fn sign_up_sign_in_refresh_and_sign_out() {
    let app = TestApp::spawn().await;
    let payload = app.sign_up("  Ada.Lovelace@Example.COM ").await;
    let token = payload["accessToken"].as_str().unwrap();

    let me = app.identity(ME, json!({}), Some(token)).await;
    assert_no_errors(&me);
    assert_eq!(me["data"]["me"]["email"], "ada.lovelace@example.com", "e-mail is normalised");
    assert_eq!(me["data"]["me"]["displayName"], "Test C.");
    assert_eq!(me["data"]["me"]["roles"], json!(["CUSTOMER"]));
    let anonymous = app.identity(ME, json!({}), None).await;
    assert_no_errors(&anonymous);
    assert!(anonymous["data"]["me"].is_null());

    // Sign in with a differently written e-mail.
    let signed_in = sign_in(&app, "ADA.LOVELACE@example.com", "a-good-password-1").await;
    assert_no_errors(&signed_in);
    let first_refresh = signed_in["data"]["signIn"]["refreshToken"].as_str().unwrap().to_string();

    // Refresh rotates the token; the new access token works.
    let refreshed = app.identity(REFRESH, json!({ "t": first_refresh }), None).await;
    assert_no_errors(&refreshed);
    let second_refresh =
        refreshed["data"]["refreshSession"]["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, first_refresh);
    let new_access = refreshed["data"]["refreshSession"]["accessToken"].as_str().unwrap();
    assert_no_errors(&app.identity(ME, json!({}), Some(new_access)).await);

    // Reusing the rotated token revokes the family: the newer token dies with it.
    let reuse = app.identity(REFRESH, json!({ "t": first_refresh }), None).await;
    assert_eq!(error_code(&reuse), "UNAUTHENTICATED");
    let after_reuse = app.identity(REFRESH, json!({ "t": second_refresh }), None).await;
    assert_eq!(error_code(&after_reuse), "UNAUTHENTICATED");

    // Sign out ends a session; its refresh token stops working; signing out twice is fine.
    let session = sign_in(&app, "ada.lovelace@example.com", "a-good-password-1").await;
    let refresh = session["data"]["signIn"]["refreshToken"].as_str().unwrap().to_string();
    let out = app.identity(SIGN_OUT, json!({ "t": refresh }), None).await;
    assert_eq!(out["data"]["signOut"], true);
    assert_eq!(
        error_code(&app.identity(REFRESH, json!({ "t": refresh }), None).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        app.identity(SIGN_OUT, json!({ "t": refresh }), None).await["data"]["signOut"],
        true
    );
    assert_eq!(
        error_code(&app.identity(REFRESH, json!({ "t": "made-up" }), None).await),
        "UNAUTHENTICATED"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_sign_ups_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    app.sign_up("taken@example.com").await;
    let sign_up = "mutation($e: String!, $p: String!) { signUp(input: { email: $e, password: $p, name: \"N\" }) { accessToken } }";
    for (email, password, code) in [
        ("not-an-email", "a-good-password-1", "BAD_USER_INPUT"),
        ("a@b", "a-good-password-1", "BAD_USER_INPUT"),
        ("weak@example.com", "short1", "BAD_USER_INPUT"),
        ("weak@example.com", "onlyletterslong", "BAD_USER_INPUT"),
        ("TAKEN@example.com", "a-good-password-1", "CONFLICT"),
    ] {
        let r = app.identity(sign_up, json!({ "e": email, "p": password }), None).await;
        assert_eq!(error_code(&r), code, "{email} / {password}");
    }
    let r = sign_in(&app, "weak@example.com", "short1").await;
    assert_eq!(error_code(&r), "UNAUTHENTICATED", "no account was created");
    app.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    app.sign_up("known@example.com").await;
    let wrong = sign_in(&app, "known@example.com", "not-the-password-1").await;
    let unknown = sign_in(&app, "nobody@example.com", "not-the-password-1").await;
    assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    assert_eq!(wrong["errors"][0]["message"], unknown["errors"][0]["message"]);
    assert_eq!(error_code(&unknown), "UNAUTHENTICATED");
    app.stop().await;
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_email_and_per_address() {
    let app = TestApp::spawn_with(|s| {
        s.identity.sign_in_attempts_per_email = 3;
        s.identity.sign_in_attempts_per_address = 6;
    })
    .await;
    app.sign_up("target@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            error_code(&sign_in(&app, "target@example.com", "guess-number-1").await),
            "UNAUTHENTICATED"
        );
    }
    // Even the right password is refused once the e-mail's limit is reached.
    let blocked = sign_in(&app, "Target@Example.com", "a-good-password-1").await;
    assert_eq!(error_code(&blocked), "RATE_LIMITED");
    // Another e-mail from the same address works until the address limit (6 attempts) is hit.
    app.sign_up("other@example.com").await;
    assert_no_errors(&sign_in(&app, "other@example.com", "a-good-password-1").await);
    assert_eq!(
        error_code(&sign_in(&app, "third@example.com", "x-password-1").await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        error_code(&sign_in(&app, "other@example.com", "a-good-password-1").await),
        "RATE_LIMITED"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_first_admin_comes_from_configuration() {
    let app = TestApp::spawn().await;
    let r = sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_no_errors(&r);
    assert_eq!(r["data"]["signIn"]["customer"]["roles"], json!(["CUSTOMER", "ADMIN"]));
    app.stop().await;
}

#[tokio::test]
async fn personal_data_is_private_to_the_customer_and_admins() {
    let app = TestApp::spawn().await;
    let (_, ada_id) = app.customer_token("ada@example.com").await;
    let (grace, _) = app.customer_token("grace@example.com").await;
    let admin = app.admin_token().await;
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id displayName email } } }";
    let vars = json!({ "r": [{ "__typename": "Customer", "id": ada_id }] });

    let public = app.identity(query, vars.clone(), Some(&grace)).await;
    assert_eq!(public["data"]["_entities"][0]["displayName"], "Test C.");
    assert!(public["data"]["_entities"][0]["email"].is_null());
    assert_eq!(error_code(&public), "FORBIDDEN");
    let as_admin = app.identity(query, vars, Some(&admin)).await;
    assert_no_errors(&as_admin);
    assert_eq!(as_admin["data"]["_entities"][0]["email"], "ada@example.com");
    app.stop().await;
}

#[tokio::test]
async fn tokens_verify_against_the_published_jwks() {
    let app = TestApp::spawn().await;
    let (token, id) = app.customer_token("jwks@example.com").await;
    let jwks_url = format!("{}/.well-known/jwks.json", app.identity_url);
    let jwks = crate::support::get_json(&app.client, &jwks_url).await;
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert!(jwks["keys"][0].get("d").is_none(), "the private key is never published");
    let verifier = kernel::auth::TokenVerifier::from_jwks_url(
        &jwks_url,
        &app.settings.auth,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(verifier.verify(&token).unwrap().sub, id);
    app.stop().await;
}
