//! What authenticating a request costs: verifying a local EdDSA token, a Keycloak
//! RS256 token (when `AETHER_TEST_KEYCLOAK_URL` names a running Keycloak; its keys are
//! fetched once and cached, so this is the steady state), resolving an API key, and a
//! whole `GET /api/v1/auth/me` round trip over HTTP. Prints figures; asserts nothing.
//!
//! `cargo bench -p aether --bench auth`, or `scripts/bench`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aether_domain::api_key::{ApiKeyName, ApiKeyScope};
use aether_domain::auth::ClientInfo;
use aether_domain::token::TokenVerifier;
use aether_domain::user::Role;

const SAMPLES: usize = 5_000;

fn report(name: &str, mut samples: Vec<Duration>, elapsed: Duration) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    println!(
        "{name:<44} {:>6} samples  {:>8.0}/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        pick(0.50),
        pick(0.99)
    );
}

async fn measure<F, Fut>(name: &str, samples: usize, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    // Warm up caches (key sets, connections) before measuring.
    for _ in 0..50 {
        f().await;
    }
    let mut durations = Vec::with_capacity(samples);
    let started = Instant::now();
    for _ in 0..samples {
        let at = Instant::now();
        f().await;
        durations.push(at.elapsed());
    }
    report(name, durations, started.elapsed());
}

#[tokio::main]
async fn main() {
    let app = common::TestApp::spawn().await;
    let runtime = app.server.runtime.clone();
    println!("auth bench: store {:?}", runtime.config.store);

    let (username, password) = app.create_user("bench", vec![Role::User]).await;
    let tokens: serde_json::Value = app.password_grant(&username, &password).await.json().await.unwrap();
    let local = tokens["access_token"].as_str().unwrap().to_owned();
    let codec = runtime.tokens.clone();
    measure("verify local EdDSA token (signature + claims)", SAMPLES, || {
        let codec = codec.clone();
        let token = local.clone();
        async move {
            TokenVerifier::verify(codec.as_ref(), &token).await.unwrap();
        }
    })
    .await;

    let identity = runtime.identity.clone();
    measure("authenticate local token (+ revocation check)", SAMPLES, || {
        let identity = identity.clone();
        let token = local.clone();
        async move {
            identity.authenticate_bearer(&token, ClientInfo::default()).await.unwrap();
        }
    })
    .await;

    let principal = identity.authenticate_bearer(&local, ClientInfo::default()).await.unwrap();
    let key = identity
        .create_api_key(&principal, ApiKeyName::parse("bench").unwrap(), vec![ApiKeyScope::Read], None)
        .await
        .unwrap()
        .secret;
    measure("authenticate API key (digest + store lookup)", SAMPLES, || {
        let identity = identity.clone();
        let key = key.clone();
        async move {
            identity.authenticate_bearer(&key, ClientInfo::default()).await.unwrap();
        }
    })
    .await;

    let client = app.client.clone();
    let url = app.url("/api/v1/auth/me");
    measure("GET /api/v1/auth/me over HTTP (local token)", 2_000, || {
        let request = client.get(&url).bearer_auth(&local);
        async move {
            assert_eq!(request.send().await.unwrap().status(), 200);
        }
    })
    .await;

    if let Ok(kc) = std::env::var("AETHER_TEST_KEYCLOAK_URL") {
        let response: serde_json::Value = reqwest::Client::new()
            .post(format!("{kc}/realms/aether/protocol/openid-connect/token"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "aether-test"),
                ("client_secret", "aether-test-secret"),
                ("username", "alice"),
                ("password", "alice-password"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = response["access_token"].as_str().unwrap().to_owned();
        let (verifier, _) = aether_identity_keycloak::connect(
            aether_identity_keycloak::KeycloakConfig {
                issuer_url: format!("{kc}/realms/aether"),
                client_id: "aether-app".into(),
                client_secret: "aether-app-test-secret".into(),
                audience: "aether-app".into(),
                leeway: Duration::from_secs(30),
                jwks_min_refresh: Duration::from_secs(10),
                http_timeout: Duration::from_secs(5),
            },
            reqwest::Client::builder(),
        )
        .unwrap();
        measure("verify Keycloak RS256 token (cached JWKS)", SAMPLES, || {
            let verifier = verifier.clone();
            let token = token.clone();
            async move {
                verifier.verify(&token).await.unwrap();
            }
        })
        .await;
    } else {
        println!("(set AETHER_TEST_KEYCLOAK_URL to measure Keycloak token verification)");
    }
    app.shutdown().await;
}
