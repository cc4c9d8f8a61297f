//! Issues and their embeddings: pgvector with an HNSW index on PostgreSQL, little-endian f32
//! blobs scanned exactly on SQLite, behind one `search_similar`.

use crate::connect::{Database, Pools, SqliteConn, with_connection};
use crate::error::{TxError, backend, corrupt, unavailable};
use crate::schema::{issues, sqlite_issue_vectors as vectors};
use crate::time::to_micros;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{Double, Nullable, Text};
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use preloop_core::store::{
    IssueHit, IssueStore, SimilarIssue, SimilarityFilter, StoreError, StoredIssue, TextSearch,
    check_embedding, cosine, searchable_text,
};
use preloop_core::tracker::{Issue, IssueState};
use std::future::Future;

pub(crate) fn state_name(state: IssueState) -> &'static str {
    match state {
        IssueState::Open => "open",
        IssueState::Closed => "closed",
    }
}

pub(crate) fn parse(body: &str) -> Result<Issue, StoreError> {
    serde_json::from_str(body).map_err(|e| corrupt("issue", e))
}

/// Writes an issue's embedding in the backend's representation.
trait EmbeddingColumn {
    fn store_embedding(
        &mut self,
        organization_id: &str,
        tracker_id: &str,
        key: &str,
        embedding: &[f32],
    ) -> impl Future<Output = diesel::QueryResult<()>> + Send;
}

/// pgvector's text form, `[0.1,0.2,...]` (shortest round-trip digits).
fn vector_text(vector: &[f32]) -> String {
    let items: Vec<String> = vector.iter().map(f32::to_string).collect();
    format!("[{}]", items.join(","))
}

impl EmbeddingColumn for AsyncPgConnection {
    fn store_embedding(
        &mut self,
        organization_id: &str,
        tracker_id: &str,
        key: &str,
        embedding: &[f32],
    ) -> impl Future<Output = diesel::QueryResult<()>> + Send {
        let query = diesel::sql_query(
            "UPDATE issues SET embedding = $1::vector WHERE organization_id = $2 AND tracker_id = $3 AND key = $4",
        )
        .bind::<Text, _>(vector_text(embedding))
        .bind::<Text, _>(organization_id.to_owned())
        .bind::<Text, _>(tracker_id.to_owned())
        .bind::<Text, _>(key.to_owned());
        async move { query.execute(self).await.map(drop) }
    }
}

impl EmbeddingColumn for SqliteConn {
    fn store_embedding(
        &mut self,
        organization_id: &str,
        tracker_id: &str,
        key: &str,
        embedding: &[f32],
    ) -> impl Future<Output = diesel::QueryResult<()>> + Send {
        let bytes: Vec<u8> = embedding.iter().flat_map(|v| v.to_le_bytes()).collect();
        let query = diesel::update(
            vectors::table
                .filter(vectors::organization_id.eq(organization_id.to_owned()))
                .filter(vectors::tracker_id.eq(tracker_id.to_owned()))
                .filter(vectors::key.eq(key.to_owned())),
        )
        .set(vectors::embedding.eq(bytes));
        async move { query.execute(self).await.map(drop) }
    }
}

#[derive(QueryableByName)]
struct PgHit {
    #[diesel(sql_type = Text)]
    tracker_id: String,
    #[diesel(sql_type = Text)]
    body: String,
    #[diesel(sql_type = Double)]
    similarity: f64,
}

/// Candidates HNSW examines per query (`hnsw.ef_search`): 10 per requested hit (at least 100),
/// so filters applied after the index rarely leave fewer than `k` hits; bounded so one query
/// stays cheap. See the load tool for recall and latency on clustered and on random vectors.
fn ef_search(k: usize) -> usize {
    k.saturating_mul(10).clamp(100, 1000)
}

async fn search_postgres(
    conn: &mut AsyncPgConnection,
    organization_id: &str,
    vector: &[f32],
    k: usize,
    filter: &SimilarityFilter,
) -> Result<Vec<SimilarIssue>, StoreError> {
    let limit = i64::try_from(k).unwrap_or(i64::MAX);
    let query = diesel::sql_query(
        "SELECT tracker_id, body, 1 - (embedding <=> $1::vector) AS similarity FROM issues \
         WHERE organization_id = $2 AND embedding IS NOT NULL \
           AND ($3::text IS NULL OR tracker_id = $3) AND ($4::text IS NULL OR project = $4) \
           AND ($5::text IS NULL OR state = $5) AND ($6::text IS NULL OR key <> $6) \
         ORDER BY embedding <=> $1::vector LIMIT $7",
    )
    .bind::<Text, _>(vector_text(vector))
    .bind::<Text, _>(organization_id.to_owned())
    .bind::<Nullable<Text>, _>(filter.tracker_id.clone())
    .bind::<Nullable<Text>, _>(filter.project.clone())
    .bind::<Nullable<Text>, _>(filter.state.map(state_name))
    .bind::<Nullable<Text>, _>(filter.exclude_key.clone())
    .bind::<diesel::sql_types::BigInt, _>(limit);
    let hits: Vec<PgHit> = conn
        .transaction::<_, TxError, _>(async |conn| {
            conn.batch_execute(&format!("SET LOCAL hnsw.ef_search = {}", ef_search(k)))
                .await?;
            Ok(query.load(conn).await?)
        })
        .await
        .map_err(StoreError::from)?;
    hits.into_iter()
        .map(|hit| {
            Ok(SimilarIssue {
                tracker_id: hit.tracker_id,
                issue: parse(&hit.body)?,
                similarity: hit.similarity as f32,
            })
        })
        .collect()
}

/// Cosine similarity of `query` and an embedding stored as little-endian f32 bytes, decoded on
/// the fly rather than into a vector.
fn blob_similarity(query: &[f32], blob: &[u8]) -> f32 {
    let stored = blob
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    cosine(query.iter().copied(), stored)
}

/// Exact search: scores every candidate's embedding (ids and blobs only), then loads the bodies
/// of the best `k`.
async fn search_sqlite(
    conn: &mut SqliteConn,
    organization_id: &str,
    vector: &[f32],
    k: usize,
    filter: &SimilarityFilter,
) -> Result<Vec<SimilarIssue>, StoreError> {
    let mut query = vectors::table
        .filter(vectors::organization_id.eq(organization_id))
        .filter(vectors::embedding.is_not_null())
        .select((vectors::id, vectors::embedding))
        .into_boxed();
    if let Some(tracker) = &filter.tracker_id {
        query = query.filter(vectors::tracker_id.eq(tracker));
    }
    if let Some(project) = &filter.project {
        query = query.filter(vectors::project.eq(project));
    }
    if let Some(state) = filter.state {
        query = query.filter(vectors::state.eq(state_name(state)));
    }
    if let Some(key) = &filter.exclude_key {
        query = query.filter(vectors::key.ne(key));
    }
    let rows: Vec<(String, Option<Vec<u8>>)> = query.load(conn).await.map_err(backend)?;
    let mut scored: Vec<(f32, String)> = rows
        .into_iter()
        .filter_map(|(id, blob)| Some((blob_similarity(vector, &blob?), id)))
        .collect();
    let by_similarity = |a: &(f32, String), b: &(f32, String)| b.0.total_cmp(&a.0);
    if scored.len() > k {
        scored.select_nth_unstable_by(k - 1, by_similarity);
        scored.truncate(k);
    }
    scored.sort_by(by_similarity);
    let ids: Vec<&String> = scored.iter().map(|(_, id)| id).collect();
    let bodies: std::collections::HashMap<String, (String, String)> = vectors::table
        .filter(vectors::id.eq_any(ids))
        .select((vectors::id, vectors::tracker_id, vectors::body))
        .load::<(String, String, String)>(conn)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|(id, tracker, body)| (id, (tracker, body)))
        .collect();
    scored
        .into_iter()
        .filter_map(|(similarity, id)| {
            bodies
                .get(&id)
                .map(|(tracker, body)| (similarity, tracker, body))
        })
        .map(|(similarity, tracker, body)| {
            Ok(SimilarIssue {
                tracker_id: tracker.clone(),
                issue: parse(body)?,
                similarity,
            })
        })
        .collect()
}

/// An issue row: its store id, tracker and body.
type IssueRow = (String, String, String);

fn stored((id, tracker_id, body): IssueRow) -> Result<StoredIssue, StoreError> {
    Ok(StoredIssue {
        id,
        tracker_id,
        issue: parse(&body)?,
    })
}

/// How one issue is named: by its tracker and key, or by its store id.
enum Lookup<'a> {
    Key { tracker_id: &'a str, key: &'a str },
    Id(&'a str),
}

impl Database {
    /// The organization's issue `lookup` names.
    async fn issue_where(
        &self,
        organization_id: &str,
        lookup: Lookup<'_>,
    ) -> Result<Option<StoredIssue>, StoreError> {
        let row: Option<IssueRow> = with_connection!(self, |conn| {
            let mut query = issues::table
                .filter(issues::organization_id.eq(organization_id))
                .select((issues::id, issues::tracker_id, issues::body))
                .into_boxed();
            query = match lookup {
                Lookup::Key { tracker_id, key } => query
                    .filter(issues::tracker_id.eq(tracker_id))
                    .filter(issues::key.eq(key)),
                Lookup::Id(id) => query.filter(issues::id.eq(id)),
            };
            query.first(conn).await.optional().map_err(backend)?
        });
        row.map(stored).transpose()
    }

    /// Inserts or replaces `issues` (each with its embedding, or `None` to keep the stored
    /// one) in one transaction; their store ids in order.
    async fn upsert_batch(
        &self,
        organization_id: &str,
        tracker_id: &str,
        issues: &[(&Issue, Option<&[f32]>)],
    ) -> Result<Vec<String>, StoreError> {
        let mut rows = Vec::with_capacity(issues.len());
        for (issue, embedding) in issues {
            if let Some(vector) = embedding {
                check_embedding(vector)?;
            }
            let body =
                serde_json::to_string(issue).map_err(|e| StoreError::Backend(e.to_string()))?;
            rows.push((*issue, *embedding, body, searchable_text(issue)));
        }
        with_connection!(self, |conn| {
            conn.transaction::<_, TxError, _>(async |conn| {
                let mut ids = Vec::with_capacity(rows.len());
                for (issue, embedding, body, search_text) in &rows {
                    let id: String = diesel::insert_into(issues::table)
                        .values((
                            issues::id.eq(uuid::Uuid::new_v4().to_string()),
                            issues::organization_id.eq(organization_id),
                            issues::tracker_id.eq(tracker_id),
                            issues::key.eq(&issue.key),
                            issues::project.eq(&issue.project),
                            issues::state.eq(state_name(issue.state)),
                            issues::updated_at.eq(to_micros(issue.updated_at)),
                            issues::body.eq(body),
                            issues::title.eq(&issue.title),
                            issues::search_text.eq(search_text),
                        ))
                        .on_conflict((issues::organization_id, issues::tracker_id, issues::key))
                        .do_update()
                        .set((
                            issues::project.eq(excluded(issues::project)),
                            issues::state.eq(excluded(issues::state)),
                            issues::updated_at.eq(excluded(issues::updated_at)),
                            issues::body.eq(excluded(issues::body)),
                            issues::title.eq(excluded(issues::title)),
                            issues::search_text.eq(excluded(issues::search_text)),
                        ))
                        .returning(issues::id)
                        .get_result(conn)
                        .await?;
                    if let Some(vector) = embedding {
                        conn.store_embedding(organization_id, tracker_id, &issue.key, vector)
                            .await?;
                    }
                    ids.push(id);
                }
                Ok(ids)
            })
            .await
            .map_err(StoreError::from)
        })
    }
}

#[async_trait]
impl IssueStore for Database {
    async fn upsert_issue(
        &self,
        organization_id: &str,
        tracker_id: &str,
        issue: &Issue,
        embedding: Option<&[f32]>,
    ) -> Result<String, StoreError> {
        let ids = self
            .upsert_batch(organization_id, tracker_id, &[(issue, embedding)])
            .await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| StoreError::Backend("an upsert answered no id".to_owned()))
    }

    async fn upsert_issues(
        &self,
        organization_id: &str,
        tracker_id: &str,
        issues: &[Issue],
    ) -> Result<Vec<String>, StoreError> {
        let batch: Vec<(&Issue, Option<&[f32]>)> = issues.iter().map(|i| (i, None)).collect();
        self.upsert_batch(organization_id, tracker_id, &batch).await
    }

    async fn get_issue(
        &self,
        organization_id: &str,
        tracker_id: &str,
        key: &str,
    ) -> Result<Option<StoredIssue>, StoreError> {
        self.issue_where(organization_id, Lookup::Key { tracker_id, key })
            .await
    }

    async fn find_issue(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<StoredIssue>, StoreError> {
        self.issue_where(organization_id, Lookup::Id(id)).await
    }

    async fn delete_issue(
        &self,
        organization_id: &str,
        tracker_id: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        let deleted = with_connection!(self, |conn| {
            diesel::delete(
                issues::table
                    .filter(issues::organization_id.eq(organization_id))
                    .filter(issues::tracker_id.eq(tracker_id))
                    .filter(issues::key.eq(key)),
            )
            .execute(conn)
            .await
            .map_err(backend)?
        });
        Ok(deleted > 0)
    }

    async fn delete_issues(
        &self,
        organization_id: &str,
        tracker_id: &str,
        project: Option<&str>,
    ) -> Result<u64, StoreError> {
        let deleted = with_connection!(self, |conn| {
            let mut query = diesel::delete(issues::table)
                .filter(issues::organization_id.eq(organization_id))
                .filter(issues::tracker_id.eq(tracker_id))
                .into_boxed();
            if let Some(project) = project {
                query = query.filter(issues::project.eq(project));
            }
            query.execute(conn).await.map_err(backend)?
        });
        Ok(deleted as u64)
    }

    async fn count_issues(
        &self,
        organization_id: &str,
        tracker_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let count: i64 = with_connection!(self, |conn| {
            let mut query = issues::table
                .filter(issues::organization_id.eq(organization_id))
                .count()
                .into_boxed();
            if let Some(tracker) = tracker_id {
                query = query.filter(issues::tracker_id.eq(tracker));
            }
            query.get_result(conn).await.map_err(backend)?
        });
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn search_text(
        &self,
        organization_id: &str,
        search: &TextSearch,
    ) -> Result<Vec<IssueHit>, StoreError> {
        crate::issue_search::search(self, organization_id, search).await
    }

    async fn search_similar(
        &self,
        organization_id: &str,
        vector: &[f32],
        k: usize,
        filter: &SimilarityFilter,
    ) -> Result<Vec<SimilarIssue>, StoreError> {
        check_embedding(vector)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        match &*self.pools {
            Pools::Postgres(pool) => {
                let mut conn = pool.get().await.map_err(unavailable)?;
                search_postgres(&mut conn, organization_id, vector, k, filter).await
            }
            Pools::Sqlite(pool) => {
                let mut conn = pool.get().await.map_err(unavailable)?;
                search_sqlite(&mut conn, organization_id, vector, k, filter).await
            }
        }
    }
}
