//! The permission check and notebook listings on a sizeable graph: 1,000 users and
//! 10,000 notebooks in 500 chains 20 deep, with grants on chain roots, so that a
//! check on a leaf walks 20 ancestors. Prints figures; asserts nothing about them.
//!
//! `cargo bench -p aether --bench permissions` (SQLite), or under
//! `scripts/bench --neo4j` with `AETHER_TEST_STORE=neo4j` for Neo4j.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::access::Collaboration;
use aether_domain::access::{CollaborationStatus, Permission};
use aether_domain::activity::Change;
use aether_domain::auth::Principal;
use aether_domain::id::{NotebookId, UserId};
use aether_domain::notebook::{NewNotebook, NotebookName, Visibility};
use aether_domain::time;
use aether_domain::token::AccessTokenCodec;
use aether_domain::user::{NewUser, Role, Username};

const USERS: usize = 1_000;
const OWNERS: usize = 50;
const CHAINS: usize = 500;
const DEPTH: usize = 20;
const SAMPLES: usize = 2_000;

fn percentiles(name: &str, mut samples: Vec<Duration>, elapsed: Duration) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{name:<48} {:>6} samples  {:>7.0}/s  p50 {:>7.3} ms  p95 {:>7.3} ms  p99 {:>7.3} ms",
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        pick(0.50),
        pick(0.95),
        pick(0.99)
    );
}

#[tokio::main]
async fn main() {
    let app = common::TestApp::spawn_with(|config| config.run_workers = false).await;
    let runtime = app.server.runtime.clone();
    let store = Arc::clone(&runtime.store);
    println!(
        "permission bench: store {:?}, {USERS} users, {} notebooks in {CHAINS} chains of depth {DEPTH}",
        runtime.config.store,
        CHAINS * DEPTH
    );

    let seeding = Instant::now();
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let user = store
            .create_user(NewUser {
                id: UserId::new(),
                keycloak_id: None,
                username: Username::parse(&format!("bench-{i}-{}", uuid::Uuid::now_v7().simple())).unwrap(),
                email: None,
                full_name: None,
                roles: vec![Role::User],
                password_hash: None,
                created_at: time::now(),
            })
            .await
            .unwrap();
        users.push(user);
    }
    // Chains: each owner gets CHAINS / OWNERS chains; the chains are built level by
    // level, a few at a time, so that Neo4j sees concurrent writers.
    let mut leaves = Vec::with_capacity(CHAINS);
    let mut roots = Vec::with_capacity(CHAINS);
    for chain in 0..CHAINS {
        let owner = users[chain % OWNERS].id;
        let mut parent: Option<NotebookId> = None;
        for level in 0..DEPTH {
            let notebook = store
                .create_notebook(
                    NewNotebook {
                        id: NotebookId::new(),
                        owner_id: owner,
                        parent_id: parent,
                        name: NotebookName::parse(&format!("Chain {chain} level {level}")).unwrap(),
                        description: None,
                        visibility: Visibility::Private,
                        tags: vec![],
                        compliance_settings: Default::default(),
                        is_template: false,
                        created_at: time::now(),
                    },
                    64,
                    &Change::by(owner, time::now()),
                )
                .await
                .unwrap();
            if level == 0 {
                roots.push(notebook.id);
            }
            parent = Some(notebook.id);
        }
        leaves.push(parent.unwrap());
    }
    // Every non-owner reads one chain through a grant on its root.
    for (i, user) in users.iter().enumerate().skip(OWNERS) {
        let now = time::now();
        store
            .put_collaboration(
                Collaboration {
                    notebook_id: roots[i % CHAINS],
                    user_id: user.id,
                    permission: Permission::Read,
                    status: CollaborationStatus::Active,
                    granted_by: users[(i % CHAINS) % OWNERS].id,
                    granted_at: now,
                    accepted_at: Some(now),
                    updated_at: now,
                },
                &Change::system(now),
            )
            .await
            .unwrap();
    }
    println!("seeded in {:.1} s", seeding.elapsed().as_secs_f64());

    let principal = |i: usize| Principal::new(users[i].id, users[i].username.clone(), vec![Role::User]);

    // The permission check itself (service level: one ancestor-chain query plus the rules).
    let mut samples = Vec::with_capacity(SAMPLES);
    let started = Instant::now();
    for i in 0..SAMPLES {
        let reader = OWNERS + (i % (USERS - OWNERS));
        let leaf = leaves[reader % CHAINS];
        let sent = Instant::now();
        let access = runtime.notebooks.access(&principal(reader), leaf).await.unwrap();
        samples.push(sent.elapsed());
        assert_eq!(access.permission, Permission::Read);
    }
    percentiles("permission check, leaf at depth 20 (inherited)", samples, started.elapsed());

    let mut samples = Vec::with_capacity(SAMPLES);
    let started = Instant::now();
    for i in 0..SAMPLES {
        let stranger = OWNERS + (i % (USERS - OWNERS));
        let leaf = leaves[(stranger + 1) % CHAINS];
        let sent = Instant::now();
        assert!(runtime.notebooks.access(&principal(stranger), leaf).await.is_err());
        samples.push(sent.elapsed());
    }
    percentiles("permission check, denied (depth 20)", samples, started.elapsed());

    // Over HTTP with real tokens.
    let tokens: Vec<String> =
        users.iter().take(200).map(|user| runtime.tokens.issue(user, "bench", time::now()).unwrap().0).collect();
    let client = app.client.clone();
    for (name, path_of) in [
        ("GET /api/v1/notebooks/{leaf} (inherited read)", 0),
        ("GET /api/v1/notebooks (owner of 200, limit 20)", 1),
        ("GET /api/v1/notebooks?scope=shared (20 reachable)", 2),
    ] {
        let mut samples = Vec::with_capacity(SAMPLES / 2);
        let started = Instant::now();
        for i in 0..SAMPLES / 2 {
            let (token, path) = match path_of {
                0 => {
                    let reader = OWNERS + (i % 150);
                    (&tokens[reader], format!("/api/v1/notebooks/{}", leaves[reader % CHAINS]))
                }
                1 => (&tokens[i % OWNERS], "/api/v1/notebooks?limit=20".to_owned()),
                _ => (&tokens[OWNERS + (i % 150)], "/api/v1/notebooks?scope=shared&limit=20".to_owned()),
            };
            let sent = Instant::now();
            let response = client.get(app.url(&path)).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap();
            samples.push(sent.elapsed());
        }
        percentiles(name, samples, started.elapsed());
    }
    app.shutdown().await;
}
