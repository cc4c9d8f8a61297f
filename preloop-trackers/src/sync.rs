//! Synchronizing a project into the issue index: every issue changed since the cursor, page
//! by page, each upserted as it arrives, so a sync that fails half way keeps what it indexed
//! and the next one resumes from the newest update it saw.

use chrono::{DateTime, Utc};
use preloop_core::store::{IssueStore, StoreError};
use preloop_core::tracker::{Tracker, TrackerError};

/// Most pages one sync follows (at 100 issues a page, a million issues): a tracker whose
/// pagination never ends cannot keep a sync running forever.
pub const MAX_PAGES: u64 = 10_000;

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Issues indexed.
    pub issues: u64,
    /// Pages read (one request each).
    pub pages: u64,
    /// The newest `updated_at` seen: the next sync's `since`.
    pub newest: Option<DateTime<Utc>>,
}

/// Why a sync stopped early; `report` says what it did before.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{cause}")]
pub struct SyncFailure {
    /// What was indexed before the failure.
    pub report: SyncReport,
    /// The failure.
    pub cause: SyncCause,
}

/// What stopped a sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncCause {
    /// The tracker failed.
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    /// The index failed.
    #[error("the issue index failed: {0}")]
    Store(#[from] StoreError),
    /// The tracker's pagination did not end.
    #[error("the tracker's pagination did not end after {MAX_PAGES} pages (or repeated a page)")]
    EndlessPagination,
}

/// Where a sync files issues.
#[derive(Debug, Clone, Copy)]
pub struct SyncTarget<'a> {
    /// The organization.
    pub organization_id: &'a str,
    /// The tracker's id in the index.
    pub tracker_id: &'a str,
    /// The project.
    pub project: &'a str,
}

/// Indexes `target.project`'s issues changed since `since` (all when `None`), calling
/// `progress` after each page.
pub async fn sync_project(
    tracker: &dyn Tracker,
    index: &dyn IssueStore,
    target: SyncTarget<'_>,
    since: Option<DateTime<Utc>>,
    mut progress: impl FnMut(&SyncReport) + Send,
) -> Result<SyncReport, SyncFailure> {
    let mut report = SyncReport {
        newest: since,
        ..SyncReport::default()
    };
    let mut cursor: Option<String> = None;
    loop {
        let fail = |report: SyncReport, cause: SyncCause| SyncFailure { report, cause };
        if report.pages >= MAX_PAGES {
            return Err(fail(report, SyncCause::EndlessPagination));
        }
        let page = tracker
            .list_updated_since(target.project, since, cursor.as_deref())
            .await
            .map_err(|e| fail(report, e.into()))?;
        report.pages += 1;
        index
            .upsert_issues(target.organization_id, target.tracker_id, &page.issues)
            .await
            .map_err(|e| fail(report, e.into()))?;
        report.issues += page.issues.len() as u64;
        report.newest = report
            .newest
            .max(page.issues.iter().map(|issue| issue.updated_at).max());
        progress(&report);
        match page.next_cursor {
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(fail(report, SyncCause::EndlessPagination));
            }
            Some(next) => cursor = Some(next),
            None => return Ok(report),
        }
    }
}
