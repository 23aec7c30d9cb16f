//! Identity on a real Keycloak 26 (the realm in `services/keycloak/realm-aether.json`,
//! started by `scripts/services/keycloak`), with sessions in a real Redis when
//! `AETHER_TEST_REDIS_URL` is set. Tokens come from Keycloak itself: the password
//! grant of the test-only client `aether-test`, and the browser code flow driven
//! here by following the redirects and posting Keycloak's login form.
//!
//! Needs `AETHER_TEST_KEYCLOAK_URL` (e.g. `http://127.0.0.1:18080`); prints NOT RUN
//! without it, unless `AETHER_TEST_REQUIRE_SERVICES=1`.
#![allow(clippy::unwrap_used)]

mod common;

use aether::config::{IdentityKind, Secret};
use common::{TestApp, assert_problem, call, json_of};
use reqwest::Method;
use serde_json::{Value, json};

fn keycloak() -> Option<String> {
    let required = std::env::var("AETHER_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    match std::env::var("AETHER_TEST_KEYCLOAK_URL") {
        Ok(url) => Some(url.trim_end_matches('/').to_owned()),
        Err(_) if required => panic!("AETHER_TEST_REQUIRE_SERVICES=1 but AETHER_TEST_KEYCLOAK_URL is not set"),
        Err(_) => {
            eprintln!("NOT RUN: set AETHER_TEST_KEYCLOAK_URL (scripts/test does) to test against Keycloak");
            None
        }
    }
}

async fn spawn(kc: &str) -> TestApp {
    let required = std::env::var("AETHER_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let redis = std::env::var("AETHER_TEST_REDIS_URL").ok();
    assert!(redis.is_some() || !required, "AETHER_TEST_REQUIRE_SERVICES=1 but AETHER_TEST_REDIS_URL is not set");
    let issuer = format!("{kc}/realms/aether");
    TestApp::spawn_with(move |config| {
        config.identity = IdentityKind::Keycloak;
        config.keycloak_issuer_url = issuer;
        config.keycloak_client_id = "aether-app".into();
        config.keycloak_client_secret = Secret::new("aether-app-test-secret");
        if let Some(url) = redis {
            config.redis_url = Secret::new(&url);
            config.redis_key_prefix = format!("aether-test:{}:", uuid::Uuid::now_v7().simple());
        }
    })
    .await
}

/// A token from Keycloak's password grant on the test-only client.
async fn kc_tokens(kc: &str, username: &str, password: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{kc}/realms/aether/protocol/openid-connect/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "aether-test"),
            ("client_secret", "aether-test-secret"),
            ("username", username),
            ("password", password),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "password grant for {username}");
    response.json().await.unwrap()
}

async fn kc_token(kc: &str, username: &str) -> String {
    kc_tokens(kc, username, &format!("{username}-password")).await["access_token"].as_str().unwrap().to_owned()
}

fn png() -> Vec<u8> {
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, image::Rgb([10, 20, 30])))
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

fn payload(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn keycloak_tokens_authenticate_and_users_are_synchronised() {
    let Some(kc) = keycloak() else { return };
    let app = spawn(&kc).await;
    let token = kc_token(&kc, "alice").await;
    let me = json_of(call(&app, &token, Method::GET, "/api/v1/users/me", None).await, 200).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["full_name"], "Alice Archer");
    assert_eq!(me["roles"], json!(["aether-user"]));
    assert_eq!(me["groups"], json!(["users"]));
    assert_eq!(me["keycloak_id"], payload(&token)["sub"]);
    assert!(me["last_sync_at"].is_string());

    let permissions = json_of(call(&app, &token, Method::GET, "/api/v1/auth/permissions", None).await, 200).await;
    assert_eq!(permissions["can_write"], true);
    assert_eq!(permissions["can_administer_users"], false);
    let roles = json_of(call(&app, &token, Method::GET, "/api/v1/users/roles", None).await, 200).await;
    assert_eq!(roles, json!({"roles": ["aether-user"], "groups": ["users"]}));
    let verified = json_of(
        call(&app, &token, Method::POST, "/api/v1/auth/verify-token", Some(json!({"token": token}))).await,
        200,
    )
    .await;
    assert_eq!(verified["active"], true);
    assert_eq!(verified["client_id"], "aether-test");

    // The same user keeps one Aether id; notebooks work as with local accounts.
    let again =
        json_of(call(&app, &kc_token(&kc, "alice").await, Method::GET, "/api/v1/users/me", None).await, 200).await;
    assert_eq!(again["id"], me["id"]);
    json_of(call(&app, &token, Method::POST, "/api/v1/notebooks", Some(json!({"name": "From Keycloak"}))).await, 201)
        .await;
    let synced = json_of(call(&app, &token, Method::POST, "/api/v1/users/sync", None).await, 200).await;
    assert_eq!(synced["user"]["id"], me["id"]);
    assert_eq!(synced["user"]["groups"], json!(["users"]));

    // Directory search finds users who never used Aether, with an id to share with.
    let found = json_of(call(&app, &token, Method::GET, "/api/v1/users/search?q=carol", None).await, 200).await;
    let carol = &found["items"][0];
    assert_eq!(carol["username"], "carol");
    assert_eq!(carol["full_name"], "Carol Compliance");
    json_of(
        call(&app, &token, Method::GET, &format!("/api/v1/users/{}", carol["id"].as_str().unwrap()), None).await,
        200,
    )
    .await;

    // Passwords go to Keycloak, not to Aether.
    let response = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .form(&[("grant_type", "password"), ("username", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "unsupported_grant_type").await;

    // API keys work the same with Keycloak identities.
    let key = json!({"name": "script", "scopes": ["read"]});
    let key = json_of(call(&app, &token, Method::POST, "/api/v1/users/me/api-keys", Some(key)).await, 201).await;
    let secret = key["key"].as_str().unwrap();
    let by_key = json_of(call(&app, secret, Method::GET, "/api/v1/auth/me", None).await, 200).await;
    assert_eq!(by_key["user_id"], me["id"]);
    assert_eq!(by_key["authenticated_by"], "api_key");

    // Settings are Aether's; the name is Keycloak's.
    let prefs = json!({"preferences": {"theme": "dark"}});
    let updated = json_of(call(&app, &token, Method::PUT, "/api/v1/users/me", Some(prefs)).await, 200).await;
    assert_eq!(updated["preferences"]["theme"], "dark");
    let rename = call(&app, &token, Method::PUT, "/api/v1/users/me", Some(json!({"full_name": "Mallory"}))).await;
    assert_problem(rename, 409, "managed_by_identity_provider").await;
    // Synchronisation keeps them.
    let resynced = json_of(call(&app, &token, Method::POST, "/api/v1/users/sync", None).await, 200).await;
    assert_eq!(resynced["user"]["preferences"]["theme"], "dark");

    // A refresh token issued to another client is refused by Keycloak, and so here.
    let foreign = kc_tokens(&kc, "alice", "alice-password").await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": foreign["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "invalid_grant").await;

    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(png()).file_name("a.png"));
    let response =
        app.client.post(app.url("/api/v1/users/me/avatar")).bearer_auth(&token).multipart(form).send().await.unwrap();
    let with_avatar = json_of(response, 200).await;
    let avatar = call(&app, &token, Method::GET, with_avatar["avatar_url"].as_str().unwrap(), None).await;
    assert_eq!(avatar.status(), 200);

    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["keycloak"]["status"], "up", "{ready}");
    app.shutdown().await;
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some(kc) = keycloak() else { return };
    let app = spawn(&kc).await;
    let tokens = kc_tokens(&kc, "bob", "bob-password").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refuse = async |token: &str, what: &str| {
        let response = call(&app, token, Method::GET, "/api/v1/auth/me", None).await;
        assert_eq!(response.status(), 401, "{what}");
        assert!(response.headers().contains_key("www-authenticate"), "{what}");
        let body: Value = response.json().await.unwrap();
        assert!(["invalid_token", "token_expired"].contains(&body["code"].as_str().unwrap()), "{what}: {body}");
    };

    // The payload swapped for one with more roles, the signature kept.
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    let mut claims = payload(access);
    claims["realm_access"]["roles"] = json!(["aether-admin"]);
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    refuse(&parts.join("."), "tampered payload").await;
    // alg none.
    let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    refuse(&format!("{none}.{}.", parts[1]), "alg none").await;
    // HS256, keyed with the realm's public certificate.
    let jwks: Value =
        reqwest::get(format!("{kc}/realms/aether/protocol/openid-connect/certs")).await.unwrap().json().await.unwrap();
    let rsa = jwks["keys"].as_array().unwrap().iter().find(|k| k["use"] == "sig").unwrap().clone();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = rsa["kid"].as_str().map(str::to_owned);
    let secret = rsa["x5c"][0].as_str().unwrap().as_bytes().to_vec();
    let confused = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&secret)).unwrap();
    refuse(&confused, "HS256 with the public key").await;
    // An expired token: the same claims, expired, re-signed by nobody Keycloak knows.
    claims["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    refuse(&parts.join("."), "expired and re-signed").await;
    // ID and refresh tokens are not access tokens.
    refuse(tokens["id_token"].as_str().unwrap(), "an ID token").await;
    refuse(tokens["refresh_token"].as_str().unwrap(), "a refresh token").await;
    // A real token of another realm (wrong issuer): the master realm's admin.
    refuse(&master_admin_token(&kc).await, "another realm").await;
    // The genuine token still works.
    json_of(call(&app, access, Method::GET, "/api/v1/auth/me", None).await, 200).await;
    app.shutdown().await;
}

#[tokio::test]
async fn viewers_cannot_write_and_role_changes_reach_the_next_token() {
    let Some(kc) = keycloak() else { return };
    let app = spawn(&kc).await;
    let admin = kc_token(&kc, "ada").await;
    let alice = kc_token(&kc, "alice").await;
    let victor = kc_token(&kc, "victor").await;

    json_of(call(&app, &victor, Method::GET, "/api/v1/notebooks", None).await, 200).await;
    let write = call(&app, &victor, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Nope"}))).await;
    assert_problem(write, 403, "forbidden").await;
    let victor_id = json_of(call(&app, &victor, Method::GET, "/api/v1/users/me", None).await, 200).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Only administrators administer, and they see the whole directory.
    assert_problem(call(&app, &alice, Method::GET, "/api/v1/admin/users", None).await, 403, "forbidden").await;
    let listed = json_of(call(&app, &admin, Method::GET, "/api/v1/admin/users?limit=100", None).await, 200).await;
    let names: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    for name in ["ada", "alice", "bob", "carol", "victor"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let sync_all = call(&app, &alice, Method::POST, "/api/v1/users/sync?scope=all", None).await;
    assert_problem(sync_all, 403, "forbidden").await;
    let synced = json_of(call(&app, &admin, Method::POST, "/api/v1/users/sync?scope=all", None).await, 200).await;
    assert!(synced["synced"].as_u64().unwrap() >= 5, "{synced}");

    let roles_path = format!("/api/v1/admin/users/{victor_id}/roles");
    let promote = json!({"roles": ["aether-user", "aether-viewer"]});
    let changed = json_of(call(&app, &admin, Method::PUT, &roles_path, Some(promote)).await, 200).await;
    assert_eq!(changed["roles"], json!(["aether-user", "aether-viewer"]));
    // Keycloak made the change: it is in victor's next token.
    let promoted = kc_token(&kc, "victor").await;
    let roles = payload(&promoted)["realm_access"]["roles"].clone();
    assert!(roles.as_array().unwrap().contains(&json!("aether-user")), "{roles}");
    json_of(call(&app, &promoted, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Now I can"}))).await, 201)
        .await;

    // And back: the direct mapping goes; the group still makes him a viewer.
    let demote = json!({"roles": ["aether-viewer"]});
    json_of(call(&app, &admin, Method::PUT, &roles_path, Some(demote)).await, 200).await;
    let demoted = kc_token(&kc, "victor").await;
    assert!(!payload(&demoted)["realm_access"]["roles"].as_array().unwrap().contains(&json!("aether-user")));
    let write = call(&app, &demoted, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Nope again"}))).await;
    assert_problem(write, 403, "forbidden").await;

    let audit = call(&app, &admin, Method::GET, &format!("/api/v1/admin/audit?resource_id={victor_id}"), None).await;
    let audit = json_of(audit, 200).await;
    let changes: Vec<&Value> =
        audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "roles_changed").collect();
    assert_eq!(changes.len(), 2, "{audit}");
    let ada_id = json_of(call(&app, &admin, Method::GET, "/api/v1/users/me", None).await, 200).await["id"].clone();
    assert_eq!(changes[0]["performed_by"], ada_id);
    app.shutdown().await;
}

/// An access token of the master realm's bootstrap admin (`scripts/services/keycloak`).
async fn master_admin_token(kc: &str) -> String {
    let master: Value = reqwest::Client::new()
        .post(format!("{kc}/realms/master/protocol/openid-connect/token"))
        .form(&[("grant_type", "password"), ("client_id", "admin-cli"), ("username", "admin"), ("password", "admin")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    master["access_token"].as_str().unwrap().to_owned()
}

/// A user made in Keycloak for this test, through the master realm's admin.
async fn new_keycloak_user(kc: &str) -> (String, String) {
    let http = reqwest::Client::new();
    let master = master_admin_token(kc).await;
    let username = format!("rush-{}", uuid::Uuid::now_v7().simple());
    let password = "rush-password-1".to_owned();
    let response = http
        .post(format!("{kc}/admin/realms/aether/users"))
        .bearer_auth(&master)
        .json(&json!({
            "username": username, "enabled": true, "emailVerified": true,
            "email": format!("{username}@example.com"), "firstName": "Rush", "lastName": "Hour",
            "groups": ["users"],
            "credentials": [{"type": "password", "value": password, "temporary": false}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    (username, password)
}

#[tokio::test]
async fn a_hundred_concurrent_first_requests_create_one_user() {
    let Some(kc) = keycloak() else { return };
    let app = spawn(&kc).await;
    let (username, password) = new_keycloak_user(&kc).await;
    let token = kc_tokens(&kc, &username, &password).await["access_token"].as_str().unwrap().to_owned();
    let requests = (0..100).map(|_| call(&app, &token, Method::GET, "/api/v1/users/me", None));
    let responses = futures::future::join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        ids.insert(json_of(response, 200).await["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one user: {ids:?}");
    let found = app.server.runtime.store.search_users(&username, 10).await.unwrap();
    assert_eq!(found.len(), 1, "exactly one stored user");
    assert_eq!(found[0].id.to_string(), ids.into_iter().next().unwrap());
    app.shutdown().await;
}

/// The login form of Keycloak's page: its action URL (HTML-unescaped).
fn form_action(html: &str) -> String {
    let form = &html[html.find("id=\"kc-form-login\"").expect("login form")..];
    let start = form.find("action=\"").unwrap() + "action=\"".len();
    let end = start + form[start..].find('"').unwrap();
    form[start..end].replace("&amp;", "&")
}

fn cookies(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Signs `username` in through the browser flow: Aether's login redirect, Keycloak's
/// page and form, back to Aether's callback URL (returned, not yet visited).
async fn browser_login(app: &TestApp, kc: &str, browser: &reqwest::Client, query: &str, username: &str) -> String {
    let response = browser.get(app.url(&format!("/api/v1/auth/login{query}"))).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let authorize = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{kc}/realms/aether/protocol/openid-connect/auth?")), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("state="));
    // Keycloak's login page, then its form, as a browser would post it.
    let page = browser.get(&authorize).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let jar = cookies(&page);
    let action = form_action(&page.text().await.unwrap());
    let password = format!("{username}-password");
    let posted = browser
        .post(&action)
        .header("cookie", jar)
        .form(&[("username", username), ("password", password.as_str()), ("credentialId", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 302, "{}", posted.text().await.unwrap());
    let callback = posted.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&app.url("/api/v1/auth/callback?")), "{callback}");
    callback
}

#[tokio::test]
async fn the_browser_code_flow_end_to_end() {
    let Some(kc) = keycloak() else { return };
    let app = spawn(&kc).await;
    // A browser that does not follow redirects by itself, so each hop can be checked.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let open_redirect = browser.get(app.url("/api/v1/auth/login?return_to=https://evil.example")).send().await.unwrap();
    assert_problem(open_redirect, 422, "validation_failed").await;

    // With return_to, the browser lands there with its session cookie.
    let callback = browser_login(&app, &kc, &browser, "?return_to=/app", "alice").await;
    let landed = browser.get(&callback).send().await.unwrap();
    assert_eq!(landed.status(), 303);
    assert_eq!(landed.headers()["location"], "/app");
    assert!(landed.headers()["set-cookie"].to_str().unwrap().starts_with("aether_session="));

    let callback = browser_login(&app, &kc, &browser, "", "bob").await;
    // Back at Aether: the code is exchanged and a session opened.
    let landed = browser.get(&callback).send().await.unwrap();
    let set_cookie = landed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with("aether_session=")
            && set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
    );
    let session = set_cookie.split(';').next().unwrap().to_owned();
    let login = json_of(landed, 200).await;
    assert_eq!(login["user"]["username"], "bob");
    assert!(login["user"]["last_login_at"].is_string());
    let access = login["access_token"].as_str().unwrap().to_owned();
    assert_eq!(payload(&access)["azp"], "aether-app");
    // A code and state are good once.
    let replay = browser.get(&callback).send().await.unwrap();
    assert_problem(replay, 400, "invalid_login_state").await;
    let bogus = browser.get(app.url("/api/v1/auth/callback?code=x&state=made-up")).send().await.unwrap();
    assert_problem(bogus, 400, "invalid_login_state").await;

    // The cookie authenticates, and refreshes without showing the refresh token.
    let with_cookie =
        |method: Method, path: &str| browser.request(method, app.url(path)).header("cookie", session.clone());
    let me = json_of(with_cookie(Method::GET, "/api/v1/auth/me").send().await.unwrap(), 200).await;
    assert_eq!(me["authenticated_by"], "session");
    assert_eq!(me["username"], "bob");
    let refreshed = json_of(with_cookie(Method::POST, "/api/v1/auth/refresh").send().await.unwrap(), 200).await;
    assert_eq!(refreshed["refresh_token"], Value::Null);
    let fresh = refreshed["access_token"].as_str().unwrap().to_owned();
    json_of(call(&app, &fresh, Method::GET, "/api/v1/auth/me", None).await, 200).await;

    // Logout ends everything: the cookie, the tokens of that session, Keycloak's session.
    let out = with_cookie(Method::POST, "/api/v1/auth/logout").send().await.unwrap();
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let out = json_of(out, 200).await;
    assert!(
        out["end_session_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{kc}/realms/aether/protocol/openid-connect/logout")),
        "{out}"
    );
    assert_problem(with_cookie(Method::GET, "/api/v1/auth/me").send().await.unwrap(), 401, "invalid_token").await;
    assert_problem(call(&app, &access, Method::GET, "/api/v1/auth/me", None).await, 401, "invalid_token").await;
    assert_problem(call(&app, &fresh, Method::GET, "/api/v1/auth/me", None).await, 401, "invalid_token").await;
    assert_problem(with_cookie(Method::POST, "/api/v1/auth/refresh").send().await.unwrap(), 400, "invalid_grant").await;

    // Audited, with where it came from.
    let admin = kc_token(&kc, "ada").await;
    let bob_id = login["user"]["id"].as_str().unwrap();
    let audit = call(&app, &admin, Method::GET, &format!("/api/v1/admin/audit?resource_id={bob_id}"), None).await;
    let audit = json_of(audit, 200).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(&actions[..2], ["logout", "login"], "{audit}");
    assert_eq!(audit["items"][1]["details"]["method"], "browser");
    assert_eq!(audit["items"][1]["ip_address"], "127.0.0.1");
    app.shutdown().await;
}
