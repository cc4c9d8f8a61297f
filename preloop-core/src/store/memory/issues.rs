//! The memory store's issue index (full text by stems, embeddings compared exactly) and its
//! leases.

use super::MemoryStore;
use crate::store::{
    IssueHit, IssueStore, LeaseStore, SimilarIssue, SimilarityFilter, StoreError, StoredIssue,
    TextSearch, check_embedding, cosine_similarity, search_terms, searchable_text,
};
use crate::tracker::Issue;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A rough English stem (the databases use Porter's): common suffixes off longer words.
fn stem(word: &str) -> &str {
    ["ing", "ed", "es", "s"]
        .iter()
        .find_map(|suffix| {
            word.strip_suffix(suffix)
                .filter(|rest| rest.chars().count() >= 3)
        })
        .unwrap_or(word)
}

/// An issue in the index: its store id, the issue, its embedding.
#[derive(Debug, Clone)]
pub(super) struct IndexedIssue {
    id: String,
    issue: Issue,
    embedding: Option<Vec<f32>>,
}

impl IndexedIssue {
    fn stored(&self, tracker_id: &str) -> StoredIssue {
        StoredIssue {
            id: self.id.clone(),
            tracker_id: tracker_id.to_owned(),
            issue: self.issue.clone(),
        }
    }

    /// Occurrences of the terms' stems, the title's counting double (0: no term matches).
    fn text_score(&self, terms: &[String]) -> f32 {
        let stems = |text: &str| -> Vec<String> {
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(|w| stem(&w.to_lowercase()).to_owned())
                .collect()
        };
        let title = stems(&self.issue.title);
        let text = stems(&searchable_text(&self.issue));
        let count = |words: &[String], term: &str| words.iter().filter(|w| *w == term).count();
        terms
            .iter()
            .map(|term| {
                let term = stem(term);
                (2 * count(&title, term) + count(&text, term)) as f32
            })
            .sum()
    }
}

#[async_trait]
impl IssueStore for MemoryStore {
    async fn upsert_issue(
        &self,
        organization_id: &str,
        tracker_id: &str,
        issue: &Issue,
        embedding: Option<&[f32]>,
    ) -> Result<String, StoreError> {
        if let Some(vector) = embedding {
            check_embedding(vector)?;
        }
        let key = (
            organization_id.to_owned(),
            tracker_id.to_owned(),
            issue.key.clone(),
        );
        let mut state = self.state();
        let kept = state.issues.remove(&key);
        let id = kept
            .as_ref()
            .map(|k| k.id.clone())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        let embedding = embedding
            .map(<[f32]>::to_vec)
            .or(kept.and_then(|k| k.embedding));
        state.issues.insert(
            key,
            IndexedIssue {
                id: id.clone(),
                issue: issue.clone(),
                embedding,
            },
        );
        Ok(id)
    }

    async fn get_issue(
        &self,
        organization_id: &str,
        tracker_id: &str,
        key: &str,
    ) -> Result<Option<StoredIssue>, StoreError> {
        let key = (
            organization_id.to_owned(),
            tracker_id.to_owned(),
            key.to_owned(),
        );
        Ok(self
            .state()
            .issues
            .get(&key)
            .map(|indexed| indexed.stored(tracker_id)))
    }

    async fn find_issue(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<StoredIssue>, StoreError> {
        Ok(self
            .state()
            .issues
            .iter()
            .find(|((org, _, _), indexed)| org == organization_id && indexed.id == id)
            .map(|((_, tracker, _), indexed)| indexed.stored(tracker)))
    }

    async fn delete_issue(
        &self,
        organization_id: &str,
        tracker_id: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        let key = (
            organization_id.to_owned(),
            tracker_id.to_owned(),
            key.to_owned(),
        );
        Ok(self.state().issues.remove(&key).is_some())
    }

    async fn delete_issues(
        &self,
        organization_id: &str,
        tracker_id: &str,
        project: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut state = self.state();
        let before = state.issues.len();
        state.issues.retain(|(org, tracker, _), indexed| {
            !(org == organization_id
                && tracker == tracker_id
                && project.is_none_or(|p| indexed.issue.project == p))
        });
        Ok((before - state.issues.len()) as u64)
    }

    async fn count_issues(
        &self,
        organization_id: &str,
        tracker_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let count = self
            .state()
            .issues
            .keys()
            .filter(|(org, tracker, _)| {
                org == organization_id && tracker_id.is_none_or(|t| t == tracker)
            })
            .count();
        Ok(count as u64)
    }

    async fn search_text(
        &self,
        organization_id: &str,
        search: &TextSearch,
    ) -> Result<Vec<IssueHit>, StoreError> {
        let terms = search_terms(&search.text);
        let filter = SimilarityFilter {
            tracker_id: search.tracker_id.clone(),
            project: search.project.clone(),
            state: search.state,
            exclude_key: None,
        };
        let state = self.state();
        let mut hits: Vec<IssueHit> = state
            .issues
            .iter()
            .filter(|((org, tracker, _), indexed)| {
                org == organization_id && filter.admits(tracker, &indexed.issue)
            })
            .filter_map(|((_, tracker, _), indexed)| {
                let score = if terms.is_empty() {
                    0.0
                } else {
                    indexed.text_score(&terms)
                };
                (terms.is_empty() || score > 0.0).then(|| IssueHit {
                    stored: indexed.stored(tracker),
                    score,
                })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.stored.issue.updated_at.cmp(&a.stored.issue.updated_at))
        });
        hits.truncate(search.limit);
        Ok(hits)
    }

    async fn search_similar(
        &self,
        organization_id: &str,
        vector: &[f32],
        k: usize,
        filter: &SimilarityFilter,
    ) -> Result<Vec<SimilarIssue>, StoreError> {
        check_embedding(vector)?;
        let state = self.state();
        let mut hits: Vec<SimilarIssue> = state
            .issues
            .iter()
            .filter(|((org, tracker, _), indexed)| {
                org == organization_id && filter.admits(tracker, &indexed.issue)
            })
            .filter_map(|((_, tracker, _), indexed)| {
                indexed.embedding.as_ref().map(|e| SimilarIssue {
                    tracker_id: tracker.clone(),
                    issue: indexed.issue.clone(),
                    similarity: cosine_similarity(vector, e),
                })
            })
            .collect();
        hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        hits.truncate(k);
        Ok(hits)
    }
}

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let free = state
            .leases
            .get(name)
            .is_none_or(|(current, ends)| *ends <= now || current == holder);
        if free {
            state
                .leases
                .insert(name.to_owned(), (holder.to_owned(), until));
        }
        Ok(free)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if state
            .leases
            .get(name)
            .is_some_and(|(current, _)| current == holder)
        {
            state.leases.remove(name);
        }
        Ok(())
    }

    async fn prune_leases(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.state();
        let count = state.leases.len();
        state.leases.retain(|_, (_, until)| *until >= before);
        Ok((count - state.leases.len()) as u64)
    }
}
