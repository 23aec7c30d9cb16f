//! The API over real HTTP, against a server started in-process on the test store
//! (SQLite by default, Neo4j when scripts/test sets AETHER_TEST_STORE=neo4j).
#![allow(clippy::unwrap_used)]

mod common;

use aether_domain::token::{AccessClaims, RealmAccess};
use aether_domain::user::Role;
use common::{ADMIN_PASSWORD, TestApp, assert_problem};
use serde_json::{Value, json};

#[tokio::test]
async fn operations_endpoints_answer() {
    let app = TestApp::spawn().await;
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let backend = common::store_env()[0].1.clone();
    assert_eq!(ready["checks"][backend.as_str()]["status"], "up", "{ready}");

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("http_requests_total{"), "{text}");
    assert!(text.contains("route=\"/health\""), "requests are labelled by route template");
    assert!(text.contains("http_request_duration_seconds_bucket"), "latency is a histogram");
    assert!(text.contains("http_requests_in_flight"));
    // Rare events are present from the start, so the first one shows in rate().
    for series in
        ["http_panics_total", "aether_uploads_infected_total", r#"aether_callbacks_total{outcome="abandoned"}"#]
    {
        assert!(text.contains(series), "{series} registered at start");
    }
    for dependency in ["store", "sessions", "rate_limiter", "cache", "redis_fanout", "job_queue"] {
        let series = format!(r#"aether_dependency_errors_total{{dependency="{dependency}"}}"#);
        assert!(text.contains(&series), "{series} registered at start");
    }

    let openapi = app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(openapi.status(), 200);
    let openapi: Value = openapi.json().await.unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/v1/notebooks", "/api/v1/notebooks/{id}", "/api/v1/auth/token", "/api/v1/users/me"] {
        assert!(openapi["paths"].get(path).is_some(), "openapi lacks {path}");
    }

    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
    let script = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(script.status(), 200, "Swagger UI assets are served from the binary, offline");
    app.shutdown().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let given = app.client.get(app.url("/health")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    let generated = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(generated.headers()["x-request-id"].len(), 36);
    let oversized = app.client.get(app.url("/health")).header("x-request-id", "x".repeat(300)).send().await.unwrap();
    assert_eq!(oversized.headers()["x-request-id"].len(), 36, "an oversized id is replaced");
    let missing = app.client.get(app.url("/nope")).header("x-request-id", "abc-123").send().await.unwrap();
    let body = assert_problem(missing, 404, "not_found").await;
    assert_eq!(body["request_id"], "abc-123");
    app.shutdown().await;
}

#[tokio::test]
async fn router_failures_are_problems() {
    let app = TestApp::spawn().await;
    assert_problem(app.client.get(app.url("/api/v1/nothing-here")).send().await.unwrap(), 404, "not_found").await;
    let wrong_method = app.client.patch(app.url("/api/v1/notebooks")).send().await.unwrap();
    assert!(wrong_method.headers().get("allow").is_some(), "405 keeps its Allow header");
    assert_problem(wrong_method, 405, "method_not_allowed").await;
    let no_token = app.client.get(app.url("/api/v1/notebooks")).send().await.unwrap();
    assert!(no_token.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_problem(no_token, 401, "missing_token").await;
    app.shutdown().await;
}

#[tokio::test]
async fn bootstrapped_admin_logs_in_and_sees_itself() {
    let app = TestApp::spawn().await;
    let response = app.password_grant("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 40);
    let me = app
        .client
        .get(app.url("/api/v1/users/me"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["username"], "admin");
    assert!(me["roles"].as_array().unwrap().contains(&json!("aether-admin")));
    assert!(me["last_login_at"].is_string());
    app.shutdown().await;
}

#[tokio::test]
async fn password_grant_refuses_bad_requests() {
    let app = TestApp::spawn().await;
    let (username, _) = app.create_user("grant", vec![Role::User]).await;
    let body = assert_problem(app.password_grant(&username, "wrong-password").await, 400, "invalid_grant").await;
    assert_eq!(body["error"], "invalid_grant", "OAuth clients read `error`");
    assert_problem(app.password_grant("no-such-user-anywhere", "whatever-pass").await, 400, "invalid_grant").await;
    assert_problem(app.password_grant("bad user name!", "whatever-pass").await, 400, "invalid_grant").await;
    let unsupported = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_problem(unsupported, 400, "unsupported_grant_type").await;
    let missing =
        app.client.post(app.url("/api/v1/auth/token")).form(&[("grant_type", "password")]).send().await.unwrap();
    assert_problem(missing, 400, "invalid_request").await;
    let json_body =
        app.client.post(app.url("/api/v1/auth/token")).json(&json!({"grant_type": "password"})).send().await.unwrap();
    assert_problem(json_body, 415, "unsupported_media_type").await;
    app.shutdown().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let (username, password) = app.create_user("refresh", vec![Role::User]).await;
    let first: Value = app.password_grant(&username, &password).await.json().await.unwrap();
    let refresh = |token: String| {
        let request = app
            .client
            .post(app.url("/api/v1/auth/token"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())]);
        async move { request.send().await.unwrap() }
    };
    let second = refresh(first["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"], "the refresh token rotates");
    let me = app
        .client
        .get(app.url("/api/v1/users/me"))
        .bearer_auth(second["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // Replaying the spent token fails and revokes the current one too.
    assert_problem(refresh(first["refresh_token"].as_str().unwrap().to_owned()).await, 400, "invalid_grant").await;
    assert_problem(refresh(second["refresh_token"].as_str().unwrap().to_owned()).await, 400, "invalid_grant").await;
    assert_problem(refresh("made-up".to_owned()).await, 400, "invalid_grant").await;
    app.shutdown().await;
}

async fn create(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url("/api/v1/notebooks")).bearer_auth(token).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn notebooks_crud_and_cursor_paging() {
    let app = TestApp::spawn().await;
    let token = app.user_token("owner").await;
    let response = create(
        &app,
        &token,
        json!({"name": "  Research ", "description": "papers", "visibility": "shared", "tags": ["AI", "ai", "law"],
               "compliance_settings": {"pii_detection": true, "retention_days": 90}}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/notebooks/{}", created["id"].as_str().unwrap()));
    assert_eq!(created["name"], "Research");
    assert_eq!(created["visibility"], "shared");
    assert_eq!(created["status"], "active");
    assert_eq!(created["tags"], json!(["ai", "law"]));
    assert_eq!(
        created["compliance_settings"],
        json!({"pii_detection": true, "redaction_mode": "none", "retention_days": 90, "allowed_content_types": [], "hipaa_mode": false})
    );
    assert_eq!(created["document_count"], 0);

    let fetched: Value =
        app.client.get(app.url(&location)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(fetched, created);

    let updated = app
        .client
        .put(app.url(&location))
        .bearer_auth(&token)
        .json(&json!({"name": "Research 2", "description": null, "status": "archived"}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["name"], "Research 2");
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["status"], "archived");
    assert_eq!(updated["tags"], json!(["ai", "law"]), "fields not given are kept");
    assert_ne!(updated["updated_at"], created["updated_at"]);

    for i in 0..44 {
        assert_eq!(create(&app, &token, json!({"name": format!("Notebook {i}")})).await.status(), 201);
    }
    let mut names = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = app.url("/api/v1/notebooks?limit=20");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = app.client.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        pages += 1;
        names.extend(page["items"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 45);
    assert_eq!(names[0], "Notebook 43", "newest first");
    assert_eq!(names[44], "Research 2");
    let default_page: Value =
        app.client.get(app.url("/api/v1/notebooks")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(default_page["items"].as_array().unwrap().len(), 20, "default limit is 20");

    let deleted = app.client.delete(app.url(&location)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_problem(app.client.get(app.url(&location)).bearer_auth(&token).send().await.unwrap(), 404, "not_found")
        .await;
    assert_problem(app.client.delete(app.url(&location)).bearer_auth(&token).send().await.unwrap(), 404, "not_found")
        .await;
    app.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_the_right_problem() {
    let app = TestApp::spawn().await;
    let token = app.user_token("bad-input").await;
    let post = |body: reqwest::Body| {
        app.client
            .post(app.url("/api/v1/notebooks"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
    };
    assert_problem(post("{\"name\": ".into()).send().await.unwrap(), 400, "malformed_body").await;
    let missing = assert_problem(post("{}".into()).send().await.unwrap(), 422, "validation_failed").await;
    assert_eq!(missing["errors"][0]["field"], "name");
    let empty =
        assert_problem(post("{\"name\": \"   \"}".into()).send().await.unwrap(), 422, "validation_failed").await;
    assert_eq!(empty["errors"][0]["field"], "name");
    let several = assert_problem(
        post(r#"{"name": "", "visibility": "secret", "tags": [""]}"#.into()).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(several["errors"].as_array().unwrap().len(), 3, "every field's problem at once: {several}");
    assert_problem(post(r#"{"name": 5}"#.into()).send().await.unwrap(), 422, "validation_failed").await;
    assert_problem(post(r#"{"name": "x", "colour": "red"}"#.into()).send().await.unwrap(), 422, "validation_failed")
        .await;
    let hipaa = assert_problem(
        post(r#"{"name": "x", "compliance_settings": {"hipaa_mode": true}}"#.into()).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(hipaa["errors"][0]["field"], "compliance_settings");
    let huge = format!("{{\"name\": \"big\", \"description\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
    assert_problem(post(huge.into()).send().await.unwrap(), 413, "payload_too_large").await;
    let no_type = app.client.post(app.url("/api/v1/notebooks")).bearer_auth(&token).body("{}").send().await.unwrap();
    assert_problem(no_type, 415, "unsupported_media_type").await;

    assert_problem(
        app.client.get(app.url("/api/v1/notebooks/not-a-uuid")).bearer_auth(&token).send().await.unwrap(),
        400,
        "invalid_id",
    )
    .await;
    assert_problem(
        app.client.get(app.url("/api/v1/notebooks?limit=0")).bearer_auth(&token).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.client.get(app.url("/api/v1/notebooks?limit=abc")).bearer_auth(&token).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.client.get(app.url("/api/v1/notebooks?cursor=!!")).bearer_auth(&token).send().await.unwrap(),
        400,
        "invalid_cursor",
    )
    .await;

    let created: Value = create(&app, &token, json!({"name": "Mine"})).await.json().await.unwrap();
    let path = format!("/api/v1/notebooks/{}", created["id"].as_str().unwrap());
    let empty_update = app.client.put(app.url(&path)).bearer_auth(&token).json(&json!({})).send().await.unwrap();
    assert_problem(empty_update, 422, "validation_failed").await;
    let delete_by_status =
        app.client.put(app.url(&path)).bearer_auth(&token).json(&json!({"status": "deleted"})).send().await.unwrap();
    assert_problem(delete_by_status, 422, "validation_failed").await;
    app.shutdown().await;
}

#[tokio::test]
async fn tokens_must_be_valid_and_current() {
    let app = TestApp::spawn().await;
    let list = |token: String| app.client.get(app.url("/api/v1/notebooks")).bearer_auth(token).send();
    assert_problem(list("garbage".into()).await.unwrap(), 401, "invalid_token").await;
    let basic =
        app.client.get(app.url("/api/v1/notebooks")).header("authorization", "Basic YTpi").send().await.unwrap();
    assert_problem(basic, 401, "invalid_token").await;

    // A token signed with the server's own key but already expired.
    let (username, password) = app.create_user("expired", vec![Role::User]).await;
    let fresh: Value = app.password_grant(&username, &password).await.json().await.unwrap();
    let me: Value = app
        .client
        .get(app.url("/api/v1/users/me"))
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = AccessClaims {
        iss: app.server.runtime.config.token_issuer.clone(),
        sub: me["id"].as_str().unwrap().to_owned(),
        aud: app.server.runtime.config.token_audience.clone(),
        azp: app.server.runtime.config.token_audience.clone(),
        exp: now - 60,
        iat: now - 360,
        nbf: None,
        jti: "expired".into(),
        typ: "Bearer".into(),
        preferred_username: username.clone(),
        email: None,
        name: None,
        realm_access: RealmAccess { roles: vec!["aether-user".into()] },
        sid: None,
    };
    let expired = app.server.runtime.tokens.sign(&claims).unwrap();
    assert_problem(list(expired).await.unwrap(), 401, "token_expired").await;
    // Signed by the server's own key, but not valid yet, or issued in the future.
    let not_yet = AccessClaims { exp: now + 7200, iat: now, nbf: Some(now + 3600), ..claims.clone() };
    let not_yet = app.server.runtime.tokens.sign(&not_yet).unwrap();
    assert_problem(list(not_yet).await.unwrap(), 401, "invalid_token").await;
    let future = AccessClaims { exp: now + 7200, iat: now + 3600, nbf: None, ..claims.clone() };
    let future = app.server.runtime.tokens.sign(&future).unwrap();
    assert_problem(list(future).await.unwrap(), 401, "invalid_token").await;
    let tampered = format!("{}x", fresh["access_token"].as_str().unwrap());
    assert_problem(list(tampered).await.unwrap(), 401, "invalid_token").await;
    app.shutdown().await;
}

#[tokio::test]
async fn another_users_notebook_is_not_found() {
    let app = TestApp::spawn().await;
    let alice = app.user_token("alice").await;
    let mallory = app.user_token("mallory").await;
    let created: Value = create(&app, &alice, json!({"name": "Alice's"})).await.json().await.unwrap();
    let path = format!("/api/v1/notebooks/{}", created["id"].as_str().unwrap());
    assert_problem(app.client.get(app.url(&path)).bearer_auth(&mallory).send().await.unwrap(), 404, "not_found").await;
    let update =
        app.client.put(app.url(&path)).bearer_auth(&mallory).json(&json!({"name": "Mine now"})).send().await.unwrap();
    assert_problem(update, 404, "not_found").await;
    assert_problem(app.client.delete(app.url(&path)).bearer_auth(&mallory).send().await.unwrap(), 404, "not_found")
        .await;
    let listed: Value =
        app.client.get(app.url("/api/v1/notebooks")).bearer_auth(&mallory).send().await.unwrap().json().await.unwrap();
    assert!(listed["items"].as_array().unwrap().is_empty());
    let still: Value = app.client.get(app.url(&path)).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    assert_eq!(still["name"], "Alice's", "nothing the intruder did took effect");
    app.shutdown().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(|config| {
        config.cors_allowed_origins.0 = vec!["https://app.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/notebooks"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    app.shutdown().await;
}

#[tokio::test]
async fn if_match_prevents_lost_updates() {
    let app = TestApp::spawn().await;
    let token = app.user_token("etag").await;
    let created = create(&app, &token, json!({"name": "Draft"})).await;
    assert_eq!(created.headers()["etag"], "\"1\"");
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["version"], 1);
    let path = format!("/api/v1/notebooks/{}", created["id"].as_str().unwrap());
    let read = app.client.get(app.url(&path)).bearer_auth(&token).send().await.unwrap();
    let etag = read.headers()["etag"].to_str().unwrap().to_owned();
    let put = |if_match: &str, name: &str| {
        app.client
            .put(app.url(&path))
            .bearer_auth(&token)
            .header("if-match", if_match)
            .json(&json!({"name": name}))
            .send()
    };
    let first = put(&etag, "Alice's edit").await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["etag"], "\"2\"");
    // Bob read the same version and saves later: refused, nothing lost.
    assert_problem(put(&etag, "Bob's edit").await.unwrap(), 412, "precondition_failed").await;
    let now: Value = app.client.get(app.url(&path)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["name"], "Alice's edit");
    assert_eq!(put("\"2\"", "Bob, rebased").await.unwrap().status(), 200);
    assert_eq!(put("*", "Anything goes").await.unwrap().status(), 200);
    // Strong comparison (RFC 9110 §13.1.1): weak tags and tags this API never issues match nothing.
    assert_problem(put("W/\"3\"", "Weak").await.unwrap(), 412, "precondition_failed").await;
    assert_problem(put("\"x\"", "Foreign").await.unwrap(), 412, "precondition_failed").await;
    assert_eq!(put("\"x\", W/\"4\", \"4\"", "Any of them").await.unwrap().status(), 200);
    assert_problem(put("\"3", "Bad").await.unwrap(), 400, "invalid_if_match").await;
    app.shutdown().await;
}

#[tokio::test]
async fn listings_filter_sort_and_scope() {
    let app = TestApp::spawn().await;
    let token = app.user_token("filters").await;
    let other = app.user_token("filters-other").await;
    create(&app, &token, json!({"name": "One", "tags": ["x"]})).await;
    create(&app, &token, json!({"name": "Two", "tags": ["y"], "visibility": "public"})).await;
    let three: Value = create(&app, &token, json!({"name": "Three", "tags": ["x"]})).await.json().await.unwrap();
    let path = format!("/api/v1/notebooks/{}", three["id"].as_str().unwrap());
    app.client.put(app.url(&path)).bearer_auth(&token).json(&json!({"status": "archived"})).send().await.unwrap();
    let names = |token: String, query: &'static str| {
        let request = app.client.get(app.url(&format!("/api/v1/notebooks{query}"))).bearer_auth(token);
        async move {
            let page: Value = request.send().await.unwrap().json().await.unwrap();
            page["items"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(names(token.clone(), "").await, ["Three", "Two", "One"]);
    assert_eq!(names(token.clone(), "?sort=oldest").await, ["One", "Two", "Three"]);
    assert_eq!(names(token.clone(), "?tag=x").await, ["Three", "One"]);
    assert_eq!(names(token.clone(), "?tag=x&status=active").await, ["One"]);
    assert_eq!(names(token.clone(), "?status=archived").await, ["Three"]);
    assert_eq!(names(token.clone(), "?visibility=public").await, ["Two"]);
    let public = names(other.clone(), "?scope=public&limit=100").await;
    assert!(public.contains(&"Two".to_owned()) && !public.contains(&"One".to_owned()));
    assert!(names(other.clone(), "").await.is_empty());
    let tags: Value =
        app.client.get(app.url("/api/v1/tags")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["items"], json!([{"name": "x", "usage_count": 2}, {"name": "y", "usage_count": 1}]));
    let theirs: Value =
        app.client.get(app.url("/api/v1/tags")).bearer_auth(&other).send().await.unwrap().json().await.unwrap();
    assert_eq!(theirs["items"], json!([]), "another user's private tags stay private");
    let bad = app
        .client
        .get(app.url("/api/v1/notebooks?scope=all&sort=name&status=deleted"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 3);
    app.shutdown().await;
}
