//! Full-text search load tool: `search_text` over 100,000 issues on SQLite (FTS5) and (when
//! `PRELOOP_TEST_DATABASE_URL` is set) PostgreSQL (`tsvector`), printed in one table.
//!
//! ```text
//! scripts/test-postgres cargo bench -p preloop-store --bench text_search
//! ```
//!
//! Titles and bodies are drawn (seeded) from a 50,000-word vocabulary with Zipf frequencies,
//! as words are in real text: the commonest words occur in most issues, the rarest in a
//! handful. Queries of 1, 2 and 4 words, all common or all rare, limit 10; p50 and p99 of each.
//! Set `STORE_LOAD_ISSUES` to change the number of issues (default 100000).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a load tool fails loudly"
)]

mod support;

use chrono::{TimeDelta, TimeZone, Utc};
use diesel_async::SimpleAsyncConnection;
use preloop_core::store::{IssueStore, TextSearch};
use preloop_core::tracker::{Issue, IssueState};
use preloop_store::{Backend, Database};
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const ORGANIZATION: &str = "acme";
const VOCABULARY: usize = 50_000;
const QUERIES: usize = 100;
const WARM_UP: usize = 20;
/// Words among the commonest this many are "common" in queries.
const COMMON_RANKS: usize = 20;
/// Words in at most this many issues are "rare" in queries.
const RARE_ISSUES: u32 = 20;

/// Real words of issue text, the commonest of the vocabulary (no stop words: PostgreSQL's
/// English configuration drops those, FTS5 does not, and no search is made of them).
const WORDS: [&str; 60] = [
    "error",
    "fails",
    "login",
    "page",
    "user",
    "request",
    "server",
    "timeout",
    "crash",
    "api",
    "database",
    "slow",
    "button",
    "update",
    "version",
    "release",
    "config",
    "token",
    "upload",
    "export",
    "import",
    "search",
    "report",
    "billing",
    "invoice",
    "payment",
    "email",
    "webhook",
    "sync",
    "cache",
    "memory",
    "cpu",
    "latency",
    "deploy",
    "rollback",
    "migration",
    "schema",
    "index",
    "query",
    "permission",
    "role",
    "admin",
    "session",
    "cookie",
    "redirect",
    "mobile",
    "browser",
    "firefox",
    "safari",
    "android",
    "ios",
    "dashboard",
    "chart",
    "filter",
    "sort",
    "pagination",
    "notification",
    "retry",
    "queue",
    "worker",
];

/// Syllables of the invented words that make up the vocabulary's long tail.
const CONSONANTS: &[u8] = b"bcdfgklmnprstvz";
const VOWELS: &[u8] = b"aiou";

const LABELS: [&str; 6] = [
    "bug",
    "enhancement",
    "documentation",
    "question",
    "regression",
    "ux",
];

/// The vocabulary, by rank, and its cumulative Zipf–Mandelbrot weights.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new(rng: &mut SmallRng) -> Self {
        let mut words: Vec<String> = WORDS.iter().map(|w| (*w).to_owned()).collect();
        let mut seen: HashSet<String> = words.iter().cloned().collect();
        while words.len() < VOCABULARY {
            let syllables = rng.random_range(2..=4);
            let word: String = (0..syllables)
                .flat_map(|_| {
                    [
                        *CONSONANTS.choose(rng).unwrap() as char,
                        *VOWELS.choose(rng).unwrap() as char,
                    ]
                })
                .collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|rank| {
                total += 1.0 / (rank as f64 + 2.7);
                total
            })
            .collect();
        Self { words, cumulative }
    }

    /// A word's rank, drawn by frequency.
    fn draw(&self, rng: &mut SmallRng) -> usize {
        let total = self.cumulative[self.cumulative.len() - 1];
        let x = rng.random_range(0.0..total);
        self.cumulative.partition_point(|&c| c <= x)
    }
}

/// The generated issues and how many issues each word occurs in.
struct Corpus {
    issues: Vec<Issue>,
    issues_with: Vec<u32>,
}

impl Corpus {
    fn new(vocabulary: &Vocabulary, rng: &mut SmallRng, count: usize) -> Self {
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap();
        let mut issues_with = vec![0_u32; vocabulary.words.len()];
        let issues = (0..count)
            .map(|i| {
                let mut ranks = HashSet::new();
                let mut text = |rng: &mut SmallRng, words: usize| {
                    let mut out = String::new();
                    for k in 0..words {
                        let rank = vocabulary.draw(rng);
                        ranks.insert(rank);
                        if k > 0 {
                            out.push_str(if k % 12 == 0 { ". " } else { " " });
                        }
                        out.push_str(&vocabulary.words[rank]);
                    }
                    out
                };
                let title_words = rng.random_range(4..=10);
                let title = text(rng, title_words);
                let body_words = rng.random_range(20..=140);
                let body = text(rng, body_words);
                for rank in ranks {
                    issues_with[rank] += 1;
                }
                let updated = start + TimeDelta::minutes(i64::try_from(i).unwrap());
                Issue {
                    id: i.to_string(),
                    key: format!("LOAD-{i}"),
                    project: format!("p{}", i % 10),
                    title,
                    body,
                    state: if i.is_multiple_of(3) {
                        IssueState::Closed
                    } else {
                        IssueState::Open
                    },
                    status: None,
                    labels: LABELS
                        .choose_multiple(rng, i % 3)
                        .map(|l| (*l).to_owned())
                        .collect(),
                    assignees: vec![],
                    author: None,
                    priority: None,
                    url: None,
                    created_at: updated,
                    updated_at: updated,
                }
            })
            .collect();
        Self {
            issues,
            issues_with,
        }
    }
}

/// A kind of query: its words' count and whether they are common or rare.
struct QueryClass {
    name: String,
    queries: Vec<String>,
    /// The median share of issues its words occur in.
    median_share: f64,
}

fn query_classes(vocabulary: &Vocabulary, corpus: &Corpus, rng: &mut SmallRng) -> Vec<QueryClass> {
    let common: Vec<usize> = (0..COMMON_RANKS).collect();
    let rare: Vec<usize> = (0..vocabulary.words.len())
        .filter(|&r| (1..=RARE_ISSUES).contains(&corpus.issues_with[r]))
        .collect();
    assert!(
        rare.len() >= 4,
        "too few rare words: raise STORE_LOAD_ISSUES"
    );
    let mut classes = Vec::new();
    for words in [1, 2, 4] {
        for (kind, pool) in [("common", &common), ("rare", &rare)] {
            let mut shares = Vec::new();
            let queries =
                (0..QUERIES)
                    .map(|_| {
                        let picked: Vec<&usize> = pool.choose_multiple(rng, words).collect();
                        shares.extend(picked.iter().map(|&&r| {
                            f64::from(corpus.issues_with[r]) / corpus.issues.len() as f64
                        }));
                        let text: Vec<&str> = picked
                            .iter()
                            .map(|&&r| vocabulary.words[r].as_str())
                            .collect();
                        text.join(" ")
                    })
                    .collect();
            shares.sort_by(f64::total_cmp);
            classes.push(QueryClass {
                name: format!("{words} {kind} word{}", if words == 1 { "" } else { "s" }),
                queries,
                median_share: shares[shares.len() / 2],
            });
        }
    }
    classes
}

/// One backend's figures.
struct Measured {
    label: &'static str,
    insert: Duration,
    /// p50 and p99 per query class.
    latencies: Vec<(Duration, Duration)>,
}

async fn search(db: &Database, text: &str) -> Duration {
    let search = TextSearch {
        text: text.to_owned(),
        limit: 10,
        ..TextSearch::default()
    };
    let started = Instant::now();
    let hits = db.search_text(ORGANIZATION, &search).await.unwrap();
    let elapsed = started.elapsed();
    assert!(!hits.is_empty(), "{text:?} occurs in the corpus");
    elapsed
}

async fn measure(
    label: &'static str,
    db: &Database,
    corpus: &Corpus,
    classes: &[QueryClass],
) -> Measured {
    println!("{label}: inserting {} issues ...", corpus.issues.len());
    let started = Instant::now();
    for issue in &corpus.issues {
        db.upsert_issue(ORGANIZATION, "github", issue, None)
            .await
            .unwrap();
    }
    let insert = started.elapsed();
    if db.backend() == Backend::Postgres {
        // What autovacuum does soon after a bulk load: fold the GIN index's pending list
        // into the index and refresh the planner's statistics.
        let vacuum = Instant::now();
        let mut conn = support::raw_postgres(db).await;
        conn.batch_execute("VACUUM ANALYZE issues").await.unwrap();
        println!(
            "  (VACUUM ANALYZE after the load: {:.1} s, not counted in insert time)",
            vacuum.elapsed().as_secs_f64()
        );
    }
    for class in classes {
        for text in class.queries.iter().take(WARM_UP) {
            search(db, text).await;
        }
    }
    let mut latencies = Vec::new();
    for class in classes {
        let mut times = Vec::new();
        for text in &class.queries {
            times.push(search(db, text).await);
        }
        times.sort();
        latencies.push((
            support::percentile(&times, 0.5),
            support::percentile(&times, 0.99),
        ));
    }
    Measured {
        label,
        insert,
        latencies,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_table(count: usize, classes: &[QueryClass], results: &[Measured]) {
    println!();
    println!(
        "search_text over {count} issues, limit 10, {QUERIES} queries per row (after {WARM_UP} warm-up queries per row), latency in ms:"
    );
    let mut header = format!("{:<16} {:>10}", "query", "% issues");
    for r in results {
        header.push_str(&format!("  | {:<28}", r.label));
    }
    println!("{}", header.trim_end());
    let mut subheader = format!("{:<16} {:>10}", "", "per word");
    for _ in results {
        subheader.push_str(&format!("  | {:>9} {:>9}{:>10}", "p50", "p99", ""));
    }
    println!("{}", subheader.trim_end());
    for (i, class) in classes.iter().enumerate() {
        let mut line = format!("{:<16} {:>9.2}%", class.name, 100.0 * class.median_share);
        for r in results {
            let (p50, p99) = r.latencies[i];
            line.push_str(&format!("  | {:>9.2} {:>9.2}{:>10}", ms(p50), ms(p99), ""));
        }
        println!("{}", line.trim_end());
    }
    let mut insert = format!("{:<27}", "insert (one upsert each)");
    for r in results {
        insert.push_str(&format!(
            "  | {:>7.1} s, {:>6.0} issues/s{:>3}",
            r.insert.as_secs_f64(),
            count as f64 / r.insert.as_secs_f64(),
            ""
        ));
    }
    println!("{}", insert.trim_end());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let count: usize = std::env::var("STORE_LOAD_ISSUES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let mut rng = SmallRng::seed_from_u64(11);
        let vocabulary = Vocabulary::new(&mut rng);
        let corpus = Corpus::new(&vocabulary, &mut rng, count);
        let classes = query_classes(&vocabulary, &corpus, &mut rng);
        let words: usize = corpus
            .issues
            .iter()
            .map(|i| i.title.split(' ').count() + i.body.split(' ').count())
            .sum();
        println!(
            "data: {count} issues, {:.0} words each on average, from {VOCABULARY} words with Zipf frequencies",
            words as f64 / count as f64
        );

        let mut results = Vec::new();
        let (sqlite, dir) = support::sqlite().await;
        results.push(measure(support::SQLITE, &sqlite, &corpus, &classes).await);
        drop(sqlite);
        support::remove(&dir);
        if let Some(postgres) = support::postgres().await {
            results.push(measure(support::POSTGRES, &postgres, &corpus, &classes).await);
        }
        print_table(count, &classes, &results);
    });
}
