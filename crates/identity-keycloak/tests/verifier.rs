//! The verifier against a small OpenID provider served from this test (discovery and
//! a JSON Web Key Set over real HTTP), with tokens minted here: every way a token can
//! be wrong, key rotation, and the rate limit on key set fetches. The same verifier
//! meets the real Keycloak in the `aether` crate's `keycloak` tests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aether_domain::token::TokenError;
use aether_domain::token::{TokenSubject, TokenVerifier};
use aether_identity_keycloak::{KeycloakConfig, OidcVerifier};
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::Mutex;

struct Provider {
    issuer: String,
    keys: Mutex<Vec<(String, SigningKey)>>,
    jwks_fetches: AtomicUsize,
}

fn jwk(kid: &str, key: &SigningKey) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
           "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())})
}

async fn discovery(State(provider): State<Arc<Provider>>) -> Json<Value> {
    let issuer = &provider.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
        "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
    }))
}

async fn certs(State(provider): State<Arc<Provider>>) -> Json<Value> {
    provider.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = provider.keys.lock().await;
    // An encryption key in the set, as Keycloak publishes, must be ignored.
    let mut set: Vec<Value> = keys.iter().map(|(kid, key)| jwk(kid, key)).collect();
    set.push(json!({"kty": "RSA", "use": "enc", "kid": "enc-key", "alg": "RSA-OAEP", "n": "sXch", "e": "AQAB"}));
    Json(json!({ "keys": set }))
}

async fn provider() -> (Arc<Provider>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/realms/test");
    let provider = Arc::new(Provider {
        issuer: issuer.clone(),
        keys: Mutex::new(vec![("k1".into(), SigningKey::from_bytes(&rand::random()))]),
        jwks_fetches: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .route("/realms/test/.well-known/openid-configuration", get(discovery))
        .route("/realms/test/protocol/openid-connect/certs", get(certs))
        .with_state(Arc::clone(&provider));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (provider, issuer)
}

fn verifier(issuer: &str, min_refresh: Duration) -> OidcVerifier {
    aether_identity_keycloak::connect(
        KeycloakConfig {
            issuer_url: issuer.to_owned(),
            client_id: "aether-app".into(),
            client_secret: "unused".into(),
            audience: "aether-app".into(),
            leeway: Duration::from_secs(30),
            jwks_min_refresh: min_refresh,
            http_timeout: Duration::from_secs(5),
        },
        reqwest::Client::builder(),
    )
    .unwrap()
    .0
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "sub": "0b5c6f6e-kc-user", "aud": ["aether-app", "account"], "azp": "aether-web",
        "exp": now() + 300, "iat": now(), "auth_time": now() - 5, "typ": "Bearer", "sid": "session-1",
        "preferred_username": "Alice", "email": "alice@example.com", "name": "Alice Archer",
        "realm_access": {"roles": ["aether-user", "offline_access", "default-roles-aether"]},
        "groups": ["/users"],
    })
}

fn sign(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let der = key.to_pkcs8_der().unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

async fn key(provider: &Provider) -> SigningKey {
    provider.keys.lock().await[0].1.clone()
}

#[tokio::test]
async fn a_valid_token_is_read_into_the_domain() {
    let (provider, issuer) = provider().await;
    let verifier = verifier(&issuer, Duration::from_secs(10));
    let token = sign(&key(&provider).await, "k1", &claims(&issuer));
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.subject, TokenSubject::External("0b5c6f6e-kc-user".into()));
    assert_eq!(verified.username.as_str(), "alice");
    assert_eq!(verified.email.unwrap().as_str(), "alice@example.com");
    assert_eq!(verified.full_name.as_deref(), Some("Alice Archer"));
    assert_eq!(verified.roles, vec![aether_domain::user::Role::User], "unknown roles are dropped");
    assert_eq!(verified.groups, vec!["users".to_owned()]);
    assert_eq!(verified.session_id.as_deref(), Some("session-1"));
    assert_eq!(verified.client_id, "aether-web");
    assert!(verified.auth_time.is_some());

    // Many verifications, one key set fetch: no call to the provider per request.
    for _ in 0..50 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused() {
    let (provider, issuer) = provider().await;
    let verifier = verifier(&issuer, Duration::from_secs(10));
    let key = key(&provider).await;
    let invalid = |result: Result<_, TokenError>, what: &str| {
        assert!(matches!(result, Err(TokenError::Invalid(_))), "{what}: {result:?}");
    };

    let mut expired = claims(&issuer);
    expired["exp"] = json!(now() - 120);
    assert_eq!(verifier.verify(&sign(&key, "k1", &expired)).await.unwrap_err(), TokenError::Expired);
    let mut within_leeway = claims(&issuer);
    within_leeway["exp"] = json!(now() - 5);
    assert!(verifier.verify(&sign(&key, "k1", &within_leeway)).await.is_ok(), "a small clock skew is tolerated");

    let mut early = claims(&issuer);
    early["nbf"] = json!(now() + 600);
    invalid(verifier.verify(&sign(&key, "k1", &early)).await, "not yet valid");

    let mut wrong_issuer = claims(&issuer);
    wrong_issuer["iss"] = json!("http://127.0.0.1:1/realms/other");
    invalid(verifier.verify(&sign(&key, "k1", &wrong_issuer)).await, "wrong issuer");

    let mut wrong_audience = claims(&issuer);
    wrong_audience["aud"] = json!("account");
    wrong_audience["azp"] = json!("some-other-app");
    invalid(verifier.verify(&sign(&key, "k1", &wrong_audience)).await, "wrong audience");
    let mut by_azp = wrong_audience.clone();
    by_azp["azp"] = json!("aether-app");
    assert!(verifier.verify(&sign(&key, "k1", &by_azp)).await.is_ok(), "azp names us");

    let mut id_token = claims(&issuer);
    id_token["typ"] = json!("ID");
    invalid(verifier.verify(&sign(&key, "k1", &id_token)).await, "an ID token");

    let mut no_sub = claims(&issuer);
    no_sub.as_object_mut().unwrap().remove("sub");
    invalid(verifier.verify(&sign(&key, "k1", &no_sub)).await, "no subject");

    let stranger = SigningKey::from_bytes(&rand::random());
    invalid(verifier.verify(&sign(&stranger, "k1", &claims(&issuer))).await, "signed by another key");

    let good = sign(&key, "k1", &claims(&issuer));
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut changed = claims(&issuer);
    changed["realm_access"] = json!({"roles": ["aether-admin"]});
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&changed).unwrap());
    invalid(verifier.verify(&format!("{head}.{forged_payload}.{signature}")).await, "payload swapped");

    // alg "none": unsigned.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&issuer)).unwrap());
    invalid(verifier.verify(&format!("{none_header}.{payload}.")).await, "alg none");

    // HS256 keyed with the public key, the classic algorithm confusion.
    let public = key.verifying_key().to_bytes();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(&hs_header, &claims(&issuer), &EncodingKey::from_secret(&public)).unwrap();
    invalid(verifier.verify(&confused).await, "HS256 with the public key");

    let mut no_kid = Header::new(Algorithm::EdDSA);
    no_kid.kid = None;
    let der = key.to_pkcs8_der().unwrap();
    let unnamed = jsonwebtoken::encode(&no_kid, &claims(&issuer), &EncodingKey::from_ed_der(der.as_bytes())).unwrap();
    invalid(verifier.verify(&unnamed).await, "no key id");

    invalid(verifier.verify("not.a.token").await, "garbage");
    invalid(verifier.verify("").await, "empty");
}

#[tokio::test]
async fn unknown_keys_refetch_the_set_at_most_once_per_interval() {
    let (provider, issuer) = provider().await;
    let verifier = verifier(&issuer, Duration::from_millis(300));
    let first = key(&provider).await;
    verifier.verify(&sign(&first, "k1", &claims(&issuer))).await.unwrap();
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 1);

    // A flood of made-up key ids costs no more fetches inside the interval.
    let stranger = SigningKey::from_bytes(&rand::random());
    for i in 0..20 {
        let result = verifier.verify(&sign(&stranger, &format!("made-up-{i}"), &claims(&issuer))).await;
        assert!(matches!(result, Err(TokenError::Invalid(_))));
    }
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 1);

    // The provider rotates its key; after the interval the new key is fetched and accepted.
    let rotated = SigningKey::from_bytes(&rand::random());
    provider.keys.lock().await.push(("k2".into(), rotated.clone()));
    tokio::time::sleep(Duration::from_millis(350)).await;
    verifier.verify(&sign(&rotated, "k2", &claims(&issuer))).await.unwrap();
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 2);
    verifier.verify(&sign(&first, "k1", &claims(&issuer))).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable_not_invalid() {
    let verifier = verifier("http://127.0.0.1:1/realms/test", Duration::from_secs(10));
    let key = SigningKey::from_bytes(&rand::random());
    let result = verifier.verify(&sign(&key, "k1", &claims("http://127.0.0.1:1/realms/test"))).await;
    assert!(matches!(result, Err(TokenError::Unavailable(_))), "{result:?}");
}
