//! Full-text search over the issue index: SQLite's FTS5 (Porter stemming, BM25 with the title
//! weighted 4:1) and PostgreSQL's `tsvector` (title weight A, the rest B, `ts_rank_cd`), behind
//! one [`search`]. Both match any of the query's words, so an issue with more of them ranks
//! first; an empty query lists the most recently updated issues.

use crate::connect::{Database, Pools, with_connection};
use crate::error::{backend, unavailable};
use crate::issues::{parse, state_name};
use crate::schema::issues;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel_async::RunQueryDsl;
use preloop_core::store::{IssueHit, StoreError, StoredIssue, TextSearch, search_terms};

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

const SQLITE_SEARCH: &str = "SELECT i.id AS id, i.tracker_id AS tracker_id, i.body AS body, \
       -bm25(issues_fts, 4.0, 1.0) AS score \
     FROM issues_fts JOIN issues i ON i.seq = issues_fts.rowid \
     WHERE issues_fts MATCH ?1 AND i.organization_id = ?2 \
       AND (?3 IS NULL OR i.tracker_id = ?3) AND (?4 IS NULL OR i.project = ?4) \
       AND (?5 IS NULL OR i.state = ?5) \
     ORDER BY score DESC, i.updated_at DESC LIMIT ?6";

const POSTGRES_SEARCH: &str = "SELECT id, tracker_id, body, ts_rank_cd(search, q)::float8 AS score \
     FROM issues, to_tsquery('english', $1) q \
     WHERE organization_id = $2 AND search @@ q \
       AND ($3::text IS NULL OR tracker_id = $3) AND ($4::text IS NULL OR project = $4) \
       AND ($5::text IS NULL OR state = $5) \
     ORDER BY score DESC, updated_at DESC LIMIT $6";

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
    // Terms are runs of letters and digits only, so quoting them (FTS5) or joining them
    // (tsquery) cannot inject query syntax.
    let (sql, expression) = match &*database.pools {
        Pools::Sqlite(_) => {
            let quoted: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
            (SQLITE_SEARCH, quoted.join(" OR "))
        }
        Pools::Postgres(_) => (POSTGRES_SEARCH, terms.join(" | ")),
    };
    let query = diesel::sql_query(sql)
        .bind::<Text, _>(expression)
        .bind::<Text, _>(organization_id.to_owned())
        .bind::<Nullable<Text>, _>(search.tracker_id.clone())
        .bind::<Nullable<Text>, _>(search.project.clone())
        .bind::<Nullable<Text>, _>(search.state.map(state_name))
        .bind::<BigInt, _>(limit);
    let hits: Vec<TextHit> = match &*database.pools {
        Pools::Postgres(pool) => {
            let mut conn = pool.get().await.map_err(unavailable)?;
            query.load(&mut conn).await.map_err(backend)?
        }
        Pools::Sqlite(pool) => {
            let mut conn = pool.get().await.map_err(unavailable)?;
            query.load(&mut conn).await.map_err(backend)?
        }
    };
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
