//! Search over HTTP (issue 15): an uploaded document is found by what readers may
//! see of it, by exactly the callers who may read it, with snippets, filters, facets
//! and cursors; every search endpoint in the authorization matrix. Runs on the test
//! store (SQLite, or Neo4j under scripts/test).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aether_domain::user::Role;
use common::{TestApp, assert_problem, call, json_of, metric};
use reqwest::Method;
use serde_json::{Value, json};

async fn token_and_id(app: &TestApp, prefix: &str, roles: Vec<Role>) -> (String, String) {
    let (username, password) = app.create_user(prefix, roles).await;
    let tokens: Value = app.password_grant(&username, &password).await.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let me = json_of(call(app, &token, Method::GET, "/api/v1/users/me", None).await, 200).await;
    (token, me["id"].as_str().unwrap().to_owned())
}

async fn upload_text(app: &TestApp, token: &str, notebook: &str, name: &str, text: &str) {
    let form = reqwest::multipart::Form::new()
        .text("notebook_id", notebook.to_owned())
        .part("file", reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name.to_owned()));
    let response =
        app.client.post(app.url("/api/v1/documents/upload")).bearer_auth(token).multipart(form).send().await.unwrap();
    let job = json_of(response, 202).await;
    let url = job["status_url"].as_str().unwrap().to_owned();
    for _ in 0..600 {
        let status = json_of(call(app, token, Method::GET, &url, None).await, 200).await;
        if status["status"] == "completed" {
            return;
        }
        assert!(!["failed", "cancelled"].contains(&status["status"].as_str().unwrap()), "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the upload did not finish");
}

/// One server with workers at a time: on a shared Neo4j, one server's workers would
/// claim the other's jobs, whose files are in the other's directory.
static WORKERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server whose workers process uploads.
async fn spawn_with_workers() -> TestApp {
    TestApp::spawn_with(|config| {
        config.run_workers = true;
        config.document_workers = 2;
    })
    .await
}

fn keyword() -> String {
    format!("kw{}", &uuid::Uuid::now_v7().simple().to_string()[16..])
}

async fn search(app: &TestApp, token: &str, path: &str) -> Value {
    json_of(call(app, token, Method::GET, path, None).await, 200).await
}

/// Searches until `count` documents are found (the index catching up on Neo4j).
async fn wait_for(app: &TestApp, token: &str, path: &str, count: usize) -> Value {
    for _ in 0..100 {
        let found = search(app, token, path).await;
        if found["items"].as_array().unwrap().len() == count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never found {count}");
}

fn highlighted(snippet: &Value) -> Vec<String> {
    let chars: Vec<char> = snippet["text"].as_str().unwrap().chars().collect();
    snippet["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let start = h["start"].as_u64().unwrap() as usize;
            chars[start..start + h["length"].as_u64().unwrap() as usize].iter().collect()
        })
        .collect()
}

#[tokio::test]
async fn documents_are_searched_by_what_their_readers_may_read() {
    let _serial = WORKERS.lock().await;
    let app = spawn_with_workers().await;
    let (owner, _) = token_and_id(&app, "s-owner", vec![Role::User]).await;
    let (reader, reader_id) = token_and_id(&app, "s-reader", vec![Role::User]).await;
    let (stranger, _) = token_and_id(&app, "s-stranger", vec![Role::User]).await;
    let (auditor, _) = token_and_id(&app, "s-auditor", vec![Role::ComplianceOfficer]).await;

    let word = keyword();
    let body = json!({"name": format!("Ledger {word}"), "compliance_settings": {"pii_detection": true, "redaction_mode": "mask"}});
    let notebook = json_of(call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(body)).await, 201).await;
    let nb = notebook["id"].as_str().unwrap().to_owned();
    let grant = json!({"user_id": reader_id, "permission": "read"});
    json_of(call(&app, &owner, Method::PUT, &format!("/api/v1/notebooks/{nb}/permissions"), Some(grant)).await, 200)
        .await;
    let text = format!("Quarterly {word} revenue grew.\nWrite to jane.doe@example.com for the ledger.\n");
    upload_text(&app, &owner, &nb, "ledger.txt", &text).await;

    let path = format!("/api/v1/search/documents?q={word}");
    let found = wait_for(&app, &owner, &path, 1).await;
    let hit = &found["items"][0];
    assert_eq!(hit["document"]["notebook_id"], nb.as_str());
    assert_eq!(hit["document"]["original_filename"], "ledger.txt");
    assert_eq!(hit["match"]["chunk"], 1);
    assert_eq!(hit["match"]["page"], 1);
    assert_eq!(hit["match"]["offset"], 0);
    assert_eq!(highlighted(&hit["match"]["snippet"]), vec![word.clone()]);
    assert!(hit["score"].as_f64().unwrap() > 0.0);
    assert_eq!(found["facets"]["content_type"][0]["count"], 1);
    assert!(found["next_cursor"].is_null());

    // Readers, the notebook's and a role's, find it; a stranger finds nothing, and
    // its facets count nothing.
    for token in [&reader, &auditor] {
        assert_eq!(search(&app, token, &path).await["items"].as_array().unwrap().len(), 1);
    }
    let hidden = search(&app, &stranger, &path).await;
    assert_eq!(hidden["items"], json!([]));
    assert_eq!(hidden["facets"], json!({"content_type": [], "status": [], "notebook": []}));

    // The e-mail address was redacted: nobody finds the document by it, the owner included.
    let snippet_text = hit["match"]["snippet"]["text"].as_str().unwrap();
    assert!(!snippet_text.contains("jane.doe"), "{snippet_text}");
    for token in [&owner, &reader, &auditor] {
        let by_email = search(&app, token, "/api/v1/search/documents?q=%22jane%20doe%22").await;
        assert!(by_email["items"].as_array().unwrap().iter().all(|h| h["document"]["notebook_id"] != nb.as_str()));
    }

    // Within the notebook: its readers may filter on it; anyone else is told it does not exist.
    let within = format!("{path}&notebook_id={nb}");
    assert_eq!(search(&app, &reader, &within).await["items"].as_array().unwrap().len(), 1);
    assert_problem(call(&app, &stranger, Method::GET, &within, None).await, 404, "not_found").await;
    let unknown = format!("{path}&notebook_id={}", uuid::Uuid::now_v7());
    assert_problem(call(&app, &owner, Method::GET, &unknown, None).await, 404, "not_found").await;

    // Notebooks by name, for their readers only.
    let notebooks = format!("/api/v1/search/notebooks?q={word}");
    let found = search(&app, &reader, &notebooks).await;
    assert_eq!(found["items"][0]["notebook"]["id"], nb.as_str());
    assert_eq!(highlighted(&found["items"][0]["snippet"]), vec![word.clone()]);
    assert_eq!(search(&app, &stranger, &notebooks).await["items"], json!([]));

    // Everything at once, or the kinds asked for.
    let overview = search(&app, &reader, &format!("/api/v1/search?q={word}")).await;
    assert_eq!(overview["documents"].as_array().unwrap().len(), 1);
    assert_eq!(overview["notebooks"].as_array().unwrap().len(), 1);
    assert!(overview["users"].is_array());
    let only = search(&app, &stranger, &format!("/api/v1/search?q={word}&type=notebooks")).await;
    assert_eq!(only, json!({"documents": null, "notebooks": [], "users": null}));

    // People: the owner, whom the reader shares a notebook with, is marked so.
    let owner_me = json_of(call(&app, &owner, Method::GET, "/api/v1/users/me", None).await, 200).await;
    let owner_word = owner_me["username"].as_str().unwrap().rsplit('-').next().unwrap().to_owned();
    let mut people = Value::Null;
    for _ in 0..100 {
        people = search(&app, &reader, &format!("/api/v1/search/users?q={owner_word}")).await;
        if !people["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(people["items"][0]["user"]["id"], owner_me["id"]);
    assert_eq!(people["items"][0]["collaborates"], true);
    assert!(people["items"][0]["user"].get("email").is_none());
    let by_stranger = search(&app, &stranger, &format!("/api/v1/search/users?q={owner_word}")).await;
    assert_eq!(by_stranger["items"][0]["collaborates"], false);

    // A revoked grant hides the results at once.
    let revoke = json!({"user_id": reader_id, "permission": null});
    let revoked = call(&app, &owner, Method::PUT, &format!("/api/v1/notebooks/{nb}/permissions"), Some(revoke)).await;
    assert_eq!(revoked.status(), 204);
    assert_eq!(search(&app, &reader, &path).await["items"], json!([]));
    assert_eq!(search(&app, &reader, &notebooks).await["items"], json!([]));

    assert!(metric(&app, "aether_search_queries_total", &["kind=\"documents\""]).await >= 1.0);
    app.shutdown().await;
}

#[tokio::test]
async fn search_requests_are_validated() {
    let app = TestApp::spawn().await;
    let (token, _) = token_and_id(&app, "s-validate", vec![Role::User]).await;
    for (query, field) in [
        ("", "q"),
        ("q=", "q"),
        ("q=ok&limit=0", "limit"),
        ("q=ok&limit=x", "limit"),
        ("q=ok&cursor=abc", "cursor"),
        ("q=ok&notebook_id=x", "notebook_id"),
        ("q=ok&status=deleted", "status"),
        ("q=ok&content_type=pdf", "content_type"),
        ("q=ok&created_after=yesterday", "created_after"),
        ("q=ok&mode=vector", "mode"),
    ] {
        let response = call(&app, &token, Method::GET, &format!("/api/v1/search/documents?{query}"), None).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
    // Valid requests that can find nothing are answered, empty: text without a word,
    // an empty time range, a tag nothing can carry, a cursor of another ranking.
    for query in [
        "q=%20",
        "q=%22%22",
        "q=%13",
        "q=ok&created_after=2026-01-02T00:00:00Z&created_before=2026-01-01T00:00:00Z",
        &format!("q=ok&tags={}", "t".repeat(65)),
        "q=ok&mode=text&cursor=o20",
        &format!("q=ok&mode=hybrid&cursor={}", "0".repeat(48)),
    ] {
        let found = search(&app, &token, &format!("/api/v1/search/documents?{query}")).await;
        assert_eq!(found["items"], json!([]), "{query}");
        assert!(found["next_cursor"].is_null(), "{query}");
    }
    let long = "a".repeat(257);
    let response = call(&app, &token, Method::GET, &format!("/api/v1/search/notebooks?q={long}"), None).await;
    assert_problem(response, 422, "validation_failed").await;
    let response = call(&app, &token, Method::GET, "/api/v1/search/notebooks?q=ok&status=completed", None).await;
    assert_problem(response, 422, "validation_failed").await;
    let anonymous = app.client.get(app.url("/api/v1/search/documents?q=ok")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn results_page_by_cursor() {
    let _serial = WORKERS.lock().await;
    let app = spawn_with_workers().await;
    let (token, _) = token_and_id(&app, "s-pager", vec![Role::User]).await;
    let notebook =
        json_of(call(&app, &token, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Pages"}))).await, 201).await;
    let nb = notebook["id"].as_str().unwrap().to_owned();
    let word = keyword();
    for n in 0..5 {
        upload_text(
            &app,
            &token,
            &nb,
            &format!("p{n}.txt"),
            &format!("{} filler {n}", vec![word.as_str(); n % 3 + 1].join(" ")),
        )
        .await;
    }
    wait_for(&app, &token, &format!("/api/v1/search/documents?q={word}&limit=100"), 5).await;
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/search/documents?q={word}&limit=2");
    loop {
        let page = search(&app, &token, &path).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|item| item["document"]["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let first_page = !path.contains("cursor=");
                assert_eq!(page["facets"].is_object(), first_page, "facets on the first page only");
                path = format!("/api/v1/search/documents?q={word}&limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");
    app.shutdown().await;
}

/// The paraphrase tests' corpus: an owner's notebook holding the minutes (found by
/// a query with no word in common) and a recipe; then the semantic search for the
/// paraphrase within it, once both documents have vectors. Owner, notebook, results.
async fn minutes_found_by_paraphrase(app: &TestApp, owner: &str, name: &str) -> (String, Value) {
    let notebook =
        json_of(call(app, owner, Method::POST, "/api/v1/notebooks", Some(json!({"name": name}))).await, 201).await;
    let nb = notebook["id"].as_str().unwrap().to_owned();
    upload_text(app, owner, &nb, "minutes.txt", "The committee approved the annual budget for road maintenance.").await;
    upload_text(app, owner, &nb, "recipe.txt", "Whisk the eggs with flour and sugar, then bake for twenty minutes.")
        .await;
    let semantic = json!({"query": PARAPHRASE, "notebook_id": nb});
    let mut found = Value::Null;
    for _ in 0..600 {
        found =
            json_of(call(app, owner, Method::POST, "/api/v1/search/semantic", Some(semantic.clone())).await, 200).await;
        if found["items"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found["mode"], "semantic");
    assert_eq!(found["items"][0]["document"]["original_filename"], "minutes.txt", "{found}");
    (nb, found)
}

/// No word of it is in the minutes.
const PARAPHRASE: &str = "council agreed yearly spending street repairs";

#[tokio::test]
async fn a_paraphrase_is_found_by_meaning_and_not_by_words() {
    let _serial = WORKERS.lock().await;
    let mut models = false;
    let app = TestApp::spawn_with(|config| {
        config.run_workers = true;
        config.document_workers = 2;
        models = common::with_models(config);
    })
    .await;
    if !models {
        return app.shutdown().await;
    }
    let (owner, _) = token_and_id(&app, "s-meaning", vec![Role::User]).await;
    let (stranger, _) = token_and_id(&app, "s-meaning-stranger", vec![Role::User]).await;
    let (nb, found) = minutes_found_by_paraphrase(&app, &owner, "Council").await;
    let query = PARAPHRASE;
    let semantic = json!({"query": query, "notebook_id": nb});
    assert!(found["items"][0]["score"].as_f64().unwrap() > found["items"][1]["score"].as_f64().unwrap());

    let words = format!("/api/v1/search/documents?mode=text&q={}", query.replace(' ', "%20"));
    assert_eq!(search(&app, &owner, &words).await["items"], json!([]), "no word in common");
    let hybrid = search(&app, &owner, &format!("/api/v1/search/documents?q={}", query.replace(' ', "%20"))).await;
    assert_eq!(hybrid["mode"], "hybrid");
    assert_eq!(hybrid["items"][0]["document"]["original_filename"], "minutes.txt");

    // Related to the minutes: a document elsewhere alike in meaning, with why; the
    // recipe only for sharing its notebook. A stranger is told it does not exist.
    let minutes = found["items"][0]["document"]["id"].as_str().unwrap().to_owned();
    let streets =
        json_of(call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Works"}))).await, 201).await;
    let streets = streets["id"].as_str().unwrap().to_owned();
    upload_text(&app, &owner, &streets, "streets.txt", "The town council will pay to fix damaged roads this year.")
        .await;
    let related_path = format!("/api/v1/search/related?document_id={minutes}");
    let mut related = Value::Null;
    for _ in 0..600 {
        related = search(&app, &owner, &related_path).await;
        let items = related["items"].as_array().unwrap();
        if items.iter().any(|item| item["title"] == "streets.txt") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let items = related["items"].as_array().unwrap();
    let item = |title: &str| items.iter().find(|item| item["title"] == title).cloned().unwrap_or(Value::Null);
    let street_item = item("streets.txt");
    assert_eq!(street_item["kind"], "document", "{related}");
    assert_eq!(street_item["notebook_id"], streets.as_str());
    assert_eq!(street_item["reasons"][0]["kind"], "similar_content", "{related}");
    assert!(street_item["reasons"][0]["similarity"].as_f64().unwrap() >= 0.35);
    let recipe = item("recipe.txt");
    let recipe_reasons: Vec<&str> =
        recipe["reasons"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(recipe_reasons, vec!["same_notebook"], "{related}");
    assert_eq!(street_item["reasons"].as_array().unwrap().len(), 1, "nothing else relates them: {related}");
    assert!(street_item["score"].as_f64().unwrap() > recipe["score"].as_f64().unwrap());
    assert_problem(call(&app, &stranger, Method::GET, &related_path, None).await, 404, "not_found").await;
    // A notebook's heading is compared with documents elsewhere.
    let by_notebook = search(&app, &owner, &format!("/api/v1/search/related?notebook_id={streets}")).await;
    assert!(by_notebook["items"].as_array().unwrap().iter().all(|item| item["notebook_id"] != streets.as_str()));

    // Meaning does not reach past permissions.
    let elsewhere = json!({"query": query});
    let hidden =
        json_of(call(&app, &stranger, Method::POST, "/api/v1/search/semantic", Some(elsewhere)).await, 200).await;
    assert!(hidden["items"].as_array().unwrap().iter().all(|h| h["document"]["notebook_id"] != nb.as_str()));
    let within =
        json_of(call(&app, &stranger, Method::POST, "/api/v1/search/semantic", Some(semantic)).await, 404).await;
    assert_eq!(within["code"], "not_found");
    assert!(metric(&app, "aether_chunks_embedded_total", &[]).await >= 6.0, "three headings and three bodies");
    app.shutdown().await;
}

#[tokio::test]
async fn semantic_search_without_a_model_says_so() {
    let app = TestApp::spawn().await;
    let (token, _) = token_and_id(&app, "s-nomodel", vec![Role::User]).await;
    let response =
        call(&app, &token, Method::POST, "/api/v1/search/semantic", Some(json!({"query": "anything"}))).await;
    assert_problem(response, 503, "semantic_unavailable").await;
    let hybrid = search(&app, &token, "/api/v1/search/documents?q=anything").await;
    assert_eq!(hybrid["mode"], "text", "hybrid falls back to words");
    let response = call(&app, &token, Method::GET, "/api/v1/search/documents?q=x&mode=semantic", None).await;
    assert_problem(response, 503, "semantic_unavailable").await;
    app.shutdown().await;
}

#[tokio::test]
async fn history_suggestions_and_analytics() {
    let app = TestApp::spawn().await;
    let (owner, _) = token_and_id(&app, "s-history", vec![Role::User]).await;
    let (other, _) = token_and_id(&app, "s-history-other", vec![Role::User]).await;
    let (admin, _) = token_and_id(&app, "s-history-admin", vec![Role::Admin, Role::User]).await;
    let word = keyword();
    let notebook = json!({"name": format!("{word} planning"), "tags": [format!("{word}tag")]});
    json_of(call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(notebook)).await, 201).await;
    // Until the index has it (moments on Neo4j), asked by the administrator, whose
    // history is their own.
    wait_for(&app, &admin, &format!("/api/v1/search/notebooks?q={word}"), 1).await;
    search(&app, &owner, &format!("/api/v1/search/notebooks?q={word}")).await;
    search(&app, &owner, &format!("/api/v1/search/documents?q={word}%20nowhere")).await;
    search(&app, &owner, &format!("/api/v1/search?q={word}")).await;

    // Searches are recorded in the background.
    let mut history = Value::Null;
    for _ in 0..100 {
        history = search(&app, &owner, "/api/v1/search/history").await;
        if history["items"].as_array().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{history}");
    assert_eq!(items[0]["target"], "everything", "newest first, the search across kinds recorded once");
    assert_eq!(items[1]["query_text"], format!("{word} nowhere"));
    assert_eq!((items[1]["target"].as_str(), items[1]["results_count"].as_u64()), (Some("documents"), Some(0)));
    assert_eq!((items[2]["target"].as_str(), items[2]["results_count"].as_u64()), (Some("notebooks"), Some(1)));
    assert_eq!(search(&app, &other, "/api/v1/search/history").await["items"], json!([]), "only one's own");

    // Suggestions: the owner's own queries first, then the notebook's name and tag.
    let prefix = &word[..6];
    let suggestions = search(&app, &owner, &format!("/api/v1/search/suggestions?q={prefix}")).await;
    let kinds: Vec<(String, String)> = suggestions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap().to_owned(), s["text"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(kinds[0].0, "query", "{kinds:?}");
    assert!(kinds.contains(&("notebook".to_owned(), format!("{word} planning"))), "{kinds:?}");
    assert!(kinds.contains(&("tag".to_owned(), format!("{word}tag"))), "{kinds:?}");
    let others = search(&app, &other, &format!("/api/v1/search/suggestions?q={prefix}")).await;
    assert_eq!(others["items"], json!([]), "nobody else's queries, notebooks or tags");

    // Analytics are for administrators.
    let analytics = "/api/v1/admin/search/analytics?limit=100";
    assert_problem(call(&app, &owner, Method::GET, analytics, None).await, 403, "forbidden").await;
    let figures = search(&app, &admin, analytics).await;
    assert!(figures["searches"].as_u64().unwrap() >= 3);
    let zero = figures["zero_result_queries"].as_array().unwrap();
    assert!(zero.iter().any(|q| q["query"] == format!("{word} nowhere")), "{figures}");

    // Forgetting: one search, then the rest.
    let first = items[2]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/search/history/{first}");
    assert_eq!(call(&app, &other, Method::DELETE, &path, None).await.status(), 404, "not theirs");
    assert_eq!(call(&app, &owner, Method::DELETE, &path, None).await.status(), 204);
    assert_eq!(call(&app, &owner, Method::DELETE, &path, None).await.status(), 404);
    assert_eq!(search(&app, &owner, "/api/v1/search/history").await["items"].as_array().unwrap().len(), 2);
    assert_eq!(call(&app, &owner, Method::DELETE, "/api/v1/search/history", None).await.status(), 204);
    assert_eq!(search(&app, &owner, "/api/v1/search/history").await["items"], json!([]));

    assert_eq!(search(&app, &owner, "/api/v1/search/communities?q=anything").await, json!({"items": []}));
    assert_problem(call(&app, &owner, Method::GET, "/api/v1/search/communities", None).await, 422, "validation_failed")
        .await;
    app.shutdown().await;
}

/// Search results are cached, and every change a search sees is seen at once: a new
/// notebook, a renamed document, a grant revoked (the first test), each after the
/// same search was answered from the cache.
#[tokio::test]
async fn cached_results_follow_every_change() {
    let _serial = WORKERS.lock().await;
    let app = spawn_with_workers().await;
    let (owner, _) = token_and_id(&app, "s-cache", vec![Role::User]).await;
    let word = keyword();
    let create = |name: String| {
        let (app, owner) = (&app, &owner);
        async move {
            let body = json!({"name": name});
            json_of(call(app, owner, Method::POST, "/api/v1/notebooks", Some(body)).await, 201).await
        }
    };
    let atlas = create(format!("Atlas {word}")).await;
    let notebooks = format!("/api/v1/search/notebooks?q={word}");
    wait_for(&app, &owner, &notebooks, 1).await;
    // The same search again is answered from the cache (on Neo4j once the
    // generation has settled, its index having caught up).
    let before = metric(&app, "aether_cache_requests_total", &["namespace=\"search\"", "outcome=\"hit\""]).await;
    let mut after = before;
    for _ in 0..50 {
        assert_eq!(search(&app, &owner, &notebooks).await["items"].as_array().unwrap().len(), 1);
        after = metric(&app, "aether_cache_requests_total", &["namespace=\"search\"", "outcome=\"hit\""]).await;
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(after > before, "a repeated search is a cache hit");

    // A new notebook is found by the very next search.
    create(format!("Globe {word}")).await;
    let found = seen_at_once(&app, &owner, &notebooks, 2).await;
    assert!(found["items"].as_array().unwrap().iter().any(|item| item["notebook"]["id"] == atlas["id"]));

    // A renamed document: found by its new name, no longer by its old one.
    let nb = atlas["id"].as_str().unwrap().to_owned();
    upload_text(&app, &owner, &nb, &format!("old{word}.txt"), "cached body").await;
    let old_name = format!("/api/v1/search/documents?mode=text&q=old{word}");
    let found = wait_for(&app, &owner, &old_name, 1).await;
    let document = found["items"][0]["document"]["id"].as_str().unwrap().to_owned();
    // Cached now (SQLite), or soon (Neo4j, once settled): the rename must pass it.
    search(&app, &owner, &old_name).await;
    let rename = json!({"original_filename": format!("new{word}.txt")});
    json_of(call(&app, &owner, Method::PUT, &format!("/api/v1/documents/{document}"), Some(rename)).await, 200).await;
    seen_at_once(&app, &owner, &format!("/api/v1/search/documents?mode=text&q=new{word}"), 1).await;
    seen_at_once(&app, &owner, &old_name, 0).await;
    app.shutdown().await;
}

/// The search's results once they hold `count` items: at the first try on SQLite,
/// whose index is written in the change's own transaction (so a stale cached result
/// would show); within moments on Neo4j, whose index takes a commit up shortly after.
async fn seen_at_once(app: &TestApp, token: &str, path: &str, count: usize) -> Value {
    if common::store_kind() == aether::config::StoreKind::Sqlite {
        let found = search(app, token, path).await;
        assert_eq!(found["items"].as_array().unwrap().len(), count, "{path}: {found}");
        return found;
    }
    wait_for(app, token, path, count).await
}

/// A double of an OpenAI-compatible `/v1/embeddings` service (OpenAI's published
/// contract): 64 dimensions, one per concept, so that synonyms share a direction and
/// a paraphrase is near its original without a word in common; other words spread
/// over the remaining dimensions. Checks the key and counts the texts it embeds.
async fn embeddings_double(embedded: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> std::net::SocketAddr {
    use axum::http::{HeaderMap, StatusCode};
    const CONCEPTS: [&[&str]; 6] = [
        &["committee", "council"],
        &["approved", "agreed"],
        &["annual", "yearly"],
        &["budget", "spending"],
        &["road", "street"],
        &["maintenance", "repairs"],
    ];
    fn vector(text: &str) -> Vec<f32> {
        let mut values = vec![0.0f32; 64];
        values[63] = 0.05;
        for word in text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let concept = CONCEPTS.iter().position(|group| group.contains(&word));
            let slot = concept.unwrap_or_else(|| 6 + word.bytes().map(usize::from).sum::<usize>() % 57);
            values[slot] += 1.0;
        }
        values
    }
    let app = axum::Router::new().route(
        "/v1/embeddings",
        axum::routing::post(move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
            let embedded = std::sync::Arc::clone(&embedded);
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer double-key") {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"message": "bad key"}})));
                }
                let inputs = body["input"].as_array().cloned().unwrap_or_default();
                embedded.fetch_add(inputs.len(), std::sync::atomic::Ordering::SeqCst);
                let data: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": vector(text.as_str().unwrap_or(""))}))
                    .collect();
                (StatusCode::OK, axum::Json(json!({"object": "list", "data": data, "model": body["model"]})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn an_openai_compatible_embeddings_service_finds_by_meaning() {
    let _serial = WORKERS.lock().await;
    let embedded = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let address = embeddings_double(std::sync::Arc::clone(&embedded)).await;
    let app = TestApp::spawn_with(|config| {
        config.run_workers = true;
        config.document_workers = 2;
        config.embedding_model = "openai".into();
        config.embedding_url = format!("http://localhost:{}/v1", address.port());
        config.embedding_api_model = "concepts".into();
        config.embedding_api_key = aether::config::Secret::new("double-key");
        config.embedding_dimensions = 64;
    })
    .await;
    let (owner, _) = token_and_id(&app, "s-openai", vec![Role::User]).await;
    let (stranger, _) = token_and_id(&app, "s-openai-stranger", vec![Role::User]).await;
    let (nb, found) = minutes_found_by_paraphrase(&app, &owner, "Minutes").await;
    let query = PARAPHRASE;
    // Six of the eight words of the minutes share a concept with the query ("the" and
    // "for" do not); nothing of the recipe does. The scores are the cosines (Neo4j's
    // index scores were approximate: 0.79 and 0.20 once in CI, with many vectors).
    assert!((found["items"][0]["score"].as_f64().unwrap() - 0.7386).abs() < 0.02, "{found}");
    assert!(found["items"][1]["score"].as_f64().unwrap() < 0.05, "{found}");
    let words = format!("/api/v1/search/documents?mode=text&q={}", query.replace(' ', "%20"));
    assert_eq!(search(&app, &owner, &words).await["items"], json!([]), "no word in common");
    let hybrid = search(&app, &owner, &format!("/api/v1/search/documents?q={}", query.replace(' ', "%20"))).await;
    assert_eq!(hybrid["items"][0]["document"]["original_filename"], "minutes.txt");
    // Meaning does not reach past permissions.
    let hidden = json_of(
        call(&app, &stranger, Method::POST, "/api/v1/search/semantic", Some(json!({"query": query}))).await,
        200,
    )
    .await;
    assert!(hidden["items"].as_array().unwrap().iter().all(|h| h["document"]["notebook_id"] != nb.as_str()));
    // Four chunks (two headings, two bodies), plus the queries.
    assert!(embedded.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    assert!(metric(&app, "aether_embedded_texts_total", &["model=\"openai:concepts:64\""]).await >= 4.0);
    app.shutdown().await;
}
