//! Synchronizing trackers into the issue index: a full first sync, then incremental ones from
//! each project's `synced_through`, on the tracker's interval, on request and from the command
//! line. A tracker's sync is claimed by a lease, so replicas sharing a database run it once; a
//! failing tracker is retried with growing pauses and never holds up the others. Progress goes
//! to the tracker's status and, as `sync.progress` and `sync.finished` events, to the
//! organization's `issues` topic.

use super::{TrackerChangeError, Trackers};
use crate::events::{Event, Topic};
use chrono::{DateTime, TimeDelta, Utc};
use preloop_core::documents::{Project, TrackerConfig};
use preloop_core::store::{DocumentStore, LeaseStore, StoreError};
use preloop_trackers::sync::{SyncReport, SyncTarget, sync_project};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// The tracker's time between synchronizations, at most a year (so that adding it to a time,
/// or doubling it for a backoff, cannot overflow).
fn interval(tracker: &TrackerConfig) -> TimeDelta {
    let year = TimeDelta::days(365);
    i64::try_from(tracker.sync_interval_seconds)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .map_or(year, |interval| interval.min(year))
}

/// The lease that claims a tracker's sync.
fn lease_name(tracker: &TrackerConfig) -> String {
    format!("tracker-sync:{}", tracker.id)
}

/// How long a replica may hold a tracker's sync before another may take it over.
const LEASE: TimeDelta = TimeDelta::minutes(30);

/// Longest pause after repeated failures.
const MAX_BACKOFF: TimeDelta = TimeDelta::hours(1);

/// How often the runner looks for due trackers (a change or a request wakes it sooner).
const TICK: Duration = Duration::from_secs(15);

/// How far a running sync got.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The project being synchronized.
    pub project: String,
    /// Issues indexed so far (all projects).
    pub issues: u64,
    /// Pages read so far.
    pub pages: u64,
}

/// What one tracker's sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncSummary {
    /// Issues indexed.
    pub issues: u64,
    /// Pages read.
    pub pages: u64,
    /// Projects that failed, with why.
    pub failures: Vec<(String, String)>,
    /// Whether another replica held the sync (so this one did nothing).
    pub skipped: bool,
}

/// This replica's view of syncs: what runs, what failed, and the runner's wake-up.
#[derive(Debug)]
pub struct SyncState {
    holder: String,
    running: Mutex<HashMap<Uuid, Progress>>,
    /// Consecutive failures and when to try again.
    backoff: Mutex<HashMap<Uuid, (u32, DateTime<Utc>)>>,
    wake: Notify,
}

impl Default for SyncState {
    fn default() -> Self {
        Self {
            holder: Uuid::new_v4().to_string(),
            running: Mutex::default(),
            backoff: Mutex::default(),
            wake: Notify::new(),
        }
    }
}

impl SyncState {
    /// How far the tracker's running sync got, if one runs here.
    pub fn progress(&self, id: Uuid) -> Option<Progress> {
        self.running.lock().ok()?.get(&id).cloned()
    }

    /// Makes the runner look for due trackers now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn set_progress(&self, id: Uuid, progress: Option<Progress>) {
        if let Ok(mut running) = self.running.lock() {
            match progress {
                Some(progress) => running.insert(id, progress),
                None => running.remove(&id),
            };
        }
    }

    fn backing_off(&self, id: Uuid, now: DateTime<Utc>) -> bool {
        self.backoff
            .lock()
            .ok()
            .and_then(|b| b.get(&id).map(|(_, until)| *until > now))
            .unwrap_or(false)
    }

    fn record(&self, tracker: &TrackerConfig, failed: bool, now: DateTime<Utc>) {
        let Ok(mut backoff) = self.backoff.lock() else {
            return;
        };
        if !failed {
            backoff.remove(&tracker.id);
            return;
        }
        let failures = backoff.get(&tracker.id).map_or(0, |(n, _)| *n) + 1;
        let pause = interval(tracker)
            .checked_mul(2_i32.saturating_pow(failures.min(10)))
            .map_or(MAX_BACKOFF, |pause| pause.min(MAX_BACKOFF));
        backoff.insert(tracker.id, (failures, now + pause));
    }
}

impl Trackers {
    /// Synchronizes one tracker's projects now and says what it did (unless another replica
    /// is at it).
    pub async fn sync_now(
        &self,
        organization_id: &str,
        id: Uuid,
    ) -> Result<SyncSummary, TrackerChangeError> {
        let tracker = self.stored(organization_id, id).await?;
        self.sync_tracker(&tracker).await
    }

    /// Starts synchronizing one tracker in the background; `false` if a sync of it runs
    /// already (here or on another replica). Its progress shows in the tracker's status (at
    /// once: it counts as running when this returns) and on the `issues` topic.
    pub async fn start_sync(
        &self,
        organization_id: &str,
        id: Uuid,
    ) -> Result<bool, TrackerChangeError> {
        let tracker = self.stored(organization_id, id).await?;
        if !self.claim(&tracker).await? {
            return Ok(false);
        }
        let trackers = self.clone();
        tokio::spawn(async move {
            if let Err(error) = trackers.run_claimed(&tracker).await {
                tracing::warn!(tracker = %tracker.name, %error, "sync failed");
            }
        });
        Ok(true)
    }

    /// Synchronizes every due tracker, forever: the server's background task. Also forgets
    /// leases that ended a day ago (webhook deliveries are remembered by one each).
    pub async fn run(self) {
        loop {
            self.sync_due().await;
            if let Err(error) = self
                .store
                .prune_leases(Utc::now() - TimeDelta::days(1))
                .await
            {
                tracing::warn!(%error, "could not prune ended leases");
            }
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = self.sync.wake.notified() => {}
            }
        }
    }

    /// Synchronizes the trackers whose interval elapsed, one after another.
    pub async fn sync_due(&self) {
        let now = Utc::now();
        let configs: Vec<TrackerConfig> = self
            .connected
            .configs
            .read()
            .map(|c| c.values().map(|(config, _)| config.clone()).collect())
            .unwrap_or_default();
        for tracker in configs.into_iter().filter(|t| t.enabled) {
            if self.sync.backing_off(tracker.id, now) || !self.is_due(&tracker, now).await {
                continue;
            }
            if let Err(error) = self.sync_tracker(&tracker).await {
                tracing::warn!(tracker = %tracker.name, %error, "sync failed");
            }
        }
    }

    async fn is_due(&self, tracker: &TrackerConfig, now: DateTime<Utc>) -> bool {
        let projects = self.project_records(tracker).await.unwrap_or_default();
        tracker.projects.iter().any(|key| {
            projects
                .iter()
                .find(|p| p.key == *key)
                .and_then(|p| p.last_synced_at)
                .is_none_or(|last| last + interval(tracker) <= now)
        })
    }

    async fn sync_tracker(
        &self,
        tracker: &TrackerConfig,
    ) -> Result<SyncSummary, TrackerChangeError> {
        if !self.claim(tracker).await? {
            return Ok(SyncSummary {
                skipped: true,
                ..SyncSummary::default()
            });
        }
        self.run_claimed(tracker).await
    }

    /// Claims the tracker's sync for this replica; `false` if another holds it. Once claimed,
    /// the tracker counts as running.
    async fn claim(&self, tracker: &TrackerConfig) -> Result<bool, StoreError> {
        let now = Utc::now();
        let claimed = self
            .store
            .try_lease(&lease_name(tracker), &self.sync.holder, now, now + LEASE)
            .await?;
        if claimed {
            self.sync.set_progress(
                tracker.id,
                Some(Progress {
                    started_at: now,
                    project: tracker.projects.first().cloned().unwrap_or_default(),
                    issues: 0,
                    pages: 0,
                }),
            );
        }
        Ok(claimed)
    }

    /// Runs a claimed sync to its end, then gives the claim up and tells how it went.
    async fn run_claimed(
        &self,
        tracker: &TrackerConfig,
    ) -> Result<SyncSummary, TrackerChangeError> {
        let result = self.sync_projects(tracker).await;
        let released = self
            .store
            .release_lease(&lease_name(tracker), &self.sync.holder)
            .await;
        if let Err(error) = released {
            tracing::warn!(tracker = %tracker.name, %error, "could not release the sync lease; it runs out by itself");
        }
        self.sync.set_progress(tracker.id, None);
        let failed = result.as_ref().map_or(true, |s| !s.failures.is_empty());
        self.sync.record(tracker, failed, Utc::now());
        crate::metrics::tracker_sync(&tracker.name, if failed { "failed" } else { "ok" });
        let finished = match &result {
            Ok(summary) => json!({
                "issues": summary.issues,
                "pages": summary.pages,
                "failures": summary.failures.iter()
                    .map(|(project, error)| json!({"project": project, "error": error}))
                    .collect::<Vec<_>>(),
            }),
            Err(error) => json!({"error": error.to_string()}),
        };
        self.publish_sync(tracker, "sync.finished", finished);
        result
    }

    /// Tells the organization's `issues` topic how the tracker's sync goes.
    fn publish_sync(&self, tracker: &TrackerConfig, event: &str, mut data: serde_json::Value) {
        data["event"] = json!(event);
        data["tracker"] = json!(tracker.id);
        self.events.publish(Event {
            topic: Topic::Issues,
            organization_id: Some(tracker.organization_id.clone()),
            request: None,
            data,
        });
    }

    async fn sync_projects(
        &self,
        tracker: &TrackerConfig,
    ) -> Result<SyncSummary, TrackerChangeError> {
        let adapter = super::connect::adapter(tracker, self.reach.as_ref())?;
        let tracker_id = tracker.id.to_string();
        let started_at = Utc::now();
        let mut summary = SyncSummary::default();
        let known = self.project_records(tracker).await?;
        for key in &tracker.projects {
            let mut project = self.project_record(tracker, key, &known).await?;
            let target = SyncTarget {
                organization_id: &tracker.organization_id,
                tracker_id: &tracker_id,
                project: key,
            };
            let before = summary.clone();
            let mut counted = 0;
            let report_progress = |report: &SyncReport| {
                let progress = Progress {
                    started_at,
                    project: key.clone(),
                    issues: before.issues + report.issues,
                    pages: before.pages + report.pages,
                };
                self.publish_sync(tracker, "sync.progress", json!(progress));
                self.sync.set_progress(tracker.id, Some(progress));
                crate::metrics::tracker_issues(&tracker.name, report.issues - counted);
                counted = report.issues;
            };
            tracing::info!(tracker = %tracker.name, project = %key, since = ?project.synced_through, "syncing");
            let outcome = sync_project(
                adapter.as_ref(),
                self.store.as_ref(),
                target,
                project.synced_through,
                report_progress,
            )
            .await;
            let report = match &outcome {
                Ok(report) => *report,
                Err(failure) => failure.report,
            };
            summary.issues += report.issues;
            summary.pages += report.pages;
            // What was indexed counts even when the sync stopped half way: resume from there.
            project.synced_through = report.newest;
            match outcome {
                Ok(_) => {
                    project.last_synced_at = Some(Utc::now());
                    project.last_error = None;
                    tracing::info!(tracker = %tracker.name, project = %key, issues = report.issues, pages = report.pages, "synced");
                }
                Err(failure) => {
                    tracing::warn!(tracker = %tracker.name, project = %key, error = %failure.cause, issues = report.issues, "sync stopped");
                    project.last_error = Some(failure.cause.to_string());
                    summary
                        .failures
                        .push((key.clone(), failure.cause.to_string()));
                }
            }
            self.store.update_document(&project).await?;
        }
        Ok(summary)
    }

    /// The tracker's projects' synchronization records.
    pub(super) async fn project_records(
        &self,
        tracker: &TrackerConfig,
    ) -> Result<Vec<Project>, StoreError> {
        self.store
            .list_documents(&tracker.organization_id, Some(&tracker.id.to_string()))
            .await
    }

    /// The project's synchronization record (among `known`), created on its first sync.
    async fn project_record(
        &self,
        tracker: &TrackerConfig,
        key: &str,
        known: &[Project],
    ) -> Result<Project, StoreError> {
        if let Some(project) = known.iter().find(|p| p.key == key) {
            return Ok(project.clone());
        }
        let project = Project {
            id: Uuid::new_v4(),
            organization_id: tracker.organization_id.clone(),
            tracker_id: tracker.id,
            key: key.to_owned(),
            name: key.to_owned(),
            sync_enabled: true,
            last_synced_at: None,
            synced_through: None,
            last_error: None,
        };
        match self.store.insert_document(&project).await {
            // Another replica created it meanwhile: use theirs.
            Err(StoreError::AlreadyExists) => self
                .project_records(tracker)
                .await?
                .into_iter()
                .find(|p| p.key == key)
                .ok_or(StoreError::AlreadyExists),
            other => other.map(|()| project),
        }
    }
}
