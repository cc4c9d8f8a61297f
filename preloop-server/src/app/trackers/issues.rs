//! Issues over REST: searched and read in the index, created, changed and commented on in
//! their tracker (and re-indexed at once).

use super::{TrackerChangeError, Trackers};
use preloop_core::store::{IssueHit, IssueStore, StoredIssue, TextSearch};
use preloop_core::tracker::{IssueComment, IssueUpdate, NewIssue};
use preloop_trackers::tools::{ConnectedTracker, TrackerDirectory, search_connected};

impl Trackers {
    /// Full-text search over the organization's connected trackers' issues.
    pub async fn search(
        &self,
        organization_id: &str,
        text: &str,
        project: Option<String>,
        limit: usize,
    ) -> Result<Vec<IssueHit>, TrackerChangeError> {
        let search = TextSearch {
            text: text.to_owned(),
            tracker_id: None,
            project,
            state: None,
            limit,
        };
        Ok(search_connected(
            &self.connected.trackers(organization_id),
            self.store.as_ref(),
            organization_id,
            search,
        )
        .await?)
    }

    /// An issue of the index by id.
    pub async fn issue(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<StoredIssue, TrackerChangeError> {
        self.store
            .find_issue(organization_id, id)
            .await?
            .ok_or_else(|| TrackerChangeError::NoIssue { id: id.to_owned() })
    }

    fn tracker_of(
        &self,
        organization_id: &str,
        tracker_id: &str,
    ) -> Result<ConnectedTracker, TrackerChangeError> {
        self.connected
            .trackers(organization_id)
            .into_iter()
            .find(|t| t.id == tracker_id)
            .ok_or_else(|| {
                TrackerChangeError::Invalid(
                    "the issue's tracker is not connected (disabled or removed)".to_owned(),
                )
            })
    }

    /// Creates an issue in the tracker that has `issue.project` (`tracker` names one when
    /// several have it).
    pub async fn create_issue(
        &self,
        organization_id: &str,
        issue: NewIssue,
        tracker: Option<&str>,
    ) -> Result<StoredIssue, TrackerChangeError> {
        if issue.title.trim().is_empty() {
            return Err(TrackerChangeError::Invalid(
                "an issue needs a title".to_owned(),
            ));
        }
        let connected = self.connected.trackers(organization_id);
        let target =
            preloop_trackers::tools::tracker_for_project(&connected, &issue.project, tracker)
                .map_err(|e| TrackerChangeError::Invalid(e.to_string()))?;
        let created = target.tracker.create_issue(&issue).await?;
        let id = self
            .store
            .upsert_issue(organization_id, &target.id, &created, None)
            .await?;
        Ok(StoredIssue {
            id,
            tracker_id: target.id,
            issue: created,
        })
    }

    /// Changes an issue in its tracker.
    pub async fn update_issue(
        &self,
        organization_id: &str,
        id: &str,
        update: IssueUpdate,
    ) -> Result<StoredIssue, TrackerChangeError> {
        let stored = self.issue(organization_id, id).await?;
        let tracker = self.tracker_of(organization_id, &stored.tracker_id)?;
        let changed = tracker
            .tracker
            .update_issue(&stored.issue.key, &update)
            .await?;
        self.store
            .upsert_issue(organization_id, &tracker.id, &changed, None)
            .await?;
        Ok(StoredIssue {
            issue: changed,
            ..stored
        })
    }

    /// Comments on an issue in its tracker.
    pub async fn comment(
        &self,
        organization_id: &str,
        id: &str,
        body: &str,
    ) -> Result<IssueComment, TrackerChangeError> {
        if body.trim().is_empty() {
            return Err(TrackerChangeError::Invalid(
                "a comment needs a body".to_owned(),
            ));
        }
        let stored = self.issue(organization_id, id).await?;
        let tracker = self.tracker_of(organization_id, &stored.tracker_id)?;
        Ok(tracker.tracker.add_comment(&stored.issue.key, body).await?)
    }

    /// Removes an issue from the index (not from its tracker; the next full synchronization
    /// brings it back if it still exists there).
    pub async fn forget_issue(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<(), TrackerChangeError> {
        let stored = self.issue(organization_id, id).await?;
        self.store
            .delete_issue(organization_id, &stored.tracker_id, &stored.issue.key)
            .await?;
        Ok(())
    }
}
