//! The real all-MiniLM-L6-v2 model, installed by `scripts/models` into
//! AETHER_TEST_MODELS_DIR (scripts/test sets it). Without it these tests print
//! NOT RUN, unless AETHER_TEST_REQUIRE_SERVICES=1, where a missing model fails.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use aether_domain::embedding::{EmbedBatch, Embedder, Embedding};
use aether_embed::{MAX_TOKENS, MiniLmEmbedder};

fn embedder() -> Option<&'static MiniLmEmbedder> {
    static LOADED: OnceLock<Option<MiniLmEmbedder>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let required = std::env::var("AETHER_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            let Some(dir) = std::env::var_os("AETHER_TEST_MODELS_DIR").map(PathBuf::from) else {
                assert!(!required, "AETHER_TEST_MODELS_DIR is required (scripts/models installs the models)");
                println!("NOT RUN: set AETHER_TEST_MODELS_DIR to the directory scripts/models installs into");
                return None;
            };
            Some(MiniLmEmbedder::load(&dir).unwrap())
        })
        .as_ref()
}

async fn embed(embedder: &MiniLmEmbedder, texts: &[&str]) -> Vec<Embedding> {
    let batch = EmbedBatch::new(texts.iter().map(|text| (*text).to_owned()).collect()).unwrap();
    embedder.embed(&batch).await.unwrap()
}

/// The reference values are sentence-transformers' own (checked with numpy against
/// the same files, see ../shared/NOTES-dependencies.md).
#[tokio::test]
async fn similar_sentences_are_near_and_unrelated_ones_are_not() {
    let Some(embedder) = embedder() else { return };
    assert_eq!(embedder.model().dimensions, 384);
    let vectors =
        embed(embedder, &["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."])
            .await;
    assert!(vectors.iter().all(|vector| vector.dimensions() == 384));
    let near = vectors[0].cosine(&vectors[1]);
    let far = vectors[0].cosine(&vectors[2]);
    assert!((near - 0.7553).abs() < 0.002, "cos(food, bread) = {near}");
    assert!((far - -0.046).abs() < 0.01, "cos(food, movie) = {far}");
}

/// Padding must not change a text's vector: alone, or batched with a longer text.
#[tokio::test]
async fn a_text_has_the_same_vector_alone_and_in_a_batch() {
    let Some(embedder) = embedder() else { return };
    let short = "Quarterly revenue grew by four percent.";
    let long = "The board met on Tuesday to discuss the budget for next year, the hiring plan, \
                and the opening of a second office in the north of the country.";
    let alone = embed(embedder, &[short]).await.remove(0);
    let batched = embed(embedder, &[long, short]).await.remove(1);
    assert!(alone.cosine(&batched) > 0.9999, "cos = {}", alone.cosine(&batched));
    let difference = alone.as_slice().iter().zip(batched.as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(difference < 1e-4, "largest difference {difference}");
}

/// A text longer than the model reads is cut at MAX_TOKENS: what follows changes
/// nothing, and nothing fails.
#[tokio::test]
async fn text_beyond_the_token_limit_is_ignored() {
    let Some(embedder) = embedder() else { return };
    let head = "word ".repeat(MAX_TOKENS + 10);
    let first = embed(embedder, &[&format!("{head} apples and pears")]).await.remove(0);
    let second = embed(embedder, &[&format!("{head} the stock market fell sharply")]).await.remove(0);
    assert!(first.cosine(&second) > 0.9999, "cos = {}", first.cosine(&second));
}

/// A paraphrase with no word in common with the query is far nearer to it than an
/// unrelated text: what lets semantic search find what full-text search cannot.
#[tokio::test]
async fn a_paraphrase_without_shared_words_is_near() {
    let Some(embedder) = embedder() else { return };
    let vectors = embed(
        embedder,
        &[
            "How do I reset my password?",
            "Steps to recover access to a forgotten login credential",
            "Quarterly revenue grew by four percent in the northern region",
        ],
    )
    .await;
    let paraphrase = vectors[0].cosine(&vectors[1]);
    let unrelated = vectors[0].cosine(&vectors[2]);
    println!("paraphrase {paraphrase}, unrelated {unrelated}");
    assert!(paraphrase > 0.4, "paraphrase {paraphrase}");
    assert!(paraphrase > unrelated + 0.3, "paraphrase {paraphrase}, unrelated {unrelated}");
}
