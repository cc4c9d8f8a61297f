//! Full-text search over the issue index: SQLite's FTS5 (Porter stemming, BM25 with the title
//! weighted 4:1) and PostgreSQL's `tsvector` (title weight A, the rest B, `ts_rank_cd`), behind
//! one [`search`]. An issue matches when it has any of the query's words; issues with more of
//! them, and with them in the title, rank first. An empty query lists the most recently updated
//! issues.
//!
//! Ranking every match costs time in proportion to the matches, and a word found in half of
//! 100,000 issues makes 50,000 of them. So the query's words are first sorted by how many of the
//! organization's issues they occur in (counting stops at [`COMMON_MATCHES`]), as search
//! engines' "common terms" queries do:
//!
//! - words found nowhere are dropped;
//! - when some words are *rare* (fewer matches than [`COMMON_MATCHES`]), the candidates are the
//!   issues with a rare word, ranked exactly over all the query's words (a rare word is what
//!   the searcher is after; a common word alone says little about an issue);
//! - when every word is *common*, the candidates are the [`COMMON_MATCHES`] most recent matches
//!   (SQLite: most recently indexed; PostgreSQL: most recently updated), ranked exactly.
//!
//! Searches for rare words are therefore exact, and no search ranks more than a bounded number
//! of issues beyond those holding its rare words.

use crate::connect::{Database, Pools, with_connection};
use crate::error::backend;
use crate::issues::{parse, state_name};
use crate::schema::issues;
use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel_async::RunQueryDsl;
use preloop_core::store::{IssueHit, StoreError, StoredIssue, TextSearch, search_terms};

/// A word with at least this many matches among an organization's issues is common; it is
/// also how many of the most recent matches are ranked when every word of a query is common.
pub(crate) const COMMON_MATCHES: i64 = 2_000;

/// The SQL of one backend's searches. Every statement binds the match expression as `1`, the
/// organization and the filters (tracker, project, state) as `2` to `5`, and a count as `6`.
struct Statements {
    /// How many matches (stopping at `6`).
    count: &'static str,
    /// The rank-`6` match counted from the most recent (SQLite's window floor), if any.
    floor: Option<&'static str>,
    /// The best `6` matches. SQLite: of those at or above the row `7`; PostgreSQL: scored
    /// by the expression `7`, among the `8` most recently updated matches (all when null).
    rank: &'static str,
    /// How words join into "any of them".
    or: &'static str,
    /// How a word is quoted in an expression.
    quote: fn(&str) -> String,
}

// `CROSS JOIN` makes SQLite read the FTS index first: left to choose, its planner walks the
// organization's issues and probes the index once per issue (seconds at 100,000 issues).
const SQLITE: Statements = Statements {
    count: "SELECT count(*) AS n FROM (SELECT 1 FROM issues_fts CROSS JOIN issues i ON i.seq = issues_fts.rowid \
         WHERE issues_fts MATCH ?1 AND i.organization_id = ?2 AND (?3 IS NULL OR i.tracker_id = ?3) \
           AND (?4 IS NULL OR i.project = ?4) AND (?5 IS NULL OR i.state = ?5) LIMIT ?6)",
    floor: Some(
        "SELECT issues_fts.rowid AS n FROM issues_fts CROSS JOIN issues i ON i.seq = issues_fts.rowid \
         WHERE issues_fts MATCH ?1 AND i.organization_id = ?2 AND (?3 IS NULL OR i.tracker_id = ?3) \
           AND (?4 IS NULL OR i.project = ?4) AND (?5 IS NULL OR i.state = ?5) \
         ORDER BY issues_fts.rowid DESC LIMIT 1 OFFSET ?6",
    ),
    rank: "SELECT i.id AS id, i.tracker_id AS tracker_id, i.body AS body, \
           -bm25(issues_fts, 4.0, 1.0) AS score \
         FROM issues_fts CROSS JOIN issues i ON i.seq = issues_fts.rowid \
         WHERE issues_fts MATCH ?1 AND i.organization_id = ?2 AND (?3 IS NULL OR i.tracker_id = ?3) \
           AND (?4 IS NULL OR i.project = ?4) AND (?5 IS NULL OR i.state = ?5) \
           AND issues_fts.rowid >= ?7 \
         ORDER BY score DESC, i.updated_at DESC LIMIT ?6",
    or: " OR ",
    quote: |term| format!("\"{term}\""),
};

const POSTGRES: Statements = Statements {
    count: "SELECT count(*) AS n FROM (SELECT 1 FROM issues \
         WHERE search @@ to_tsquery('english', $1) AND organization_id = $2 \
           AND ($3::text IS NULL OR tracker_id = $3) AND ($4::text IS NULL OR project = $4) \
           AND ($5::text IS NULL OR state = $5) LIMIT $6) matches",
    floor: None,
    rank: "SELECT id, tracker_id, body, ts_rank_cd(search, to_tsquery('english', $7))::float8 AS score \
         FROM (SELECT id, tracker_id, body, search, updated_at FROM issues \
               WHERE search @@ to_tsquery('english', $1) AND organization_id = $2 \
                 AND ($3::text IS NULL OR tracker_id = $3) AND ($4::text IS NULL OR project = $4) \
                 AND ($5::text IS NULL OR state = $5) \
               ORDER BY updated_at DESC LIMIT $8) candidates \
         ORDER BY score DESC, updated_at DESC LIMIT $6",
    or: " | ",
    quote: |term| term.to_owned(),
};

impl Statements {
    /// Any of `terms`. Terms are runs of letters and digits only, so quoting them (FTS5) or
    /// joining them (tsquery) cannot inject query syntax.
    fn any(&self, terms: &[String]) -> String {
        let quoted: Vec<String> = terms.iter().map(|t| (self.quote)(t)).collect();
        format!("({})", quoted.join(self.or))
    }
}

#[derive(QueryableByName)]
struct TextHit {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    tracker_id: String,
    #[diesel(sql_type = Text)]
    body: String,
    #[diesel(sql_type = Double)]
    score: f64,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `sql` with the match expression, the organization and the search's filters bound.
fn filtered<'q, DB>(
    sql: &'static str,
    expression: String,
    organization_id: &str,
    search: &TextSearch,
) -> BoxedSqlQuery<'q, DB, SqlQuery>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Nullable<Text>>,
    String: ToSql<Text, DB>,
    Option<String>: ToSql<Nullable<Text>, DB>,
{
    diesel::sql_query(sql)
        .into_boxed::<DB>()
        .bind::<Text, _>(expression)
        .bind::<Text, _>(organization_id.to_owned())
        .bind::<Nullable<Text>, _>(search.tracker_id.clone())
        .bind::<Nullable<Text>, _>(search.project.clone())
        .bind::<Nullable<Text>, _>(search.state.map(|s| state_name(s).to_owned()))
}

/// Appends the `ranked` hits not in `hits` yet, up to `limit`, none scoring above the hits
/// before it (a later pass ranks candidates with fewer of the query's words).
fn append(hits: &mut Vec<TextHit>, ranked: Vec<TextHit>, limit: usize) {
    for mut hit in ranked {
        if hits.len() >= limit {
            break;
        }
        if hits.iter().any(|known| known.id == hit.id) {
            continue;
        }
        if let Some(last) = hits.last() {
            hit.score = hit.score.min(last.score);
        }
        hits.push(hit);
    }
}

/// Searches `organization_id`'s issues.
pub(crate) async fn search(
    database: &Database,
    organization_id: &str,
    search: &TextSearch,
) -> Result<Vec<IssueHit>, StoreError> {
    let limit = i64::try_from(search.limit).unwrap_or(i64::MAX);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let terms = search_terms(&search.text);
    if terms.is_empty() {
        return recent(database, organization_id, search, limit).await;
    }
    let sql = match &*database.pools {
        Pools::Sqlite(_) => &SQLITE,
        Pools::Postgres(_) => &POSTGRES,
    };
    let hits: Vec<TextHit> = with_connection!(database, |conn| {
        let (mut rare, mut common) = (Vec::new(), Vec::new());
        for term in terms {
            let matches: Number = filtered(
                sql.count,
                sql.any(std::slice::from_ref(&term)),
                organization_id,
                search,
            )
            .bind::<BigInt, _>(COMMON_MATCHES)
            .get_result(conn)
            .await
            .map_err(backend)?;
            match matches.n {
                0 => {}
                n if n < COMMON_MATCHES => rare.push(term),
                _ => common.push(term),
            }
        }
        let every = [rare.as_slice(), common.as_slice()].concat();
        // First the issues with a rare word, then (to fill the page) the most recent common
        // matches.
        let passes = [(false, &rare), (true, &common)];
        let mut hits: Vec<TextHit> = Vec::new();
        for (windowed, words) in passes {
            if words.is_empty() || hits.len() >= search.limit {
                continue;
            }
            let candidates = sql.any(words);
            let rank = match sql.floor {
                // FTS5 scores by the expression it matches: "a rare word, and any word" has
                // the rare words' issues as its matches and every word in their scores.
                Some(floor_sql) => {
                    let expression = if windowed || common.is_empty() {
                        candidates
                    } else {
                        format!("{candidates} AND {}", sql.any(&every))
                    };
                    let floor = if windowed {
                        let floor: Option<Number> =
                            filtered(floor_sql, expression.clone(), organization_id, search)
                                .bind::<BigInt, _>(COMMON_MATCHES - 1)
                                .get_result(conn)
                                .await
                                .optional()
                                .map_err(backend)?;
                        floor.map(|f| f.n)
                    } else {
                        None
                    };
                    filtered(sql.rank, expression, organization_id, search)
                        .bind::<BigInt, _>(limit)
                        .bind::<BigInt, _>(floor.unwrap_or(i64::MIN))
                }
                None => filtered(sql.rank, candidates, organization_id, search)
                    .bind::<BigInt, _>(limit)
                    .bind::<Text, _>(sql.any(&every))
                    .bind::<Nullable<BigInt>, _>(windowed.then_some(COMMON_MATCHES)),
            };
            let ranked: Vec<TextHit> = rank.load(conn).await.map_err(backend)?;
            append(&mut hits, ranked, search.limit);
        }
        hits
    });
    hits.into_iter()
        .map(|hit| {
            Ok(IssueHit {
                stored: StoredIssue {
                    id: hit.id,
                    tracker_id: hit.tracker_id,
                    issue: parse(&hit.body)?,
                },
                score: hit.score as f32,
            })
        })
        .collect()
}

/// The most recently updated issues passing the search's filters (score 0).
async fn recent(
    database: &Database,
    organization_id: &str,
    search: &TextSearch,
    limit: i64,
) -> Result<Vec<IssueHit>, StoreError> {
    let rows: Vec<(String, String, String)> = with_connection!(database, |conn| {
        let mut query = issues::table
            .filter(issues::organization_id.eq(organization_id))
            .select((issues::id, issues::tracker_id, issues::body))
            .order(issues::updated_at.desc())
            .limit(limit)
            .into_boxed();
        if let Some(tracker) = &search.tracker_id {
            query = query.filter(issues::tracker_id.eq(tracker));
        }
        if let Some(project) = &search.project {
            query = query.filter(issues::project.eq(project));
        }
        if let Some(state) = search.state {
            query = query.filter(issues::state.eq(state_name(state)));
        }
        query.load(conn).await.map_err(backend)?
    });
    rows.into_iter()
        .map(|(id, tracker_id, body)| {
            Ok(IssueHit {
                stored: StoredIssue {
                    id,
                    tracker_id,
                    issue: parse(&body)?,
                },
                score: 0.0,
            })
        })
        .collect()
}
