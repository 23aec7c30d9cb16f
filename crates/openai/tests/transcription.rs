//! The transcription adapter against a double of an OpenAI-compatible service at its
//! HTTP boundary (OpenAI's published `/v1/audio/transcriptions` contract): the
//! multipart request it sends, and what each kind of answer becomes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aether_domain::outbound::{AllowedTarget, OutboundPolicy};
use aether_domain::transcription::{TranscribeError, Transcriber};
use aether_openai::{OpenAiTranscriber, OpenAiTranscriptionConfig};
use axum::extract::Multipart;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

/// What the double was sent: authorization, file name, content type, file size, model,
/// response format.
type Sent = (String, String, String, usize, String, String);

#[derive(Clone, Default)]
struct Double {
    answer: Arc<Mutex<Option<(StatusCode, String)>>>,
    sent: Arc<Mutex<Vec<Sent>>>,
}

async fn serve(double: Double) -> SocketAddr {
    let app = axum::Router::new().route(
        "/v1/audio/transcriptions",
        post(move |headers: HeaderMap, mut form: Multipart| {
            let double = double.clone();
            async move {
                let mut sent = Sent::default();
                sent.0 = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                while let Some(field) = form.next_field().await.unwrap() {
                    match field.name().unwrap() {
                        "file" => {
                            sent.1 = field.file_name().unwrap().to_owned();
                            sent.2 = field.content_type().unwrap().to_owned();
                            sent.3 = field.bytes().await.unwrap().len();
                        }
                        "model" => sent.4 = field.text().await.unwrap(),
                        "response_format" => sent.5 = field.text().await.unwrap(),
                        _ => {}
                    }
                }
                double.sent.lock().unwrap().push(sent);
                match double.answer.lock().unwrap().clone() {
                    Some((status, body)) => (status, body),
                    None => {
                        (StatusCode::OK, json!({"text": "  A heron stood still.  ", "language": "english"}).to_string())
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn transcriber(address: SocketAddr, policy: OutboundPolicy, max_bytes: u64) -> OpenAiTranscriber {
    OpenAiTranscriber::new(
        OpenAiTranscriptionConfig {
            // A host name, so the policy's resolver sees it (addresses written in a URL
            // are the configuring administrator's choice and are not resolved).
            base_url: format!("http://localhost:{}/v1/", address.port()),
            model: "whisper-1".into(),
            api_key: "sk-test".into(),
            max_bytes,
        },
        aether_outbound::client_builder(Arc::new(policy)),
    )
    .unwrap()
}

fn loopback_allowed() -> OutboundPolicy {
    OutboundPolicy::new(vec![AllowedTarget::parse("127.0.0.1").unwrap(), AllowedTarget::parse("::1").unwrap()])
}

fn audio_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), vec![7u8; 1000]).unwrap();
    file
}

#[tokio::test]
async fn sends_the_file_and_model_and_reads_the_text() {
    let double = Double::default();
    let address = serve(double.clone()).await;
    let file = audio_file();
    let transcript = transcriber(address, loopback_allowed(), 1 << 20)
        .transcribe(file.path(), "call.mp3", "audio/mpeg")
        .await
        .unwrap();
    assert_eq!(transcript.text, "A heron stood still.");
    assert_eq!(transcript.language.as_deref(), Some("english"));
    let sent = double.sent.lock().unwrap().clone();
    assert_eq!(
        sent,
        vec![(
            "Bearer sk-test".into(),
            "call.mp3".into(),
            "audio/mpeg".into(),
            1000,
            "whisper-1".into(),
            "json".into()
        )]
    );
}

#[tokio::test]
async fn answers_become_the_right_errors() {
    let double = Double::default();
    let address = serve(double.clone()).await;
    let file = audio_file();
    let service = transcriber(address, loopback_allowed(), 1 << 20);
    let answer = |status: StatusCode, body: Value| *double.answer.lock().unwrap() = Some((status, body.to_string()));

    answer(StatusCode::SERVICE_UNAVAILABLE, json!({}));
    let down = service.transcribe(file.path(), "a.mp3", "audio/mpeg").await;
    assert!(matches!(down, Err(TranscribeError::Unavailable(_))), "{down:?}");

    answer(StatusCode::BAD_REQUEST, json!({"error": {"message": "Invalid file format."}}));
    match service.transcribe(file.path(), "a.mp3", "audio/mpeg").await {
        Err(TranscribeError::Failed(why)) => assert!(why.contains("Invalid file format."), "{why}"),
        other => panic!("{other:?}"),
    }

    answer(StatusCode::OK, json!({"segments": []}));
    assert!(matches!(service.transcribe(file.path(), "a.mp3", "audio/mpeg").await, Err(TranscribeError::Failed(_))));
}

#[tokio::test]
async fn large_files_are_not_sent_and_private_addresses_are_refused() {
    let double = Double::default();
    let address = serve(double.clone()).await;
    let file = audio_file();
    let small = transcriber(address, loopback_allowed(), 999);
    assert!(matches!(small.transcribe(file.path(), "a.mp3", "audio/mpeg").await, Err(TranscribeError::Failed(_))));
    // Loopback without an allow-list entry: the outbound policy refuses to resolve it.
    let refused = transcriber(address, OutboundPolicy::new(vec![]), 1 << 20);
    assert!(matches!(
        refused.transcribe(file.path(), "a.mp3", "audio/mpeg").await,
        Err(TranscribeError::Unavailable(_))
    ));
    assert!(double.sent.lock().unwrap().is_empty(), "nothing reached the service");
}
