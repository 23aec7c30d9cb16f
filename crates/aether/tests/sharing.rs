//! Authorization through the graph, over HTTP: ownership, invitations, direct
//! grants, inheritance down the hierarchy, public visibility, roles, moves and the
//! explain endpoint. Runs on the test store (SQLite, or Neo4j under scripts/test).
#![allow(clippy::unwrap_used)]

mod common;

use aether_domain::user::Role;
use common::{TestApp, assert_problem};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Actor {
    token: String,
    id: String,
}

async fn actor(app: &TestApp, prefix: &str, roles: Vec<Role>) -> Actor {
    let (username, password) = app.create_user(prefix, roles).await;
    let tokens: Value = app.password_grant(&username, &password).await.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let me: Value =
        app.client.get(app.url("/api/v1/users/me")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    Actor { token, id: me["id"].as_str().unwrap().to_owned() }
}

async fn call(app: &TestApp, who: &Actor, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(&who.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn create(app: &TestApp, who: &Actor, body: Value) -> Value {
    let response = call(app, who, Method::POST, "/api/v1/notebooks", Some(body)).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn id(notebook: &Value) -> &str {
    notebook["id"].as_str().unwrap()
}

async fn status(app: &TestApp, who: &Actor, method: Method, path: &str, body: Option<Value>) -> u16 {
    call(app, who, method, path, body).await.status().as_u16()
}

async fn names(app: &TestApp, who: &Actor, path: &str) -> Vec<String> {
    let page: Value = call(app, who, Method::GET, path, None).await.json().await.unwrap();
    page["items"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_owned()).collect()
}

/// The actors of the authorization tests: an owner, collaborators of each level, an
/// invitee who has not answered, a revoked collaborator, a stranger, and users
/// holding the viewer and admin realm roles.
struct Cast {
    owner: Actor,
    reader: Actor,
    writer: Actor,
    manager: Actor,
    invitee: Actor,
    revoked: Actor,
    stranger: Actor,
    viewer: Actor,
    admin: Actor,
}

async fn cast(app: &TestApp, prefix: &str) -> Cast {
    let user = |name: &str| format!("{prefix}{name}");
    Cast {
        owner: actor(app, &user("owner"), vec![Role::User]).await,
        reader: actor(app, &user("reader"), vec![Role::User]).await,
        writer: actor(app, &user("writer"), vec![Role::User]).await,
        manager: actor(app, &user("manager"), vec![Role::User]).await,
        invitee: actor(app, &user("invitee"), vec![Role::User]).await,
        revoked: actor(app, &user("revoked"), vec![Role::User]).await,
        stranger: actor(app, &user("stranger"), vec![Role::User]).await,
        viewer: actor(app, &user("viewer"), vec![Role::Viewer]).await,
        admin: actor(app, &user("admin"), vec![Role::Admin, Role::User]).await,
    }
}

#[tokio::test]
async fn permissions_follow_the_graph() {
    let app = TestApp::spawn().await;
    let Cast { owner, reader, writer, manager, invitee, revoked, stranger, viewer, admin } = cast(&app, "").await;

    let root = create(&app, &owner, json!({"name": "Root"})).await;
    let child = create(&app, &owner, json!({"name": "Child", "parent_id": id(&root)})).await;
    assert_eq!(child["parent_id"], root["id"]);
    let leaf = create(&app, &owner, json!({"name": "Leaf", "parent_id": id(&child)})).await;
    let r = format!("/api/v1/notebooks/{}", id(&root));
    let c = format!("/api/v1/notebooks/{}", id(&child));
    let l = format!("/api/v1/notebooks/{}", id(&leaf));

    // Direct grants (active at once) on the root; an invitation left pending; a revoked grant.
    for (who, permission) in
        [(&reader, "read"), (&writer, "write"), (&manager, "admin"), (&revoked, "read"), (&viewer, "admin")]
    {
        let response = call(
            &app,
            &owner,
            Method::PUT,
            &format!("{r}/permissions"),
            Some(json!({"user_id": who.id, "permission": permission})),
        )
        .await;
        assert_eq!(response.status(), 200);
        let grant: Value = response.json().await.unwrap();
        assert_eq!(grant["status"], "active");
        assert!(grant["accepted_at"].is_string());
    }
    let shared = call(
        &app,
        &owner,
        Method::POST,
        &format!("{r}/share"),
        Some(json!({"user_id": invitee.id, "permission": "write"})),
    )
    .await;
    assert_eq!(shared.status(), 201);
    assert_eq!(
        status(
            &app,
            &owner,
            Method::PUT,
            &format!("{r}/permissions"),
            Some(json!({"user_id": revoked.id, "permission": null}))
        )
        .await,
        204
    );

    // Reading the child (access inherited from the root).
    for (who, expected) in [
        (&owner, 200),
        (&reader, 200),
        (&writer, 200),
        (&manager, 200),
        (&viewer, 200),
        (&admin, 200),
        (&invitee, 404),
        (&revoked, 404),
        (&stranger, 404),
    ] {
        assert_eq!(status(&app, who, Method::GET, &c, None).await, expected, "GET child");
        assert_eq!(status(&app, who, Method::GET, &format!("{c}/children"), None).await, expected, "children");
    }
    // Renaming needs write; changing visibility needs admin.
    for (who, rename, visibility) in [
        (&owner, 200, 200),
        (&reader, 403, 403),
        (&writer, 200, 403),
        (&manager, 200, 200),
        (&viewer, 403, 403),
        (&admin, 200, 200),
        (&invitee, 404, 404),
        (&stranger, 404, 404),
    ] {
        assert_eq!(status(&app, who, Method::PUT, &c, Some(json!({"name": "Child"}))).await, rename, "rename");
        assert_eq!(
            status(&app, who, Method::PUT, &c, Some(json!({"visibility": "shared"}))).await,
            visibility,
            "visibility"
        );
    }
    // Sharing and explaining others' access need admin.
    for (who, expected) in [(&reader, 403), (&writer, 403), (&stranger, 404), (&manager, 201)] {
        let body = json!({"user_id": stranger.id, "permission": "read"});
        assert_eq!(status(&app, who, Method::POST, &format!("{c}/share"), Some(body)).await, expected, "share");
    }
    call(
        &app,
        &owner,
        Method::PUT,
        &format!("{c}/permissions"),
        Some(json!({"user_id": stranger.id, "permission": null})),
    )
    .await;
    assert_eq!(status(&app, &writer, Method::GET, &format!("{c}/collaborators"), None).await, 403);
    assert_eq!(status(&app, &stranger, Method::GET, &format!("{l}/access?user_id={}", reader.id), None).await, 404);

    // Why the reader can read the leaf: a grant two levels up.
    let explained: Value =
        call(&app, &owner, Method::GET, &format!("{l}/access?user_id={}", reader.id), None).await.json().await.unwrap();
    assert_eq!(explained["permission"], "read");
    assert_eq!(
        explained["sources"][0],
        json!({"kind": "collaborator", "notebook_id": id(&root), "permission": "read", "inherited": true})
    );
    let own: Value = call(&app, &owner, Method::GET, &format!("{l}/access"), None).await.json().await.unwrap();
    assert_eq!(own["permission"], "admin");
    assert_eq!(own["sources"][0]["kind"], "owner");
    let capped: Value = call(&app, &viewer, Method::GET, &format!("{l}/access"), None).await.json().await.unwrap();
    assert_eq!(capped["permission"], "read");
    assert_eq!(capped["capped_by"], "aether-viewer");
    let nobody: Value = call(&app, &owner, Method::GET, &format!("{l}/access?user_id={}", stranger.id), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(nobody["permission"], Value::Null);

    // Lists: shared-with-me covers the subtree; invitations wait until answered.
    assert_eq!(names(&app, &reader, "/api/v1/notebooks?scope=shared").await, ["Leaf", "Child", "Root"]);
    assert!(names(&app, &stranger, "/api/v1/notebooks?scope=shared").await.is_empty());
    assert!(names(&app, &invitee, "/api/v1/notebooks?scope=shared").await.is_empty());
    let invitations: Value = call(&app, &invitee, Method::GET, "/api/v1/invitations", None).await.json().await.unwrap();
    assert_eq!(invitations["items"][0]["notebook_id"], root["id"]);
    assert_eq!(status(&app, &stranger, Method::POST, &format!("{r}/share/accept"), None).await, 404);
    assert_eq!(status(&app, &invitee, Method::POST, &format!("{r}/share/accept"), None).await, 200);
    assert_eq!(
        status(&app, &invitee, Method::PUT, &c, Some(json!({"name": "Child"}))).await,
        200,
        "accepted write grant"
    );
    assert_eq!(
        status(&app, &invitee, Method::POST, &format!("{r}/share/accept"), None).await,
        404,
        "no longer pending"
    );

    // Moving the leaf out of the shared tree takes the inherited access away.
    let moved = call(&app, &owner, Method::PUT, &l, Some(json!({"parent_id": null}))).await;
    assert_eq!(moved.status(), 200);
    assert_eq!(moved.json::<Value>().await.unwrap()["parent_id"], Value::Null);
    assert_eq!(status(&app, &reader, Method::GET, &l, None).await, 404);
    assert_eq!(names(&app, &reader, "/api/v1/notebooks?scope=shared").await, ["Child", "Root"]);
    // Only an admin of the notebook may move it, and only into a notebook it can write.
    assert_eq!(status(&app, &writer, Method::PUT, &c, Some(json!({"parent_id": null}))).await, 403);
    assert_eq!(status(&app, &manager, Method::PUT, &c, Some(json!({"parent_id": id(&leaf)}))).await, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn public_notebooks_do_not_expose_their_private_children() {
    let app = TestApp::spawn().await;
    let owner = actor(&app, "pub-owner", vec![Role::User]).await;
    let stranger = actor(&app, "pub-stranger", vec![Role::User]).await;
    let public = create(&app, &owner, json!({"name": "Public", "visibility": "public"})).await;
    let hidden = create(&app, &owner, json!({"name": "Hidden", "parent_id": id(&public)})).await;
    create(&app, &owner, json!({"name": "Also public", "parent_id": id(&public), "visibility": "public"})).await;
    let p = format!("/api/v1/notebooks/{}", id(&public));
    assert_eq!(status(&app, &stranger, Method::GET, &p, None).await, 200);
    assert_eq!(status(&app, &stranger, Method::PUT, &p, Some(json!({"name": "Mine"}))).await, 403);
    assert_eq!(names(&app, &stranger, &format!("{p}/children")).await, ["Also public"]);
    assert_eq!(names(&app, &owner, &format!("{p}/children")).await, ["Also public", "Hidden"]);
    assert_eq!(status(&app, &stranger, Method::GET, &format!("/api/v1/notebooks/{}", id(&hidden)), None).await, 404);
    // Creating inside someone else's public notebook needs write access.
    let response = call(
        &app,
        &stranger,
        Method::POST,
        "/api/v1/notebooks",
        Some(json!({"name": "Squat", "parent_id": id(&public)})),
    )
    .await;
    assert_problem(response, 403, "forbidden").await;
    app.shutdown().await;
}

#[tokio::test]
async fn structure_rules_are_enforced() {
    let app = TestApp::spawn_with(|config| config.max_notebook_depth = 3).await;
    let owner = actor(&app, "structure", vec![Role::User]).await;
    let a = create(&app, &owner, json!({"name": "A"})).await;
    let b = create(&app, &owner, json!({"name": "B", "parent_id": id(&a)})).await;
    let c = create(&app, &owner, json!({"name": "C", "parent_id": id(&b)})).await;
    let too_deep =
        call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(json!({"name": "D", "parent_id": id(&c)}))).await;
    assert_problem(too_deep, 409, "depth_exceeded").await;
    let a_path = format!("/api/v1/notebooks/{}", id(&a));
    let cycle = call(&app, &owner, Method::PUT, &a_path, Some(json!({"parent_id": id(&c)}))).await;
    assert_problem(cycle, 409, "cycle").await;
    let has_children = call(&app, &owner, Method::DELETE, &a_path, None).await;
    assert_problem(has_children, 409, "has_children").await;
    assert_eq!(status(&app, &owner, Method::DELETE, &format!("{a_path}?cascade=true"), None).await, 204);
    for notebook in [&a, &b, &c] {
        let path = format!("/api/v1/notebooks/{}", id(notebook));
        assert_eq!(status(&app, &owner, Method::GET, &path, None).await, 404);
    }
    // Restoring: parents first; nobody but the owner (or an admin) may.
    let intruder = actor(&app, "intruder", vec![Role::User]).await;
    let b_restore = format!("/api/v1/notebooks/{}/restore", id(&b));
    assert_problem(call(&app, &owner, Method::POST, &b_restore, None).await, 409, "parent_deleted").await;
    assert_eq!(status(&app, &intruder, Method::POST, &format!("{a_path}/restore"), None).await, 404);
    assert_eq!(status(&app, &owner, Method::POST, &format!("{a_path}/restore"), None).await, 200);
    assert_eq!(status(&app, &owner, Method::GET, &a_path, None).await, 200);
    assert_eq!(status(&app, &owner, Method::POST, &b_restore, None).await, 200);
    assert_eq!(status(&app, &owner, Method::POST, &b_restore, None).await, 404, "already restored");
    let bad_parent =
        call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(json!({"name": "X", "parent_id": "nope"}))).await;
    let problem = assert_problem(bad_parent, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "parent_id");
    let unknown_parent = call(
        &app,
        &owner,
        Method::POST,
        "/api/v1/notebooks",
        Some(json!({"name": "X", "parent_id": uuid::Uuid::now_v7()})),
    )
    .await;
    assert_problem(unknown_parent, 404, "not_found").await;
    let share_unknown = call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Solo"}))).await;
    let solo: Value = share_unknown.json().await.unwrap();
    let share = call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/notebooks/{}/share", id(&solo)),
        Some(json!({"user_id": uuid::Uuid::now_v7(), "permission": "read"})),
    )
    .await;
    assert_problem(share, 422, "validation_failed").await;
    let share_self = call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/notebooks/{}/share", id(&solo)),
        Some(json!({"user_id": owner.id, "permission": "read"})),
    )
    .await;
    assert_problem(share_self, 409, "already_owner").await;
    let bad_permission = call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/notebooks/{}/share", id(&solo)),
        Some(json!({"user_id": owner.id, "permission": "god"})),
    )
    .await;
    assert_problem(bad_permission, 422, "validation_failed").await;
    assert_eq!(
        StatusCode::OK,
        call(&app, &owner, Method::GET, "/api/v1/invitations?status=declined", None).await.status()
    );
    app.shutdown().await;
}

#[tokio::test]
async fn readers_can_duplicate_into_their_own_tree() {
    let app = TestApp::spawn().await;
    let owner = actor(&app, "dup-owner", vec![Role::User]).await;
    let reader = actor(&app, "dup-reader", vec![Role::User]).await;
    let stranger = actor(&app, "dup-stranger", vec![Role::User]).await;
    let root = create(&app, &owner, json!({"name": "Playbook", "tags": ["ops"]})).await;
    create(&app, &owner, json!({"name": "Runbooks", "parent_id": id(&root)})).await;
    let r = format!("/api/v1/notebooks/{}", id(&root));
    call(
        &app,
        &owner,
        Method::PUT,
        &format!("{r}/permissions"),
        Some(json!({"user_id": reader.id, "permission": "read"})),
    )
    .await;

    let response = call(&app, &reader, Method::POST, &format!("{r}/duplicate"), Some(json!({}))).await;
    assert_eq!(response.status(), 201);
    let copy: Value = response.json().await.unwrap();
    assert_eq!(copy["name"], "Playbook (copy)");
    assert_eq!(copy["owner_id"], reader.id.as_str());
    assert_eq!(copy["tags"], json!(["ops"]));
    let copy_path = format!("/api/v1/notebooks/{}", id(&copy));
    assert_eq!(names(&app, &reader, &format!("{copy_path}/children")).await, ["Runbooks"]);
    assert_eq!(status(&app, &owner, Method::GET, &copy_path, None).await, 404, "the copy is the reader's own");
    assert_eq!(status(&app, &reader, Method::PUT, &copy_path, Some(json!({"name": "Mine"}))).await, 200);
    assert_eq!(status(&app, &stranger, Method::POST, &format!("{r}/duplicate"), Some(json!({}))).await, 404);
    let into_theirs = json!({"name": "Sneaky", "parent_id": id(&root)});
    assert_eq!(status(&app, &reader, Method::POST, &format!("{r}/duplicate"), Some(into_theirs)).await, 403);
    app.shutdown().await;
}

#[tokio::test]
async fn templates_start_new_notebooks() {
    let app = TestApp::spawn().await;
    let author = actor(&app, "template-author", vec![Role::User]).await;
    let user = actor(&app, "template-user", vec![Role::User]).await;
    let template = create(
        &app,
        &author,
        json!({"name": "Case file", "visibility": "public", "is_template": true, "tags": ["legal"]}),
    )
    .await;
    assert_eq!(template["is_template"], true);
    create(&app, &author, json!({"name": "Evidence", "parent_id": id(&template), "visibility": "public"})).await;
    create(&app, &author, json!({"name": "Not a template", "visibility": "public"})).await;
    let listed = names(&app, &user, "/api/v1/notebooks?scope=public&template=true&limit=100").await;
    assert!(listed.contains(&"Case file".to_owned()) && !listed.contains(&"Not a template".to_owned()));

    let response = call(
        &app,
        &user,
        Method::POST,
        "/api/v1/notebooks",
        Some(json!({"name": "Smith v. Jones", "template_id": id(&template)})),
    )
    .await;
    assert_eq!(response.status(), 201);
    let case: Value = response.json().await.unwrap();
    assert_eq!(case["name"], "Smith v. Jones");
    assert_eq!(case["is_template"], false);
    assert_eq!(case["tags"], json!(["legal"]));
    assert_eq!(case["owner_id"], user.id.as_str());
    assert_eq!(names(&app, &user, &format!("/api/v1/notebooks/{}/children", id(&case))).await, ["Evidence"]);

    let plain = create(&app, &user, json!({"name": "Plain"})).await;
    let not_template =
        call(&app, &user, Method::POST, "/api/v1/notebooks", Some(json!({"name": "X", "template_id": id(&plain)})))
            .await;
    assert_problem(not_template, 422, "validation_failed").await;
    let mixed = call(
        &app,
        &user,
        Method::POST,
        "/api/v1/notebooks",
        Some(json!({"name": "X", "template_id": id(&template), "tags": ["x"]})),
    )
    .await;
    assert_problem(mixed, 422, "validation_failed").await;
    let promote = call(
        &app,
        &user,
        Method::PUT,
        &format!("/api/v1/notebooks/{}", id(&template)),
        Some(json!({"is_template": false})),
    )
    .await;
    assert_problem(promote, 403, "forbidden").await;
    app.shutdown().await;
}

async fn bulk(app: &TestApp, who: &Actor, body: Value) -> reqwest::Response {
    call(app, who, Method::POST, "/api/v1/notebooks/bulk", Some(body)).await
}

#[tokio::test]
async fn bulk_requests_are_all_or_nothing() {
    let app = TestApp::spawn().await;
    let owner = actor(&app, "bulk-owner", vec![Role::User]).await;
    let writer = actor(&app, "bulk-writer", vec![Role::User]).await;
    let a = create(&app, &owner, json!({"name": "A"})).await;
    let b = create(&app, &owner, json!({"name": "B"})).await;
    let theirs = create(&app, &writer, json!({"name": "Theirs"})).await;
    call(
        &app,
        &owner,
        Method::PUT,
        &format!("/api/v1/notebooks/{}/permissions", id(&a)),
        Some(json!({"user_id": writer.id, "permission": "write"})),
    )
    .await;

    let response = bulk(&app, &owner, json!({"ids": [id(&a), id(&b)], "action": "tag", "tags": ["q4"]})).await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert!(page["items"].as_array().unwrap().iter().all(|n| n["tags"] == json!(["q4"])));
    // The writer may archive A but not B: nothing changes.
    assert_problem(bulk(&app, &writer, json!({"ids": [id(&a), id(&b)], "action": "archive"})).await, 404, "not_found")
        .await;
    let a_now: Value =
        call(&app, &owner, Method::GET, &format!("/api/v1/notebooks/{}", id(&a)), None).await.json().await.unwrap();
    assert_eq!(a_now["status"], "active");
    // Moving needs admin access to each notebook.
    assert_problem(
        bulk(&app, &writer, json!({"ids": [id(&a), id(&theirs)], "action": "move", "parent_id": null})).await,
        403,
        "forbidden",
    )
    .await;
    let moved = bulk(&app, &owner, json!({"ids": [id(&b)], "action": "move", "parent_id": id(&a)})).await;
    assert_eq!(moved.status(), 200);
    assert_problem(bulk(&app, &owner, json!({"ids": [id(&a)], "action": "delete"})).await, 409, "has_children").await;
    let invalid = bulk(&app, &owner, json!({"ids": [id(&a), id(&a)], "action": "explode"})).await;
    let problem = assert_problem(invalid, 422, "validation_failed").await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);
    assert_eq!(
        status(
            &app,
            &owner,
            Method::POST,
            "/api/v1/notebooks/bulk",
            Some(json!({"ids": [id(&a)], "action": "delete", "cascade": true}))
        )
        .await,
        200
    );
    assert_eq!(status(&app, &owner, Method::GET, &format!("/api/v1/notebooks/{}", id(&b)), None).await, 404);
    app.shutdown().await;
}

/// Tests that run an outbox worker take turns: on a shared Neo4j, a second worker
/// would relay the other test's event to its own publisher before the first saw it.
static OUTBOX_WORKERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn sharing_publishes_an_event() {
    let _turn = OUTBOX_WORKERS.lock().await;
    let app = TestApp::spawn_with(|config| config.run_workers = true).await;
    let mut events = app.server.runtime.bus.subscribe();
    let owner = actor(&app, "event-owner", vec![Role::User]).await;
    let guest = actor(&app, "event-guest", vec![Role::User]).await;
    let notebook = create(&app, &owner, json!({"name": "Announced"})).await;
    let share = json!({"user_id": guest.id, "permission": "read"});
    assert_eq!(
        status(&app, &owner, Method::POST, &format!("/api/v1/notebooks/{}/share", id(&notebook)), Some(share)).await,
        201
    );
    // On a shared Neo4j the worker first drains what every earlier test left in the
    // outbox (oldest first).
    let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Ok(event) if event.key == id(&notebook) => return event,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(error) => panic!("the bus closed: {error}"),
            }
        }
    })
    .await;
    let Ok(event) = waited else {
        let attempt = app.server.runtime.events.dispatch(100).await;
        panic!("the worker published no event within 30 s; a dispatch now gives {attempt:?}");
    };
    assert_eq!(event.topic, "aether.notebooks.shared");
    assert_eq!(event.payload["user_id"], guest.id.as_str());
    assert_eq!(event.payload["granted_by"], owner.id.as_str());
    // The relay reports what it published and how long events waited, once the
    // batch that carried the event is marked published.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        // The published counter exists from the start (at zero); the lag histogram
        // appears with the first published batch.
        if metrics.contains("aether_outbox_relay_lag_seconds_bucket") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metrics.contains("aether_outbox_events_published_total"), "{metrics}");
    assert!(metrics.contains("aether_outbox_relay_lag_seconds_bucket{le=\"0.5\"}"), "{metrics}");
    app.shutdown().await;
}

/// With `events = "kafka"`, a share reaches Kafka's `aether.notebooks.shared` topic.
#[tokio::test]
async fn sharing_publishes_to_kafka() {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let Some(brokers) = common::service("AETHER_TEST_KAFKA_BROKERS", "to publish events to Kafka") else { return };
    let _turn = OUTBOX_WORKERS.lock().await;
    let app = TestApp::spawn_with(|config| {
        config.run_workers = true;
        config.events = aether::config::EventsKind::Kafka;
        config.kafka_brokers = brokers.clone();
    })
    .await;
    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["kafka"]["status"], "up", "{ready}");
    let owner = actor(&app, "kafka-owner", vec![Role::User]).await;
    let guest = actor(&app, "kafka-guest", vec![Role::User]).await;
    let notebook = create(&app, &owner, json!({"name": "To Kafka"})).await;
    let share = json!({"user_id": guest.id, "permission": "write"});
    assert_eq!(
        status(&app, &owner, Method::POST, &format!("/api/v1/notebooks/{}/share", id(&notebook)), Some(share)).await,
        201
    );

    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("aether-test-{}", uuid::Uuid::now_v7().simple()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["aether.notebooks.shared"]).unwrap();
    let payload = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            match consumer.recv().await {
                Ok(message) if message.key() == Some(id(&notebook).as_bytes()) => {
                    return serde_json::from_slice::<Value>(message.payload().unwrap()).unwrap();
                }
                Ok(_) => {}
                // The topic may not exist yet when the consumer joins; the worker's
                // first publish creates it.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    })
    .await
    .expect("the share reaches Kafka");
    // The record is a CloudEvents 1.0 event whose data is the domain payload.
    assert_eq!(payload["specversion"], "1.0");
    assert_eq!(payload["type"], "aether.notebooks.shared");
    assert_eq!(payload["subject"], id(&notebook));
    assert_eq!(payload["data"]["user_id"], guest.id.as_str());
    assert_eq!(payload["data"]["permission"], "write");
    app.shutdown().await;
}

#[tokio::test]
async fn changes_leave_activity_and_audit_records() {
    let app = TestApp::spawn().await;
    let owner = actor(&app, "recorder", vec![Role::User]).await;
    let reader = actor(&app, "record-reader", vec![Role::User]).await;
    let stranger = actor(&app, "record-stranger", vec![Role::User]).await;
    let auditor = actor(&app, "auditor", vec![Role::ComplianceOfficer]).await;
    let notebook = create(&app, &owner, json!({"name": "Audited"})).await;
    let path = format!("/api/v1/notebooks/{}", id(&notebook));
    call(&app, &owner, Method::PUT, &path, Some(json!({"name": "Audited 2", "tags": ["x"]}))).await;
    call(
        &app,
        &owner,
        Method::PUT,
        &format!("{path}/permissions"),
        Some(json!({"user_id": reader.id, "permission": "read"})),
    )
    .await;

    let activity: Value =
        call(&app, &reader, Method::GET, &format!("{path}/activity"), None).await.json().await.unwrap();
    let events: Vec<&str> =
        activity["items"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(events, ["permission_granted", "updated", "created"]);
    assert_eq!(activity["items"][1]["actor_id"], owner.id.as_str());
    assert_eq!(activity["items"][1]["details"]["fields"], json!(["name", "tags"]));
    assert_eq!(status(&app, &stranger, Method::GET, &format!("{path}/activity"), None).await, 404);

    assert_eq!(status(&app, &owner, Method::GET, "/api/v1/admin/audit", None).await, 403);
    let audit: Value =
        call(&app, &auditor, Method::GET, &format!("/api/v1/admin/audit?resource_id={}", id(&notebook)), None)
            .await
            .json()
            .await
            .unwrap();
    let entries = audit["items"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2]["action"], "create");
    assert_eq!(entries[2]["performed_by"], owner.id.as_str());
    assert_eq!(entries[2]["ip_address"], "127.0.0.1");
    assert!(entries[2]["user_agent"].is_string() || entries[2]["user_agent"].is_null());
    app.shutdown().await;
}

/// The authorization matrix over the operations not covered above: every actor
/// against a notebook it reaches directly (the root) and by inheritance (the child).
#[tokio::test]
async fn authorization_matrix_for_every_operation() {
    let app = TestApp::spawn().await;
    let Cast { owner, reader, writer, manager, invitee, revoked, stranger, viewer, admin } = cast(&app, "m-").await;
    let root = create(&app, &owner, json!({"name": "Root"})).await;
    let r = format!("/api/v1/notebooks/{}", id(&root));
    for (who, permission) in
        [(&reader, "read"), (&writer, "write"), (&manager, "admin"), (&revoked, "write"), (&viewer, "write")]
    {
        call(
            &app,
            &owner,
            Method::PUT,
            &format!("{r}/permissions"),
            Some(json!({"user_id": who.id, "permission": permission})),
        )
        .await;
    }
    call(
        &app,
        &owner,
        Method::POST,
        &format!("{r}/share"),
        Some(json!({"user_id": invitee.id, "permission": "admin"})),
    )
    .await;
    call(
        &app,
        &owner,
        Method::PUT,
        &format!("{r}/permissions"),
        Some(json!({"user_id": revoked.id, "permission": null})),
    )
    .await;

    // (actor, can read, can write, can administer)
    let matrix = [
        (&owner, true, true, true),
        (&reader, true, false, false),
        (&writer, true, true, false),
        (&manager, true, true, true),
        (&invitee, false, false, false),
        (&revoked, false, false, false),
        (&stranger, false, false, false),
        (&viewer, true, false, false),
        (&admin, true, true, true),
    ];
    for inherited in [false, true] {
        for (who, read, write, administer) in matrix {
            let target = if inherited {
                create(&app, &owner, json!({"name": "Child", "parent_id": id(&root)})).await
            } else {
                create(&app, &owner, json!({"name": "Direct", "visibility": "private"})).await
            };
            if !inherited {
                // A direct grant on this notebook, same permission as on the root.
                let level = if administer && who.id != owner.id && who.id != admin.id {
                    Some("admin")
                } else if write && who.id != owner.id && who.id != admin.id {
                    Some("write")
                } else if read && who.id != owner.id && who.id != admin.id && who.id != viewer.id {
                    Some("read")
                } else {
                    None
                };
                if let Some(level) = level {
                    let path = format!("/api/v1/notebooks/{}/permissions", id(&target));
                    call(&app, &owner, Method::PUT, &path, Some(json!({"user_id": who.id, "permission": level}))).await;
                }
                if who.id == viewer.id {
                    let path = format!("/api/v1/notebooks/{}/permissions", id(&target));
                    call(&app, &owner, Method::PUT, &path, Some(json!({"user_id": who.id, "permission": "write"})))
                        .await;
                }
            }
            let t = format!("/api/v1/notebooks/{}", id(&target));
            let denied = |can: bool, can_read: bool| {
                if can {
                    None
                } else if can_read {
                    Some(403)
                } else {
                    Some(404)
                }
            };
            let label = format!("inherited={inherited} actor={}", who.id);
            let expect = |got: u16, ok: u16, deny: Option<u16>, what: &str| {
                assert_eq!(got, deny.unwrap_or(ok), "{what} {label}");
            };
            expect(
                status(&app, who, Method::GET, &format!("{t}/activity"), None).await,
                200,
                denied(read, read),
                "activity",
            );
            expect(
                status(&app, who, Method::GET, &format!("{t}/access"), None).await,
                200,
                denied(read, read),
                "explain own access",
            );
            let bulk_archive = json!({"ids": [id(&target)], "action": "archive"});
            expect(
                status(&app, who, Method::POST, "/api/v1/notebooks/bulk", Some(bulk_archive)).await,
                200,
                denied(write, read),
                "bulk archive",
            );
            let dup = status(&app, who, Method::POST, &format!("{t}/duplicate"), Some(json!({}))).await;
            // Viewers read but may not create anything, copies included.
            let dup_expected = if who.id == viewer.id { Some(403) } else { denied(read, read) };
            expect(dup, 201, dup_expected, "duplicate");
            expect(
                status(&app, who, Method::GET, &format!("{t}/collaborators"), None).await,
                200,
                denied(administer, read),
                "collaborators",
            );
            expect(status(&app, who, Method::DELETE, &t, None).await, 204, denied(administer, read), "delete");
            let restore = status(&app, who, Method::POST, &format!("{t}/restore"), None).await;
            if administer {
                // Deleted above: the owner and global admins may restore; collaborators no longer see it.
                let restorer = who.id == owner.id || who.id == admin.id || (inherited && who.id == manager.id);
                assert_eq!(restore, if restorer { 200 } else { 404 }, "restore {label}");
            } else if who.id == viewer.id {
                // A viewer's role forbids every write, before the notebook is even looked at.
                assert_eq!(restore, 403, "restore by a viewer {label}");
            } else {
                assert_eq!(restore, 404, "restore of a live notebook {label}");
            }
        }
    }

    // A denial reads the same whether the notebook exists or not.
    let secret = create(&app, &owner, json!({"name": "Secret"})).await;
    let existing = call(&app, &stranger, Method::GET, &format!("/api/v1/notebooks/{}", id(&secret)), None).await;
    let missing =
        call(&app, &stranger, Method::GET, &format!("/api/v1/notebooks/{}", uuid::Uuid::now_v7()), None).await;
    let (existing, missing) =
        (assert_problem(existing, 404, "not_found").await, assert_problem(missing, 404, "not_found").await);
    assert_eq!(existing["detail"], missing["detail"]);
    assert!(!existing.to_string().contains("Secret"));
    app.shutdown().await;
}

/// Follows `next_cursor` from `path` (which takes `limit=2`) to the last page;
/// returns the pages' values of `field`.
async fn walk(app: &TestApp, who: &Actor, path: &str, field: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut url = path.to_owned();
    loop {
        let response = call(app, who, Method::GET, &url, None).await;
        assert_eq!(response.status(), 200, "{url}");
        let page: Value = response.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        pages.push(items.iter().map(|item| item[field].as_str().unwrap().to_owned()).collect());
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("{path}&cursor={cursor}"),
            None => return pages,
        }
        assert!(pages.len() < 10, "{path} does not end");
    }
}

#[tokio::test]
async fn collaborators_and_invitations_page_by_cursor() {
    let app = TestApp::spawn().await;
    let owner = actor(&app, "pager-owner", vec![Role::User]).await;
    let notebook = create(&app, &owner, json!({"name": "Crowded"})).await;
    let path = format!("/api/v1/notebooks/{}", id(&notebook));
    let mut guests = Vec::new();
    for i in 0..5 {
        let guest = actor(&app, &format!("pager-guest{i}"), vec![Role::User]).await;
        let body = json!({"user_id": guest.id, "permission": "read"});
        assert_eq!(status(&app, &owner, Method::POST, &format!("{path}/share"), Some(body)).await, 201);
        guests.push(guest);
    }

    // Five collaborators, two a page, in the order of their ids (creation).
    let pages = walk(&app, &owner, &format!("{path}/collaborators?limit=2"), "user_id").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let listed: Vec<String> = pages.concat();
    assert_eq!(listed, guests.iter().map(|guest| guest.id.clone()).collect::<Vec<_>>());

    // One guest invited to three notebooks: newest notebook first.
    let guest = &guests[0];
    let mut invited = vec![id(&notebook).to_owned()];
    for name in ["Second", "Third"] {
        let other = create(&app, &owner, json!({"name": name})).await;
        let body = json!({"user_id": guest.id, "permission": "write"});
        let share = format!("/api/v1/notebooks/{}/share", id(&other));
        assert_eq!(status(&app, &owner, Method::POST, &share, Some(body)).await, 201);
        invited.push(id(&other).to_owned());
    }
    invited.reverse();
    let pages = walk(&app, guest, "/api/v1/invitations?status=pending&limit=2", "notebook_id").await;
    assert_eq!(pages, [invited[..2].to_vec(), invited[2..].to_vec()]);

    // A cursor this API did not issue, and a limit out of bounds, are refused.
    let bad = call(&app, &owner, Method::GET, &format!("{path}/collaborators?cursor=nope"), None).await;
    assert_problem(bad, 400, "invalid_cursor").await;
    let over = call(&app, &owner, Method::GET, &format!("{path}/collaborators?limit=101"), None).await;
    assert_problem(over, 422, "validation_failed").await;
    app.shutdown().await;
}

/// Every search endpoint in the authorization matrix: each actor finds a notebook
/// (reached directly or through its parent) exactly when it may read it, and a
/// search or a related-items request naming it is not found otherwise; nothing of it
/// shows in counts, suggestions or reasons.
#[tokio::test]
async fn search_authorization_matrix() {
    let app = TestApp::spawn().await;
    let Cast { owner, reader, writer, manager, invitee, revoked, stranger, viewer, admin } = cast(&app, "q-").await;
    let word = format!("kw{}", &uuid::Uuid::now_v7().simple().to_string()[16..]);
    let tag = format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let root = create(&app, &owner, json!({"name": format!("Root {word}"), "tags": [tag]})).await;
    let child =
        create(&app, &owner, json!({"name": format!("Child {word}"), "parent_id": id(&root), "tags": [tag]})).await;
    let r = format!("/api/v1/notebooks/{}", id(&root));
    for (who, permission) in
        [(&reader, "read"), (&writer, "write"), (&manager, "admin"), (&revoked, "read"), (&viewer, "read")]
    {
        let grant = json!({"user_id": who.id, "permission": permission});
        assert_eq!(status(&app, &owner, Method::PUT, &format!("{r}/permissions"), Some(grant)).await, 200);
    }
    let invitation = json!({"user_id": invitee.id, "permission": "read"});
    assert_eq!(status(&app, &owner, Method::POST, &format!("{r}/share"), Some(invitation)).await, 201);
    let revoke = json!({"user_id": revoked.id, "permission": null});
    assert_eq!(status(&app, &owner, Method::PUT, &format!("{r}/permissions"), Some(revoke)).await, 204);
    // The index takes the notebooks up (at once on SQLite, within moments on Neo4j).
    let by_name = format!("/api/v1/search/notebooks?q={word}");
    for _ in 0..100 {
        if names_found(&app, &owner, &by_name).await.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let matrix = [
        (&owner, true),
        (&reader, true),
        (&writer, true),
        (&manager, true),
        (&invitee, false),
        (&revoked, false),
        (&stranger, false),
        (&viewer, true),
        (&admin, true),
    ];
    for (who, read) in matrix {
        let label = format!("actor={}", who.id);
        let expected: Vec<&str> = if read { vec![id(&child), id(&root)] } else { vec![] };
        let mut found = names_found(&app, who, &by_name).await;
        found.sort();
        let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
        expected.sort();
        assert_eq!(found, expected, "notebook search {label}");

        let overview: Value =
            call(&app, who, Method::GET, &format!("/api/v1/search?q={word}"), None).await.json().await.unwrap();
        assert_eq!(overview["notebooks"].as_array().unwrap().len(), if read { 2 } else { 0 }, "overview {label}");

        let suggestions: Value =
            call(&app, who, Method::GET, &format!("/api/v1/search/suggestions?q=root%20{word}"), None)
                .await
                .json()
                .await
                .unwrap();
        let suggested = suggestions["items"].as_array().unwrap().iter().any(|s| s["id"] == root["id"]);
        assert_eq!(suggested, read, "suggestions {label}");

        // Naming a notebook: its readers search within it and get what is related
        // to it; anyone else is told it does not exist.
        for target in [&root, &child] {
            let n = id(target);
            let within = format!("/api/v1/search/documents?q={word}&notebook_id={n}");
            let related = format!("/api/v1/search/related?notebook_id={n}");
            let semantic = json!({"query": word, "notebook_id": n});
            if read {
                assert_eq!(status(&app, who, Method::GET, &within, None).await, 200, "within {label}");
                let items: Value = call(&app, who, Method::GET, &related, None).await.json().await.unwrap();
                let other = if n == id(&root) { id(&child) } else { id(&root) };
                let item = items["items"].as_array().unwrap().iter().find(|i| i["id"] == other).cloned();
                let item = item.unwrap_or_else(|| panic!("related {label}: {items}"));
                let kinds: Vec<&str> =
                    item["reasons"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
                // Strongest first; people with access to both may add a third.
                assert_eq!(kinds[..2], ["nearby_notebook", "shared_tags"], "related {label}");
                // Without a model, semantic search says so, once the notebook is known readable.
                let response = call(&app, who, Method::POST, "/api/v1/search/semantic", Some(semantic)).await;
                assert_problem(response, 503, "semantic_unavailable").await;
            } else {
                assert_problem(call(&app, who, Method::GET, &within, None).await, 404, "not_found").await;
                assert_problem(call(&app, who, Method::GET, &related, None).await, 404, "not_found").await;
                let response = call(&app, who, Method::POST, "/api/v1/search/semantic", Some(semantic)).await;
                assert_problem(response, 404, "not_found").await;
            }
        }
    }

    // What a stranger's own notebook is related to never names the owner's.
    let own = create(&app, &stranger, json!({"name": format!("Own {word}"), "tags": [tag]})).await;
    let related: Value =
        call(&app, &stranger, Method::GET, &format!("/api/v1/search/related?notebook_id={}", id(&own)), None)
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(related["items"], json!([]), "shares a tag, but nothing of it is readable");
    let for_admin: Value =
        call(&app, &admin, Method::GET, &format!("/api/v1/search/related?notebook_id={}", id(&own)), None)
            .await
            .json()
            .await
            .unwrap();
    let tagged: Vec<&Value> = for_admin["items"].as_array().unwrap().iter().collect();
    assert!(tagged.iter().any(|i| i["id"] == root["id"]), "an administrator reads every notebook: {for_admin}");
    app.shutdown().await;
}

/// The ids of the notebooks a notebook search finds.
async fn names_found(app: &TestApp, who: &Actor, path: &str) -> Vec<String> {
    let page: Value = call(app, who, Method::GET, path, None).await.json().await.unwrap();
    page["items"].as_array().unwrap().iter().map(|i| i["notebook"]["id"].as_str().unwrap().to_owned()).collect()
}
