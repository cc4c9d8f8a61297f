//! The issue index: issues synchronized from trackers, searched by full text (and, with
//! embeddings, by similarity).

use super::StoreError;
use crate::tracker::{Issue, IssueState};
use async_trait::async_trait;

/// Dimensions of issue embeddings (e.g. all-MiniLM-L6-v2 sentences).
pub const EMBEDDING_DIMENSIONS: usize = 384;

/// Restricts a similarity search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimilarityFilter {
    /// Only issues of this tracker.
    pub tracker_id: Option<String>,
    /// Only issues of this project.
    pub project: Option<String>,
    /// Only issues in this state.
    pub state: Option<IssueState>,
    /// Leave out this issue key (the issue being compared).
    pub exclude_key: Option<String>,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarIssue {
    /// The tracker the issue belongs to.
    pub tracker_id: String,
    /// The issue.
    pub issue: Issue,
    /// Cosine similarity to the query vector, from -1 to 1.
    pub similarity: f32,
}

/// An issue as the index keeps it: the store's own id, the tracker it came from, the issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIssue {
    /// The store's id of the issue (stable across updates; `issues/{id}` in the REST API).
    pub id: String,
    /// The tracker the issue belongs to.
    pub tracker_id: String,
    /// The issue.
    pub issue: Issue,
}

/// A full-text search over the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextSearch {
    /// The words to look for (any of them; issues with more of them, and in the title, rank
    /// first). Empty text lists the most recently updated issues.
    pub text: String,
    /// Only issues of this tracker.
    pub tracker_id: Option<String>,
    /// Only issues of this project.
    pub project: Option<String>,
    /// Only issues in this state.
    pub state: Option<IssueState>,
    /// At most this many hits.
    pub limit: usize,
}

/// A full-text hit.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueHit {
    /// The issue.
    pub stored: StoredIssue,
    /// Relevance, higher is better (comparable only within one search).
    pub score: f32,
}

/// The words of a search, as every backend matches them: lowercase runs of letters and digits,
/// at most 32 of them, without repeats.
pub fn search_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if !word.is_empty() && !terms.contains(&word) && terms.len() < 32 {
            terms.push(word);
        }
    }
    terms
}

/// The text the index searches besides the title: key, labels, assignees, status, priority
/// and body.
pub fn searchable_text(issue: &Issue) -> String {
    let mut parts = vec![issue.key.clone()];
    parts.extend(issue.labels.iter().cloned());
    parts.extend(issue.assignees.iter().cloned());
    parts.extend(issue.status.iter().cloned());
    parts.extend(issue.priority.iter().cloned());
    parts.push(issue.body.clone());
    parts.join("\n")
}

/// Issues synchronized from trackers: their full text searchable, with their embeddings.
#[async_trait]
pub trait IssueStore: Send + Sync {
    /// Inserts or replaces the issue `issue.key` of `tracker_id`, and answers its store id
    /// (kept across updates). `embedding`, when given, must have [`EMBEDDING_DIMENSIONS`]
    /// finite values; `None` keeps the stored embedding.
    async fn upsert_issue(
        &self,
        organization_id: &str,
        tracker_id: &str,
        issue: &Issue,
        embedding: Option<&[f32]>,
    ) -> Result<String, StoreError>;

    /// Inserts or replaces several issues of `tracker_id` at once (one transaction where the
    /// backend has them: a sync's page), keeping their embeddings; answers their store ids in
    /// order. Either every issue is stored or none.
    async fn upsert_issues(
        &self,
        organization_id: &str,
        tracker_id: &str,
        issues: &[Issue],
    ) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::with_capacity(issues.len());
        for issue in issues {
            ids.push(
                self.upsert_issue(organization_id, tracker_id, issue, None)
                    .await?,
            );
        }
        Ok(ids)
    }

    /// One issue by tracker and key.
    async fn get_issue(
        &self,
        organization_id: &str,
        tracker_id: &str,
        key: &str,
    ) -> Result<Option<StoredIssue>, StoreError>;

    /// One issue by its store id.
    async fn find_issue(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<StoredIssue>, StoreError>;

    /// Removes an issue from the index; whether it was there.
    async fn delete_issue(
        &self,
        organization_id: &str,
        tracker_id: &str,
        key: &str,
    ) -> Result<bool, StoreError>;

    /// Removes a tracker's issues from the index (of one project when given); how many.
    async fn delete_issues(
        &self,
        organization_id: &str,
        tracker_id: &str,
        project: Option<&str>,
    ) -> Result<u64, StoreError>;

    /// How many issues the index holds for the organization (of one tracker when given).
    async fn count_issues(
        &self,
        organization_id: &str,
        tracker_id: Option<&str>,
    ) -> Result<u64, StoreError>;

    /// Full-text search: issues matching any of [`search_terms`] of the text, best first.
    async fn search_text(
        &self,
        organization_id: &str,
        search: &TextSearch,
    ) -> Result<Vec<IssueHit>, StoreError>;

    /// The `k` issues with embeddings most similar (cosine) to `vector`, best first.
    async fn search_similar(
        &self,
        organization_id: &str,
        vector: &[f32],
        k: usize,
        filter: &SimilarityFilter,
    ) -> Result<Vec<SimilarIssue>, StoreError>;
}

/// Checks an embedding's dimension and values.
pub fn check_embedding(vector: &[f32]) -> Result<(), StoreError> {
    if vector.len() != EMBEDDING_DIMENSIONS {
        return Err(StoreError::Invalid(format!(
            "embeddings have {EMBEDDING_DIMENSIONS} dimensions, not {}",
            vector.len()
        )));
    }
    if !vector.iter().all(|v| v.is_finite()) {
        return Err(StoreError::Invalid(
            "embeddings must be finite numbers".to_owned(),
        ));
    }
    Ok(())
}

/// Cosine similarity of two vectors of equal length (0 when either is all zeros).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    cosine(a.iter().copied(), b.iter().copied())
}

/// Cosine similarity of two equally long sequences, for callers that decode values on the fly
/// (e.g. from stored bytes) instead of building vectors.
pub fn cosine(a: impl IntoIterator<Item = f32>, b: impl IntoIterator<Item = f32>) -> f32 {
    let (mut dot, mut norm_a, mut norm_b) = (0.0_f32, 0.0_f32, 0.0_f32);
    for (x, y) in a.into_iter().zip(b) {
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    let norms = (norm_a * norm_b).sqrt();
    if norms == 0.0 { 0.0 } else { dot / norms }
}

impl SimilarityFilter {
    /// Whether a stored issue passes the filter.
    pub fn admits(&self, tracker_id: &str, issue: &Issue) -> bool {
        self.tracker_id.as_deref().is_none_or(|t| t == tracker_id)
            && self.project.as_deref().is_none_or(|p| p == issue.project)
            && self.state.is_none_or(|s| s == issue.state)
            && self.exclude_key.as_deref().is_none_or(|k| k != issue.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_are_lowercase_words_without_repeats() {
        assert_eq!(
            search_terms("Login FAILS; login-page (500) — ß"),
            vec!["login", "fails", "page", "500", "ß"]
        );
        assert!(search_terms(" -- ").is_empty());
        assert_eq!(search_terms(&"w ".repeat(100)).len(), 1);
        let many: String = (0..100).map(|i| format!("w{i} ")).collect();
        assert_eq!(search_terms(&many).len(), 32);
    }
}
