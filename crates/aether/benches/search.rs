//! Search at scale (issue 15): generates a corpus of documents in 1,000 notebooks
//! of 100 users through the store ports, gives every chunk a synthetic vector (the
//! real model embeds 10–30 chunks a second per core, see `cargo bench -p
//! aether-embed`), and prints, for a user who can read 10% of the notebooks, the
//! p50/p99 of text, semantic and hybrid queries, recall@10 of the store's vector
//! search against exact search over what the user may read, and the index size.
//! Figures only: nothing is asserted.
//!
//!   cargo bench -p aether --bench search
//!
//! Environment: `SEARCH_DOCS` (documents, default 100000; about 10 chunks each),
//! `SEARCH_STORES` (`sqlite`, `neo4j` or both, default `sqlite`), `SEARCH_QUERIES`
//! (per kind, default 200), `SEARCH_DIR` (where the SQLite file goes, default a
//! directory under /dev/shm, so that the load is not bound by fsync; `SEARCH_KEEP`
//! keeps it for a look afterwards), `SEARCH_LOADERS` (tasks uploading documents at
//! once, default 8; one more gives the vectors as chunks become pending),
//! `SEARCH_NOISE` (see [`noise`]), `SEARCH_CORPUS` (a file: written after the load, and when it exists the load is
//! skipped and the store already holding that corpus measured again), and for Neo4j
//! `AETHER_TEST_NEO4J_URI` / `AETHER_TEST_NEO4J_PASSWORD` (an empty database) and
//! `SEARCH_NEO4J_DATA` (its directory, for the size on disk). For 100,000 documents
//! give Neo4j room: `NEO4J_PAGECACHE_MIB=4096 NEO4J_JAVA_OPTS="-Xms4g -Xmx6g"
//! scripts/services/neo4j start`, about 25 GB of disk.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_domain::access::{Collaboration, CollaborationStatus, Permission};
use aether_domain::activity::Change;
use aether_domain::compliance::ComplianceSettings;
use aether_domain::document::{Filename, ProcessingResult};
use aether_domain::embedding::Embedding;
use aether_domain::id::{DocumentId, JobId, NotebookId, UserId};
use aether_domain::job::{JobOrigin, NewUploadJob, ReceivedFile};
use aether_domain::notebook::{NewNotebook, NotebookName, Visibility};
use aether_domain::page::Limit;
use aether_domain::search::{DocumentHit, DocumentSearch, ReadScope, SearchFilters, SearchText};
use aether_domain::semantic::{ChunkEmbedding, reciprocal_rank_fusion};
use aether_domain::store::Store;
use aether_domain::time;
use aether_domain::user::{NewUser, Role, Username};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const USERS: usize = 100;
const NOTEBOOKS: usize = 1_000;
const DIMENSIONS: usize = 384;
const TOPICS: usize = 200;
const VOCABULARY: usize = 30_000;
const CHUNKS_PER_DOCUMENT: usize = 10;
const WORDS_PER_CHUNK: usize = 150;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Pseudo-words: pronounceable, distinct, letters only.
fn vocabulary(rng: &mut StdRng) -> Vec<String> {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "bri", "cha", "dun", "fel", "gor", "hal", "jin", "kor", "lum",
        "mar", "nid", "pel", "quo", "ris", "sul", "tav",
    ];
    let mut words = BTreeSet::new();
    while words.len() < VOCABULARY {
        let n = rng.random_range(2..=4);
        let word: String = (0..n).map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())]).collect();
        words.insert(word);
    }
    let mut words: Vec<String> = words.into_iter().collect();
    // A fixed shuffle, so that frequency (Zipf rank) is unrelated to spelling.
    for i in (1..words.len()).rev() {
        let j = rng.random_range(0..=i);
        words.swap(i, j);
    }
    words
}

/// A Zipf-like rank in 0..n (exponent 1): frequent words are frequent.
fn zipf(rng: &mut StdRng, n: usize) -> usize {
    let u: f64 = rng.random_range(0.0..1.0);
    ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
}

fn random_unit(rng: &mut StdRng) -> Vec<f32> {
    let values: Vec<f32> = (0..DIMENSIONS).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Embedding::normalized(values).unwrap().as_slice().to_vec()
}

/// The noise added to each dimension of a topic's centre (`SEARCH_NOISE`, default
/// 0.6). At 0.6 the noise is about seven times the centre's length: vectors of one
/// topic have cosines of 0.02 ± 0.02, nearly random points, the worst case for a
/// graph index (and no case for exact search). At 0.1 it is about the centre's
/// length and a topic's vectors have cosines near 0.45, as related texts' embeddings do.
fn noise() -> f32 {
    std::env::var("SEARCH_NOISE").ok().and_then(|v| v.parse().ok()).unwrap_or(0.6)
}

fn near(rng: &mut StdRng, centre: &[f32], noise: f32) -> Embedding {
    let values: Vec<f32> = centre.iter().map(|c| c + rng.random_range(-noise..noise)).collect();
    Embedding::normalized(values).unwrap()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[rank].as_secs_f64() * 1000.0
}

struct Corpus {
    reader: UserId,
    /// Every chunk vector of the documents the reader may read, by document.
    readable_vectors: HashMap<DocumentId, Vec<Embedding>>,
    documents: usize,
    chunks: usize,
}

/// Which document a chunk belongs to, by a hash of its text: the body chunks are cut
/// by the domain's own function, and the heading holds the file name `doc-<n>.txt`.
/// The vectors are given by a separate task as chunks become pending, so the
/// documents can be loaded by several tasks at once.
#[derive(Default)]
struct ChunkOwners(std::sync::Mutex<HashMap<u64, usize>>);

impl ChunkOwners {
    fn hash(text: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut hasher);
        hasher.finish()
    }

    fn record(&self, document: usize, text: &str) {
        let mut owners = self.0.lock().unwrap();
        for chunk in aether_domain::chunk::body(text) {
            owners.insert(Self::hash(&chunk.text), document);
        }
    }

    fn owner(&self, text: &str) -> usize {
        if let Some(n) = text.strip_prefix("doc-").and_then(|rest| rest.strip_suffix(".txt")) {
            return n.parse().unwrap();
        }
        *self.0.lock().unwrap().get(&Self::hash(text)).expect("a chunk the bench wrote")
    }
}

impl Corpus {
    /// Writes what measuring needs to know of a loaded store, so that a store that
    /// took an hour to load can be measured again (`SEARCH_CORPUS`).
    fn write(&self, path: &std::path::Path) {
        let mut out = Vec::new();
        out.extend_from_slice(self.reader.as_uuid().as_bytes());
        for n in [self.documents, self.chunks, self.readable_vectors.len()] {
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
        for (id, vectors) in &self.readable_vectors {
            out.extend_from_slice(id.as_uuid().as_bytes());
            out.extend_from_slice(&(vectors.len() as u64).to_le_bytes());
            for vector in vectors {
                for value in vector.as_slice() {
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
        std::fs::write(path, out).unwrap();
    }

    fn read(path: &std::path::Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let mut rest = bytes.as_slice();
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        };
        let reader = UserId::from_uuid(uuid::Uuid::from_slice(take(16)).unwrap());
        let documents = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
        let chunks = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
        let count = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
        let mut readable_vectors = HashMap::new();
        for _ in 0..count {
            let id = DocumentId::from_uuid(uuid::Uuid::from_slice(take(16)).unwrap());
            let n = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
            let vectors = (0..n)
                .map(|_| {
                    let values: Vec<f32> =
                        (0..DIMENSIONS).map(|_| f32::from_le_bytes(take(4).try_into().unwrap())).collect();
                    Embedding::normalized(values).unwrap()
                })
                .collect();
            readable_vectors.insert(id, vectors);
        }
        Corpus { reader, readable_vectors, documents, chunks }
    }
}

async fn load(store: Arc<dyn Store>, documents: usize, rng: &mut StdRng) -> Corpus {
    let words = Arc::new(vocabulary(rng));
    let topics: Arc<Vec<Vec<f32>>> = Arc::new((0..TOPICS).map(|_| random_unit(rng)).collect());
    let at = time::now();
    let mut users = Vec::with_capacity(USERS);
    let run = uuid::Uuid::now_v7().simple().to_string();
    for n in 0..USERS {
        let user = store
            .create_user(NewUser {
                id: UserId::new(),
                keycloak_id: None,
                username: Username::parse(&format!("bench-{n}-{}", &run[20..])).unwrap(),
                email: None,
                full_name: None,
                roles: vec![Role::User],
                password_hash: None,
                created_at: at,
            })
            .await
            .unwrap();
        users.push(user.id);
    }
    let reader = users[0];
    let mut notebooks = Vec::with_capacity(NOTEBOOKS);
    let mut readable = BTreeSet::new();
    for n in 0..NOTEBOOKS {
        let owner = users[n % USERS];
        let notebook = store
            .create_notebook(
                NewNotebook {
                    id: NotebookId::new(),
                    owner_id: owner,
                    parent_id: None,
                    name: NotebookName::parse(&format!("Notebook {n}")).unwrap(),
                    description: None,
                    visibility: Visibility::Private,
                    tags: vec![],
                    compliance_settings: ComplianceSettings::default(),
                    is_template: false,
                    created_at: at,
                },
                32,
                &Change::by(owner, at),
            )
            .await
            .unwrap();
        notebooks.push(notebook.id);
        if owner == reader {
            readable.insert(notebook.id);
        } else if n % 10 == 1 {
            // The reader's own 10 notebooks plus grants on 90 others: 10%.
            let grant = Collaboration {
                notebook_id: notebook.id,
                user_id: reader,
                permission: Permission::Read,
                status: CollaborationStatus::Active,
                granted_by: owner,
                granted_at: at,
                accepted_at: Some(at),
                updated_at: at,
            };
            store.put_collaboration(grant, &Change::by(owner, at)).await.unwrap();
            readable.insert(notebook.id);
        }
    }
    eprintln!("search bench: {} users, {} notebooks, {} readable by the reader", USERS, NOTEBOOKS, readable.len());

    let loaders = env_usize("SEARCH_LOADERS", 8).max(1);
    let document_topics: Arc<Vec<usize>> = Arc::new((0..documents).map(|_| rng.random_range(0..TOPICS)).collect());
    let notebooks = Arc::new(notebooks);
    let users = Arc::new(users);
    let owners = Arc::new(ChunkOwners::default());
    let loaded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let loading_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();

    // Synthetic vectors: every chunk of a document near its topic, given as the
    // chunks become pending, the way the embedding worker follows uploads.
    let embedder = {
        let store = store.clone();
        let owners = owners.clone();
        let topics = topics.clone();
        let document_topics = document_topics.clone();
        let loading_done = loading_done.clone();
        let readable_notebooks: BTreeSet<usize> =
            (0..NOTEBOOKS).filter(|n| readable.contains(&notebooks[*n])).collect();
        let mut rng = StdRng::seed_from_u64(rng.random());
        tokio::spawn(async move {
            let mut vectors_by_document: HashMap<usize, Vec<Embedding>> = HashMap::new();
            let mut chunks = 0usize;
            loop {
                let finished = loading_done.load(std::sync::atomic::Ordering::SeqCst);
                let waiting = store.chunks_to_embed(500).await.unwrap();
                if waiting.is_empty() {
                    if finished {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                let mut embeddings = Vec::with_capacity(waiting.len());
                for chunk in waiting {
                    let document = owners.owner(&chunk.text);
                    let vector = near(&mut rng, &topics[document_topics[document]], noise());
                    if readable_notebooks.contains(&(document % NOTEBOOKS)) {
                        vectors_by_document.entry(document).or_default().push(vector.clone());
                    }
                    embeddings.push(ChunkEmbedding { id: chunk.id, vector });
                }
                chunks += embeddings.len();
                store.store_chunk_embeddings("bench", &embeddings).await.unwrap();
            }
            (vectors_by_document, chunks)
        })
    };

    let mut tasks = Vec::new();
    for loader in 0..loaders {
        let store = store.clone();
        let words = words.clone();
        let notebooks = notebooks.clone();
        let users = users.clone();
        let owners = owners.clone();
        let loaded = loaded.clone();
        let mut rng = StdRng::seed_from_u64(rng.random());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for d in (loader..documents).step_by(loaders) {
                let notebook = notebooks[d % NOTEBOOKS];
                let owner = users[(d % NOTEBOOKS) % USERS];
                let pages: Vec<String> = (0..CHUNKS_PER_DOCUMENT)
                    .map(|_| {
                        (0..WORDS_PER_CHUNK)
                            .map(|_| words[zipf(&mut rng, VOCABULARY)].as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect();
                let text = pages.join("\u{c}");
                owners.record(d, &text);
                let id = upload(store.as_ref(), notebook, owner, d, text).await;
                ids.push((d, id));
                let count = loaded.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if count.is_multiple_of(1000) {
                    let rate = count as f64 / started.elapsed().as_secs_f64();
                    eprintln!("search bench: {count} documents ({rate:.0}/s)");
                }
            }
            ids
        }));
    }
    let mut document_ids = HashMap::new();
    for task in tasks {
        document_ids.extend(task.await.unwrap());
    }
    loading_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let text_loaded = started.elapsed();
    let (vectors_by_document, chunks) = embedder.await.unwrap();
    let readable_vectors =
        vectors_by_document.into_iter().map(|(document, vectors)| (document_ids[&document], vectors)).collect();
    eprintln!(
        "search bench: loaded {documents} documents with {loaders} tasks in {:.0} s ({:.0} s with every vector), {chunks} chunks",
        text_loaded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Corpus { reader, readable_vectors, documents, chunks }
}

/// One document through the upload path the server takes: job, accepted file,
/// claimed, finished with its extracted text.
async fn upload(store: &dyn Store, notebook: NotebookId, owner: UserId, d: usize, text: String) -> DocumentId {
    let job = store
        .create_upload_job(NewUploadJob {
            id: JobId::new(),
            notebook_id: notebook,
            uploaded_by: owner,
            existing_document: None,
            filename: Filename::sanitize(&format!("doc-{d}.txt")),
            change_summary: None,
            callback_url: None,
            expected_bytes: None,
            storage_provider: "fs".into(),
            origin: JobOrigin::default(),
            at: time::now(),
        })
        .await
        .unwrap();
    let file = ReceivedFile { size: text.len() as u64, sha256: "00".repeat(32), content_type: "text/plain".into() };
    store.accept_upload(job.id, file, time::now()).await.unwrap();
    let now = time::now();
    store.claim_job_by_id(job.id, now, now + chrono::TimeDelta::seconds(600)).await.unwrap();
    let result = ProcessingResult {
        content_type: "text/plain".into(),
        format: "text".into(),
        supported: true,
        extracted_text: Some(text),
        ..ProcessingResult::default()
    };
    let (_, document) = store.finish_job(job.id, result, time::now()).await.unwrap();
    document.id
}

fn query(text: &str, limit: i64) -> DocumentSearch {
    DocumentSearch {
        text: SearchText::parse(text).unwrap(),
        filters: SearchFilters::default(),
        content_type: None,
        status: None,
        limit: Limit::parse(limit).unwrap(),
        after: None,
    }
}

/// The exact top 10 documents by best chunk similarity among what the reader reads.
fn exact_top(corpus: &Corpus, vector: &Embedding) -> Vec<DocumentId> {
    let mut scored: Vec<(f32, DocumentId)> = corpus
        .readable_vectors
        .iter()
        .map(|(id, vectors)| (vectors.iter().map(|v| v.cosine(vector)).fold(f32::MIN, f32::max), *id))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(10).map(|(_, id)| id).collect()
}

async fn measure(name: &str, store: Arc<dyn Store>, documents: usize, queries: usize, size: impl Fn() -> Option<u64>) {
    let corpus = match std::env::var("SEARCH_CORPUS") {
        Ok(path) if std::path::Path::new(&path).exists() => {
            eprintln!("search bench: measuring the corpus already in the store, described by {path}");
            Corpus::read(std::path::Path::new(&path))
        }
        wanted => {
            let corpus = load(store.clone(), documents, &mut StdRng::seed_from_u64(15)).await;
            if let Ok(path) = wanted {
                corpus.write(std::path::Path::new(&path));
            }
            corpus
        }
    };
    let mut rng = StdRng::seed_from_u64(16);
    let words = vocabulary(&mut StdRng::seed_from_u64(15));
    let scope = ReadScope::Reader(corpus.reader);
    let topics: Vec<Vec<f32>> = {
        // The same topics as the load (same seed, same draws after the vocabulary).
        let mut rng = StdRng::seed_from_u64(15);
        let _ = vocabulary(&mut rng);
        (0..TOPICS).map(|_| random_unit(&mut rng)).collect()
    };
    // The first search brings the embedded store's chunk index up to date with the
    // load (and a store's first semantic search reads the vectors in scope): timed
    // on its own, not among the queries.
    let started = Instant::now();
    let _ = store.search_documents(scope, &query(&words[500], 10)).await.unwrap();
    let warm_text = started.elapsed();
    let started = Instant::now();
    let _ = store
        .similar_documents(scope, "bench", &near(&mut rng, &topics[0], noise()), &query(&words[500], 10), 10)
        .await
        .unwrap();
    let warm_semantic = started.elapsed();
    let mut text_times = Vec::new();
    let mut semantic_times = Vec::new();
    let mut hybrid_times = Vec::new();
    let mut recall_hits = 0usize;
    let mut recall_total = 0usize;
    let mut text_found = 0usize;
    for q in 0..queries {
        // Mid-frequency words (ranks 100–3000), one or two.
        let first = &words[rng.random_range(100..3000)];
        let text = if q % 2 == 0 { first.clone() } else { format!("{first} {}", words[rng.random_range(100..3000)]) };
        let topic = rng.random_range(0..TOPICS);
        let vector = near(&mut rng, &topics[topic], noise());

        let started = Instant::now();
        let by_words = store.search_documents(scope, &query(&text, 10)).await.unwrap();
        text_times.push(started.elapsed());
        text_found += by_words.items.len();

        let started = Instant::now();
        let by_meaning = store.similar_documents(scope, "bench", &vector, &query(&text, 10), 10).await.unwrap();
        semantic_times.push(started.elapsed());

        let started = Instant::now();
        let deep = store.search_documents(scope, &query(&text, 11)).await.unwrap().items;
        let similar = store.similar_documents(scope, "bench", &vector, &query(&text, 11), 11).await.unwrap();
        let fused = reciprocal_rank_fusion(vec![deep, similar], |hit: &DocumentHit| hit.id.as_uuid());
        hybrid_times.push(started.elapsed());
        std::hint::black_box(fused);

        let exact = exact_top(&corpus, &vector);
        let got: BTreeSet<DocumentId> = by_meaning.iter().map(|hit| hit.item.id).collect();
        recall_hits += exact.iter().filter(|id| got.contains(id)).count();
        recall_total += exact.len();
    }
    for times in [&mut text_times, &mut semantic_times, &mut hybrid_times] {
        times.sort();
    }
    let per_thousand = size().map(|bytes| bytes as f64 / (corpus.documents as f64 / 1000.0) / 1_048_576.0);
    let line = serde_json::json!({
        "bench": "search",
        "store": name,
        "documents": corpus.documents,
        "chunks": corpus.chunks,
        "readable_documents": corpus.readable_vectors.len(),
        "queries": queries,
        "text_p50_ms": percentile(&text_times, 0.5),
        "text_p99_ms": percentile(&text_times, 0.99),
        "text_results_per_query": text_found as f64 / queries as f64,
        "semantic_p50_ms": percentile(&semantic_times, 0.5),
        "semantic_p99_ms": percentile(&semantic_times, 0.99),
        "hybrid_p50_ms": percentile(&hybrid_times, 0.5),
        "hybrid_p99_ms": percentile(&hybrid_times, 0.99),
        "recall_at_10": recall_hits as f64 / recall_total.max(1) as f64,
        "first_text_search_s": warm_text.as_secs_f64(),
        "first_semantic_search_s": warm_semantic.as_secs_f64(),
        "index_mib_per_1000_documents": per_thousand,
    });
    println!("{line}");
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let meta = entry.metadata().unwrap();
            total += if meta.is_dir() { dir_size(&entry.path()) } else { meta.len() };
        }
    }
    total
}

fn main() {
    let documents = env_usize("SEARCH_DOCS", 100_000);
    let queries = env_usize("SEARCH_QUERIES", 200);
    let stores = std::env::var("SEARCH_STORES").unwrap_or_else(|_| "sqlite".into());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for name in stores.split(',') {
            match name {
                "sqlite" => {
                    let base = std::env::var("SEARCH_DIR").unwrap_or_else(|_| "/dev/shm".into());
                    let dir = tempfile::tempdir_in(base).unwrap();
                    let path = dir.path().join("aether.db");
                    let store = aether_store_sqlite::SqliteStore::open_and_migrate(&path).await.unwrap();
                    let folder = dir.path().to_owned();
                    measure("sqlite", Arc::new(store), documents, queries, move || Some(dir_size(&folder))).await;
                    if std::env::var_os("SEARCH_KEEP").is_some() {
                        eprintln!("search bench: kept {}", dir.keep().display());
                    }
                }
                "neo4j" => {
                    let config = aether_store_neo4j::Neo4jConfig {
                        uri: std::env::var("AETHER_TEST_NEO4J_URI").expect("AETHER_TEST_NEO4J_URI"),
                        user: "neo4j".into(),
                        password: std::env::var("AETHER_TEST_NEO4J_PASSWORD").unwrap_or_default(),
                        database: "neo4j".into(),
                        max_connections: env_usize("SEARCH_LOADERS", 8) + 4,
                    };
                    let store = aether_store_neo4j::Neo4jStore::connect(&config).await.unwrap();
                    store.migrate().await.unwrap();
                    let data = std::env::var("SEARCH_NEO4J_DATA").ok().map(std::path::PathBuf::from);
                    measure("neo4j", Arc::new(store), documents, queries, move || data.as_deref().map(dir_size)).await;
                }
                other => eprintln!("search bench: unknown store {other}"),
            }
        }
    });
}
