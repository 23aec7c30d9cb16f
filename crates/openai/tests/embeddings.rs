//! The embeddings adapter against a double of an OpenAI-compatible service at its
//! HTTP boundary (OpenAI's published `/v1/embeddings` contract): the request it
//! sends, vectors matched to texts by `index`, and every way an answer can be wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aether_domain::embedding::{EmbedBatch, EmbedError, Embedder};
use aether_domain::outbound::{AllowedTarget, OutboundPolicy};
use aether_openai::{OpenAiEmbedder, OpenAiEmbeddingConfig};
use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

/// A request the double received: its `Authorization` header and its body.
type Received = (Option<String>, Value);

/// What the double answers, and what it was sent.
#[derive(Clone, Default)]
struct Double {
    answer: Arc<Mutex<Option<(StatusCode, Value)>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

/// Three dimensions: a text's vector is (its length, 1, 0), answered in reverse order.
async fn serve(double: Double) -> SocketAddr {
    let app = axum::Router::new().route(
        "/v1/embeddings",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let double = double.clone();
            async move {
                let key = headers.get("authorization").map(|value| value.to_str().unwrap().to_owned());
                double.received.lock().unwrap().push((key, body.clone()));
                if let Some((status, answer)) = double.answer.lock().unwrap().clone() {
                    return (status, Json(answer));
                }
                let inputs = body["input"].as_array().unwrap();
                let mut data: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(index, text)| {
                        let length = text.as_str().unwrap().len() as f64;
                        json!({"object": "embedding", "index": index, "embedding": [length, 1.0, 0.0]})
                    })
                    .collect();
                data.reverse();
                (
                    StatusCode::OK,
                    Json(json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 3, "total_tokens": 3}})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn embedder(address: SocketAddr, policy: OutboundPolicy, api_key: &str, send_dimensions: bool) -> OpenAiEmbedder {
    OpenAiEmbedder::new(
        OpenAiEmbeddingConfig {
            base_url: format!("http://{address}/v1/"),
            model: "double-embed".into(),
            api_key: api_key.into(),
            dimensions: 3,
            send_dimensions,
            max_tokens: 512,
        },
        aether_outbound::client_builder(Arc::new(policy)),
    )
    .unwrap()
}

fn loopback_allowed() -> OutboundPolicy {
    OutboundPolicy::new(vec![AllowedTarget::parse("127.0.0.1").unwrap()])
}

fn batch(texts: &[&str]) -> EmbedBatch {
    EmbedBatch::new(texts.iter().map(|text| (*text).to_owned()).collect()).unwrap()
}

#[tokio::test]
async fn vectors_come_back_in_the_texts_order_as_unit_vectors() {
    let double = Double::default();
    let address = serve(double.clone()).await;
    let embedder = embedder(address, loopback_allowed(), "secret-key", true);
    assert_eq!(embedder.model().name, "openai:double-embed:3");
    assert_eq!(embedder.model().dimensions, 3);

    let vectors = embedder.embed(&batch(&["a", "abcd"])).await.unwrap();
    // (1, 1, 0) and (4, 1, 0), normalised: answered in reverse, matched by index.
    let first = vectors[0].as_slice();
    let second = vectors[1].as_slice();
    assert!((first[0] - first[1]).abs() < 1e-6, "{first:?}");
    assert!((second[0] - 4.0 * second[1]).abs() < 1e-6, "{second:?}");
    assert!((second.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-6);

    let received = double.received.lock().unwrap().clone();
    let (key, body) = &received[0];
    assert_eq!(key.as_deref(), Some("Bearer secret-key"));
    assert_eq!(body["model"], "double-embed");
    assert_eq!(body["input"], json!(["a", "abcd"]));
    assert_eq!(body["encoding_format"], "float");
    assert_eq!(body["dimensions"], 3);
}

#[tokio::test]
async fn no_key_no_header_and_dimensions_only_when_asked() {
    let double = Double::default();
    let address = serve(double.clone()).await;
    embedder(address, loopback_allowed(), "", false).embed(&batch(&["a"])).await.unwrap();
    let received = double.received.lock().unwrap().clone();
    assert_eq!(received[0].0, None);
    assert!(received[0].1.get("dimensions").is_none(), "{}", received[0].1);
}

#[tokio::test]
async fn wrong_answers_fail_the_batch() {
    let double = Double::default();
    let address = serve(double.clone()).await;
    let embedder = embedder(address, loopback_allowed(), "k", false);
    let cases = [
        (
            StatusCode::OK,
            json!({"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 1, "embedding": [0.0, 1.0]}]}),
            "of 2 dimensions",
        ),
        (StatusCode::OK, json!({"data": [{"index": 0, "embedding": [1.0, 0.0, 0.0]}]}), "1 vectors for 2 texts"),
        (
            StatusCode::OK,
            json!({"data": [{"index": 0, "embedding": [1.0, 0.0, 0.0]}, {"index": 0, "embedding": [0.0, 1.0, 0.0]}]}),
            "two vectors for text 0",
        ),
        (
            StatusCode::OK,
            json!({"data": [{"index": 0, "embedding": [1.0, 0.0, 0.0]}, {"index": 5, "embedding": [0.0, 1.0, 0.0]}]}),
            "a vector for text 5",
        ),
        (
            StatusCode::OK,
            json!({"data": [{"index": 0, "embedding": [0.0, 0.0, 0.0]}, {"index": 1, "embedding": [0.0, 1.0, 0.0]}]}),
            "zero",
        ),
        (StatusCode::OK, json!({"something": "else"}), "not an embeddings answer"),
        (StatusCode::BAD_REQUEST, json!({"error": {"message": "input too long"}}), "input too long"),
    ];
    for (status, answer, expected) in cases {
        *double.answer.lock().unwrap() = Some((status, answer.clone()));
        match embedder.embed(&batch(&["a", "b"])).await {
            Err(EmbedError::Failed(message)) => assert!(message.contains(expected), "{answer}: {message}"),
            other => panic!("{answer}: {other:?}"),
        }
    }
    // The service being down, overloaded or refusing the key is temporary: the
    // worker tries again later, and search answers by words meanwhile.
    for status in [StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE, StatusCode::UNAUTHORIZED] {
        *double.answer.lock().unwrap() = Some((status, json!({"error": {"message": "no"}})));
        let result = embedder.embed(&batch(&["a", "b"])).await;
        assert!(matches!(result, Err(EmbedError::Unavailable(_))), "{status}: {result:?}");
    }
}

#[tokio::test]
async fn a_service_the_outbound_policy_refuses_is_never_called() {
    let double = Double::default();
    let address = serve(double.clone()).await;
    // Named by a host name that resolves to loopback: the policy drops the address.
    let base = OpenAiEmbeddingConfig {
        base_url: format!("http://localhost:{}/v1", address.port()),
        model: "double-embed".into(),
        api_key: String::new(),
        dimensions: 3,
        send_dimensions: false,
        max_tokens: 512,
    };
    let refused =
        OpenAiEmbedder::new(base, aether_outbound::client_builder(Arc::new(OutboundPolicy::new(vec![])))).unwrap();
    let result = refused.embed(&batch(&["a"])).await;
    assert!(matches!(result, Err(EmbedError::Unavailable(_))), "{result:?}");
    assert!(double.received.lock().unwrap().is_empty());
}

#[test]
fn a_model_without_dimensions_or_name_is_refused() {
    let config = |dimensions: usize, model: &str| OpenAiEmbeddingConfig {
        base_url: "http://embeddings.example/v1".into(),
        model: model.into(),
        api_key: String::new(),
        dimensions,
        send_dimensions: false,
        max_tokens: 512,
    };
    assert!(OpenAiEmbedder::new(config(0, "m"), reqwest::Client::builder()).is_err());
    assert!(OpenAiEmbedder::new(config(3, " "), reqwest::Client::builder()).is_err());
}
