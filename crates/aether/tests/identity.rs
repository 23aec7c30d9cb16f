//! Identity on the built-in provider, over real HTTP: who the caller is, what their
//! roles allow, personal API keys, profile settings, user search and administration,
//! logout, and the audit of it all. The same endpoints against a real Keycloak are
//! in `keycloak.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use aether_domain::user::Role;
use common::{ADMIN_PASSWORD, TestApp, USER_AGENT as AGENT, assert_problem, call, json_of};
use reqwest::Method;
use serde_json::{Value, json};

async fn login(app: &TestApp, username: &str, password: &str) -> Value {
    let response = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("user-agent", AGENT)
        .form(&[("grant_type", "password"), ("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    json_of(response, 200).await
}

async fn token_for(app: &TestApp, prefix: &str, roles: Vec<Role>) -> (String, String) {
    let (username, password) = app.create_user(prefix, roles).await;
    let tokens = login(app, &username, &password).await;
    (username, tokens["access_token"].as_str().unwrap().to_owned())
}

async fn admin_token(app: &TestApp) -> String {
    login(app, "admin", ADMIN_PASSWORD).await["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_caller_their_permissions_and_token_checks() {
    let app = TestApp::spawn().await;
    let (username, token) = token_for(&app, "ida", vec![Role::User]).await;

    let me = json_of(call(&app, &token, Method::GET, "/api/v1/auth/me", None).await, 200).await;
    assert_eq!(me["username"], username.as_str());
    assert_eq!(me["authenticated_by"], "access_token");
    assert_eq!(me["roles"], json!(["aether-user"]));

    let permissions = json_of(call(&app, &token, Method::GET, "/api/v1/auth/permissions", None).await, 200).await;
    assert_eq!(permissions["capabilities"], json!(["read", "write"]));
    assert_eq!(permissions["can_write"], true);
    assert_eq!(permissions["can_administer_users"], false);

    let valid = call(&app, &token, Method::POST, "/api/v1/auth/verify-token", Some(json!({"token": token}))).await;
    let valid = json_of(valid, 200).await;
    assert_eq!(valid["active"], true);
    assert_eq!(valid["username"], username.as_str());
    assert_eq!(valid["sub"], me["user_id"]);
    let forged = format!("{token}x");
    let invalid = call(&app, &token, Method::POST, "/api/v1/auth/verify-token", Some(json!({"token": forged}))).await;
    let invalid = json_of(invalid, 200).await;
    assert_eq!(
        invalid,
        json!({"active": false, "sub": null, "username": null, "roles": [], "groups": [],
        "client_id": null, "exp": null, "iat": null})
    );

    // Failures carry a WWW-Authenticate challenge (RFC 6750) and no detail.
    let response = call(&app, &forged, Method::GET, "/api/v1/auth/me", None).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="aether", error="invalid_token", error_description="invalid_token""#
    );
    let body = assert_problem(response, 401, "invalid_token").await;
    assert!(!body["detail"].as_str().unwrap().contains("signature"));
    let response = app.client.get(app.url("/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="aether""#);
    assert_problem(response, 401, "missing_token").await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"aether_authentication_failures_total{reason="invalid"}"#), "{metrics}");

    // The built-in provider has no browser login.
    let response = app.client.get(app.url("/api/v1/auth/login")).send().await.unwrap();
    assert_problem(response, 404, "browser_login_unavailable").await;
    app.shutdown().await;
}

#[tokio::test]
async fn viewers_read_but_cannot_write() {
    let app = TestApp::spawn().await;
    let owner = app.user_token("owner").await;
    let (viewer_name, viewer) = token_for(&app, "vera", vec![Role::Viewer]).await;
    let notebook =
        json_of(call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Shared"}))).await, 201)
            .await;
    let id = notebook["id"].as_str().unwrap();
    let viewer_id = json_of(call(&app, &viewer, Method::GET, "/api/v1/users/me", None).await, 200).await["id"].clone();
    let share = json!({"user_id": viewer_id, "permission": "write"});
    json_of(call(&app, &owner, Method::POST, &format!("/api/v1/notebooks/{id}/share"), Some(share)).await, 201).await;
    json_of(call(&app, &viewer, Method::POST, &format!("/api/v1/notebooks/{id}/share/accept"), None).await, 200).await;

    // Reading works, even of a notebook shared with write permission…
    json_of(call(&app, &viewer, Method::GET, &format!("/api/v1/notebooks/{id}"), None).await, 200).await;
    json_of(call(&app, &viewer, Method::GET, "/api/v1/notebooks", None).await, 200).await;
    // …but the role caps it: no write of any kind.
    for (method, path, body) in [
        (Method::POST, "/api/v1/notebooks".to_owned(), Some(json!({"name": "Mine"}))),
        (Method::PUT, format!("/api/v1/notebooks/{id}"), Some(json!({"name": "Renamed"}))),
        (Method::DELETE, format!("/api/v1/notebooks/{id}"), None),
        (Method::POST, format!("/api/v1/notebooks/{id}/duplicate"), Some(json!({}))),
        (Method::POST, "/api/v1/notebooks/bulk".to_owned(), Some(json!({"ids": [id], "action": "archive"}))),
    ] {
        let response = call(&app, &viewer, method.clone(), &path, body).await;
        assert_problem(response, 403, "forbidden").await;
    }
    // Their own settings are theirs to change.
    let prefs = json!({"preferences": {"theme": "dark"}});
    let me = json_of(call(&app, &viewer, Method::PUT, "/api/v1/users/me", Some(prefs)).await, 200).await;
    assert_eq!(me["preferences"]["theme"], "dark");
    assert_eq!(me["username"], viewer_name.as_str());
    app.shutdown().await;
}

#[tokio::test]
async fn profile_settings_public_profiles_and_search() {
    let app = TestApp::spawn().await;
    let (username, token) = token_for(&app, "pat", vec![Role::User]).await;
    let update = json!({"full_name": "Pat Q. Public", "preferences": {"language": "fr", "digest": {"daily": true}}});
    let me = json_of(call(&app, &token, Method::PUT, "/api/v1/users/me", Some(update)).await, 200).await;
    assert_eq!(me["full_name"], "Pat Q. Public");
    assert_eq!(me["preferences"], json!({"language": "fr", "digest": {"daily": true}}));
    let again = json_of(call(&app, &token, Method::GET, "/api/v1/users/me", None).await, 200).await;
    assert_eq!(again["preferences"], me["preferences"]);

    for (body, field) in [
        (json!({}), "body"),
        (json!({"full_name": "   "}), "full_name"),
        (json!({"preferences": {"blob": "x".repeat(17 * 1024)}}), "preferences"),
    ] {
        let response = call(&app, &token, Method::PUT, "/api/v1/users/me", Some(body)).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let response = call(&app, &token, Method::PUT, "/api/v1/users/me", Some(json!({"password_hash": "x"}))).await;
    assert_problem(response, 422, "validation_failed").await;

    // Anyone signed in sees public fields only.
    let other = app.user_token("other").await;
    let id = me["id"].as_str().unwrap();
    let public = json_of(call(&app, &other, Method::GET, &format!("/api/v1/users/{id}"), None).await, 200).await;
    assert_eq!(public, json!({"id": id, "username": username, "full_name": "Pat Q. Public", "avatar_url": null}));
    let missing = format!("/api/v1/users/{}", uuid::Uuid::now_v7());
    assert_problem(call(&app, &other, Method::GET, &missing, None).await, 404, "not_found").await;
    assert_problem(call(&app, &other, Method::GET, "/api/v1/users/nope", None).await, 400, "invalid_id").await;

    let found = call(&app, &other, Method::GET, "/api/v1/users/search?q=Q.%20PUBLIC", None).await;
    let found = json_of(found, 200).await;
    assert_eq!(found["items"], json!([public]));
    assert_problem(call(&app, &other, Method::GET, "/api/v1/users/search?q=", None).await, 422, "validation_failed")
        .await;
    let roles = json_of(call(&app, &token, Method::GET, "/api/v1/users/roles", None).await, 200).await;
    assert_eq!(roles, json!({"roles": ["aether-user"], "groups": []}));
    let synced = json_of(call(&app, &token, Method::POST, "/api/v1/users/sync", None).await, 200).await;
    assert_eq!(synced["user"]["id"], id);
    app.shutdown().await;
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_and_revocable() {
    let app = TestApp::spawn().await;
    let token = app.user_token("keys").await;
    let created =
        call(&app, &token, Method::POST, "/api/v1/users/me/api-keys", Some(json!({"name": "ci", "scopes": ["read"]})))
            .await;
    let created = json_of(created, 201).await;
    let secret = created["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("aek_") && secret.len() > 40, "{secret}");
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["scopes"], json!(["read"]));

    // The key authenticates as its owner, narrowed to its scopes.
    let me = json_of(call(&app, &secret, Method::GET, "/api/v1/auth/me", None).await, 200).await;
    assert_eq!(me["authenticated_by"], "api_key");
    assert_eq!(me["capabilities"], json!(["read"]));
    json_of(call(&app, &secret, Method::GET, "/api/v1/notebooks", None).await, 200).await;
    let write = call(&app, &secret, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Nope"}))).await;
    assert_problem(write, 403, "forbidden").await;
    // Keys cannot mint keys, and a user cannot give a key more than they have.
    let nested = json!({"name": "child", "scopes": ["read"]});
    let response = call(&app, &secret, Method::POST, "/api/v1/users/me/api-keys", Some(nested)).await;
    assert_problem(response, 403, "forbidden").await;
    let greedy = json!({"name": "root", "scopes": ["admin"]});
    let response = call(&app, &token, Method::POST, "/api/v1/users/me/api-keys", Some(greedy)).await;
    assert_problem(response, 403, "forbidden").await;
    let bad = json!({"name": "", "scopes": ["root"]});
    let problem = assert_problem(
        call(&app, &token, Method::POST, "/api/v1/users/me/api-keys", Some(bad)).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2, "{problem}");
    let past = json!({"name": "old", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z"});
    let response = call(&app, &token, Method::POST, "/api/v1/users/me/api-keys", Some(past)).await;
    assert_problem(response, 422, "validation_failed").await;

    let writer = json!({"name": "deploy", "scopes": ["write"]});
    let writer = json_of(call(&app, &token, Method::POST, "/api/v1/users/me/api-keys", Some(writer)).await, 201).await;
    let writer_secret = writer["key"].as_str().unwrap();
    json_of(call(&app, writer_secret, Method::POST, "/api/v1/notebooks", Some(json!({"name": "By key"}))).await, 201)
        .await;

    // Listing never shows secrets; last use is recorded.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let listed = json_of(call(&app, &token, Method::GET, "/api/v1/users/me/api-keys", None).await, 200).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|key| key.get("key").is_none()));
    assert!(!listed.to_string().contains(&secret[8..]));
    assert!(items.iter().all(|key| key["last_used_at"].is_string()), "{listed}");

    // Revocation is immediate, only by the owner, and audited.
    let id = created["id"].as_str().unwrap();
    let stranger = app.user_token("stranger").await;
    let path = format!("/api/v1/users/me/api-keys/{id}");
    assert_problem(call(&app, &stranger, Method::DELETE, &path, None).await, 404, "not_found").await;
    let revoked = json_of(call(&app, &token, Method::DELETE, &path, None).await, 200).await;
    assert!(revoked["revoked_at"].is_string());
    assert_problem(call(&app, &secret, Method::GET, "/api/v1/auth/me", None).await, 401, "invalid_token").await;
    assert_problem(call(&app, "aek_made-up", Method::GET, "/api/v1/auth/me", None).await, 401, "invalid_token").await;

    let admin = admin_token(&app).await;
    let audit = call(&app, &admin, Method::GET, &format!("/api/v1/admin/audit?resource_id={id}"), None).await;
    let audit = json_of(audit, 200).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["api_key_revoked", "api_key_created"]);
    assert_eq!(audit["items"][0]["user_agent"], AGENT);
    assert_eq!(audit["items"][0]["ip_address"], "127.0.0.1");
    app.shutdown().await;
}

#[tokio::test]
async fn administrators_list_users_and_change_roles() {
    let app = TestApp::spawn().await;
    let admin = admin_token(&app).await;
    let (username, password) = app.create_user("promo", vec![Role::Viewer]).await;
    let user_token = login(&app, &username, &password).await["access_token"].as_str().unwrap().to_owned();
    let user_id = json_of(call(&app, &user_token, Method::GET, "/api/v1/users/me", None).await, 200).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Only administrators.
    assert_problem(call(&app, &user_token, Method::GET, "/api/v1/admin/users", None).await, 403, "forbidden").await;
    let roles_path = format!("/api/v1/admin/users/{user_id}/roles");
    let promote = json!({"roles": ["aether-user", "aether-viewer"]});
    let response = call(&app, &user_token, Method::PUT, &roles_path, Some(promote.clone())).await;
    assert_problem(response, 403, "forbidden").await;

    let listed = json_of(call(&app, &admin, Method::GET, "/api/v1/admin/users?limit=100", None).await, 200).await;
    assert!(listed["items"].as_array().unwrap().iter().any(|user| user["username"] == username.as_str()));

    let changed = json_of(call(&app, &admin, Method::PUT, &roles_path, Some(promote)).await, 200).await;
    assert_eq!(changed["roles"], json!(["aether-user", "aether-viewer"]));
    let bad = json!({"roles": ["superuser"]});
    assert_problem(call(&app, &admin, Method::PUT, &roles_path, Some(bad)).await, 422, "validation_failed").await;

    // The change is in the user's next token.
    let next = login(&app, &username, &password).await["access_token"].as_str().unwrap().to_owned();
    let me = json_of(call(&app, &next, Method::GET, "/api/v1/auth/me", None).await, 200).await;
    assert_eq!(me["roles"], json!(["aether-user", "aether-viewer"]));
    let created =
        json_of(call(&app, &next, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Now I can"}))).await, 201)
            .await;
    // Writing covers changing what one owns, not only creating it.
    let path = format!("/api/v1/notebooks/{}", created["id"].as_str().unwrap());
    json_of(call(&app, &next, Method::PUT, &path, Some(json!({"name": "Renamed"}))).await, 200).await;

    let audit = call(&app, &admin, Method::GET, &format!("/api/v1/admin/audit?resource_id={user_id}"), None).await;
    let audit = json_of(audit, 200).await;
    let change = audit["items"].as_array().unwrap().iter().find(|e| e["action"] == "roles_changed").unwrap().clone();
    assert_eq!(change["details"]["before"], json!(["aether-viewer"]));
    assert_eq!(change["details"]["after"], json!(["aether-user", "aether-viewer"]));
    let logins = audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "login").count();
    assert_eq!(logins, 2, "{audit}");
    // A user may not read the audit log.
    assert_problem(call(&app, &next, Method::GET, "/api/v1/admin/audit", None).await, 403, "forbidden").await;
    app.shutdown().await;
}

#[tokio::test]
async fn logout_ends_the_session_and_failed_logins_are_audited() {
    let app = TestApp::spawn().await;
    let (username, password) = app.create_user("leaver", vec![Role::User]).await;
    let tokens = login(&app, &username, &password).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // A refresh through /auth/refresh works like the token endpoint's.
    let refreshed =
        app.client.post(app.url("/api/v1/auth/refresh")).json(&json!({"refresh_token": refresh})).send().await.unwrap();
    let refreshed = json_of(refreshed, 200).await;
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    json_of(call(&app, &access2, Method::GET, "/api/v1/auth/me", None).await, 200).await;

    // A body that is there but not JSON (only whitespace, say) is refused, not read as absent.
    let blank = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(access)
        .header("content-type", "application/json")
        .body(" ")
        .send()
        .await
        .unwrap();
    assert_problem(blank, 400, "malformed_body").await;
    json_of(call(&app, &access2, Method::GET, "/api/v1/auth/me", None).await, 200).await;

    let out = json_of(call(&app, access, Method::POST, "/api/v1/auth/logout", None).await, 200).await;
    assert_eq!(out["logged_out"], true);
    // Every token of that login stops working: access tokens old and new, and the refresh token.
    assert_problem(call(&app, access, Method::GET, "/api/v1/auth/me", None).await, 401, "invalid_token").await;
    assert_problem(call(&app, &access2, Method::GET, "/api/v1/auth/me", None).await, 401, "invalid_token").await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh2}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "invalid_grant").await;
    // Another login of the same user is not affected.
    let other = login(&app, &username, &password).await;
    json_of(call(&app, other["access_token"].as_str().unwrap(), Method::GET, "/api/v1/auth/me", None).await, 200).await;

    let response = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("user-agent", AGENT)
        .form(&[("grant_type", "password"), ("username", username.as_str()), ("password", "wrong-password")])
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "invalid_grant").await;

    let admin = admin_token(&app).await;
    let audit = call(&app, &admin, Method::GET, &format!("/api/v1/admin/audit?resource_id={username}"), None).await;
    let audit = json_of(audit, 200).await;
    let failed = &audit["items"][0];
    assert_eq!(failed["action"], "authentication_failed");
    assert_eq!(failed["performed_by"], Value::Null);
    assert_eq!(failed["user_agent"], AGENT);
    let user_id =
        json_of(call(&app, other["access_token"].as_str().unwrap(), Method::GET, "/api/v1/users/me", None).await, 200)
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let audit = call(&app, &admin, Method::GET, &format!("/api/v1/admin/audit?resource_id={user_id}"), None).await;
    let actions: Vec<String> = json_of(audit, 200).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, vec!["login", "logout", "login"]);
    app.shutdown().await;
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 7]));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

async fn upload_avatar(app: &TestApp, token: &str, bytes: Vec<u8>, filename: &str) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()));
    app.client.post(app.url("/api/v1/users/me/avatar")).bearer_auth(token).multipart(form).send().await.unwrap()
}

#[tokio::test]
async fn avatars_are_checked_resized_stored_and_removed() {
    let app = TestApp::spawn().await;
    let token = app.user_token("face").await;
    let other = app.user_token("viewer-of-faces").await;

    let me = json_of(upload_avatar(&app, &token, png(900, 400), "me.png").await, 200).await;
    let id = me["id"].as_str().unwrap();
    let url = me["avatar_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("/api/v1/users/{id}/avatar?v=")), "{url}");
    let public = json_of(call(&app, &other, Method::GET, &format!("/api/v1/users/{id}"), None).await, 200).await;
    assert_eq!(public["avatar_url"], url.as_str());

    let response = call(&app, &other, Method::GET, &url, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let stored = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((stored.width(), stored.height()), (256, 256));
    // Kept in the blob store under the data directory, one file per user.
    let blob = app.dir.path().join(format!("blobs/avatars/{id}.png"));
    assert!(blob.is_file(), "{}", blob.display());

    // The content decides, not the name: a PDF called .png is refused, as are garbage and huge images.
    let fake = upload_avatar(&app, &token, b"%PDF-1.7\n...".to_vec(), "me.png").await;
    assert_problem(fake, 422, "validation_failed").await;
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    assert_problem(upload_avatar(&app, &token, bomb, "bomb.png").await, 422, "validation_failed").await;
    let too_big = upload_avatar(&app, &token, vec![0u8; 6 * 1024 * 1024], "big.png").await;
    assert_problem(too_big, 413, "payload_too_large").await;
    let no_file = reqwest::multipart::Form::new().text("note", "no file here");
    let response = app
        .client
        .post(app.url("/api/v1/users/me/avatar"))
        .bearer_auth(&token)
        .multipart(no_file)
        .send()
        .await
        .unwrap();
    assert_problem(response, 422, "validation_failed").await;
    let json = call(&app, &token, Method::POST, "/api/v1/users/me/avatar", Some(json!({"file": "x"}))).await;
    assert_problem(json, 415, "unsupported_media_type").await;
    // The refused uploads left the avatar as it was.
    assert_eq!(call(&app, &other, Method::GET, &url, None).await.status(), 200);

    let removed = json_of(call(&app, &token, Method::DELETE, "/api/v1/users/me/avatar", None).await, 200).await;
    assert_eq!(removed["avatar_url"], Value::Null);
    assert_problem(call(&app, &other, Method::GET, &url, None).await, 404, "not_found").await;
    assert!(!blob.exists(), "no orphaned blob");
    app.shutdown().await;
}

/// The same avatar life cycle with blobs on a real S3-compatible server, when
/// `AETHER_TEST_S3_ENDPOINT` names one (`scripts/test` starts SeaweedFS).
#[tokio::test]
async fn avatars_live_in_s3_when_configured() {
    let Some(endpoint) = common::service("AETHER_TEST_S3_ENDPOINT", "to store avatars in S3") else { return };
    let app = TestApp::spawn_with(|config| {
        config.blob_store = aether::config::BlobKind::S3;
        config.s3_endpoint = endpoint;
        config.s3_bucket = std::env::var("AETHER_TEST_S3_BUCKET").unwrap_or_else(|_| "aether-test".into());
        config.s3_access_key_id = std::env::var("AETHER_TEST_S3_ACCESS_KEY_ID").unwrap();
        config.s3_secret_access_key =
            aether::config::Secret::new(std::env::var("AETHER_TEST_S3_SECRET_ACCESS_KEY").unwrap());
        config.s3_allow_http = true;
    })
    .await;
    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["blob_store"]["status"], "up", "{ready}");
    let token = app.user_token("s3face").await;
    let me = json_of(upload_avatar(&app, &token, png(300, 300), "me.png").await, 200).await;
    let url = me["avatar_url"].as_str().unwrap().to_owned();
    let response = call(&app, &token, Method::GET, &url, None).await;
    assert_eq!(response.status(), 200);
    let stored = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((stored.width(), stored.height()), (256, 256));
    assert!(!app.dir.path().join("blobs/avatars").exists(), "nothing on the local disk");
    json_of(call(&app, &token, Method::DELETE, "/api/v1/users/me/avatar", None).await, 200).await;
    assert_problem(call(&app, &token, Method::GET, &url, None).await, 404, "not_found").await;
    // The blob itself is gone from the bucket.
    let key = aether_domain::blob::BlobKey::parse(&format!("avatars/{}.png", me["id"].as_str().unwrap())).unwrap();
    let blob = app.server.runtime.blobs.get(&key);
    assert_eq!(blob.await, Err(aether_domain::blob::BlobError::NotFound));
    app.shutdown().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers() {
    let app = TestApp::spawn_with(|config| {
        config.rate_limit_per_user = 5;
        config.rate_limit_per_ip = 8;
        config.rate_limit_window_secs = 60;
    })
    .await;
    let token = app.user_token("hasty").await; // one request from this IP (the token grant)
    for remaining in (0..5).rev() {
        let response = call(&app, &token, Method::GET, "/api/v1/auth/me", None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "5");
        assert_eq!(response.headers()["ratelimit-remaining"], remaining.to_string().as_str());
        let reset: u64 = response.headers()["ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
    }
    let refused = call(&app, &token, Method::GET, "/api/v1/auth/me", None).await;
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_problem(refused, 429, "rate_limited").await;

    // Another user has a window of their own, until the address runs out (8 per IP).
    let (other_name, other_password) = app.create_user("patient", vec![Role::User]).await;
    let other = login(&app, &other_name, &other_password).await["access_token"].as_str().unwrap().to_owned();
    let response = call(&app, &other, Method::GET, "/api/v1/auth/me", None).await;
    assert_eq!(response.status(), 429, "the 9th request from this address");
    assert_eq!(response.headers()["ratelimit-limit"], "8");
    // Operations endpoints are not limited, and /metrics counts the refusals.
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"aether_rate_limited_total{scope="user"}"#), "{metrics}");
    assert!(metrics.contains(r#"aether_rate_limited_total{scope="ip"}"#), "{metrics}");
    app.shutdown().await;
}
