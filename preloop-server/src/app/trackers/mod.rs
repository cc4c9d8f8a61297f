//! Organizations' issue trackers: checked, stored, connected, synchronized into the issue
//! index, and their webhooks received; the seven issue tools shown to an organization exactly
//! while it has a tracker.
//!
//! - this module: the service ([`Trackers`]): changes to trackers (each checked, stored, put in
//!   force here and announced to the other replicas), their status, connection tests;
//! - [`connect`]: building an adapter for a stored tracker (with the organization's HTTP
//!   client, so tenants reach only public addresses);
//! - [`sync`]: synchronizing a tracker's projects (claimed once across replicas by a lease),
//!   on its interval, on request, and from the command line;
//! - [`issues`]: issues over REST (searched in the index, changed in their tracker);
//! - [`webhooks`]: verifying, deduplicating and applying webhook deliveries.

mod connect;
mod issues;
pub mod sync;
pub mod webhooks;

pub use connect::TrackerReach;
pub use webhooks::WebhookOutcome;

use super::Replicas;
use super::servers::{Cause, REDACTED};
use crate::events::EventBus;
use chrono::Utc;
use preloop_core::documents::{Project, TrackerConfig, TrackerKind};
use preloop_core::governor::Governor;
use preloop_core::store::{DocumentStore, IssueStore, StoreError};
use preloop_core::tracker::{ProjectInfo, TrackerError};
use preloop_store::Database;
use preloop_trackers::tools::{ConnectedTracker, IssueTools, SERVER, TrackerDirectory};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use sync::SyncState;
use uuid::Uuid;

/// Fewest seconds between two synchronizations of a tracker.
pub const MIN_SYNC_INTERVAL_SECONDS: u64 = 60;

/// Most trackers an organization may connect.
pub const MAX_TRACKERS: usize = 20;

/// Most projects one tracker may synchronize.
pub const MAX_PROJECTS: usize = 100;

/// A tracker as a caller describes it (the configuration file's `[[trackers]]`, a REST body).
/// Secrets given as `<redacted>` (or not at all, on a change) keep the stored ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerInput {
    /// Unique name in the organization.
    pub name: String,
    /// Kind.
    pub kind: TrackerKind,
    /// API base URL (the kind's public service when absent; Jira needs one).
    pub url: Option<String>,
    /// Token (API token for Jira Cloud); `None` keeps the stored one.
    pub token: Option<String>,
    /// Jira Cloud's e-mail.
    pub username: Option<String>,
    /// Projects to synchronize.
    pub projects: Vec<String>,
    /// Webhook secret; `None` keeps the stored one.
    pub webhook_secret: Option<String>,
    /// Seconds between synchronizations.
    pub sync_interval_seconds: u64,
    /// Whether it is synchronized and its tools offered.
    pub enabled: bool,
}

/// Why a tracker change did not happen, or what is not there.
#[derive(Debug, thiserror::Error)]
pub enum TrackerChangeError {
    /// No such tracker in the organization.
    #[error("no tracker `{id}`")]
    NoTracker {
        /// The id asked for.
        id: Uuid,
    },
    /// No such project in the organization.
    #[error("no project `{id}`")]
    NoProject {
        /// The id asked for.
        id: Uuid,
    },
    /// No such issue in the organization's index.
    #[error("no issue `{id}`")]
    NoIssue {
        /// The id asked for.
        id: String,
    },
    /// The description is incomplete or wrong.
    #[error("{0}")]
    Invalid(String),
    /// The organization may not reach the URL.
    #[error("{refusal}")]
    Refused {
        /// Why not.
        refusal: Cause,
    },
    /// The name is taken.
    #[error("a tracker `{name}` exists")]
    Exists {
        /// The name.
        name: String,
    },
    /// The organization has as many trackers as it may.
    #[error("an organization may have at most {MAX_TRACKERS} trackers")]
    TooMany,
    /// A credential came back redacted for a new destination.
    #[error(
        "the tracker's URL changed: give its token and webhook secret again instead of `<redacted>`"
    )]
    CredentialsNeeded,
    /// The tracker answered with an error (a connection test).
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Maps the store's refusal of a duplicate name to [`TrackerChangeError::Exists`].
fn name_taken(tracker: &TrackerConfig) -> impl FnOnce(StoreError) -> TrackerChangeError + '_ {
    move |error| match error {
        StoreError::AlreadyExists => TrackerChangeError::Exists {
            name: tracker.name.clone(),
        },
        other => other.into(),
    }
}

/// A tracker with what is known of its synchronization.
#[derive(Debug, Clone)]
pub struct TrackerStatus {
    /// The stored tracker.
    pub tracker: TrackerConfig,
    /// Its projects' synchronization records.
    pub projects: Vec<Project>,
    /// Issues of it in the index.
    pub issues_indexed: u64,
    /// Whether a synchronization runs on this replica now, and how far it got.
    pub running: Option<sync::Progress>,
    /// Why the adapter could not be built, if it could not.
    pub connection_error: Option<String>,
}

/// The connected trackers of every organization, as the issue tools find them.
#[derive(Debug, Default)]
struct Connected {
    by_organization: RwLock<HashMap<String, Vec<ConnectedTracker>>>,
    /// Stored trackers by id (webhooks name only the id), with why an adapter failed.
    configs: RwLock<HashMap<Uuid, (TrackerConfig, Option<String>)>>,
}

impl TrackerDirectory for Connected {
    fn trackers(&self, organization_id: &str) -> Vec<ConnectedTracker> {
        self.by_organization
            .read()
            .map(|map| map.get(organization_id).cloned().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// Connects, changes, synchronizes and removes organizations' trackers.
#[derive(Clone)]
pub struct Trackers {
    governor: Arc<Governor>,
    store: Arc<Database>,
    reach: Arc<dyn TrackerReach>,
    replicas: Replicas,
    events: EventBus,
    connected: Arc<Connected>,
    tools: IssueTools,
    sync: Arc<SyncState>,
}

impl std::fmt::Debug for Trackers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trackers")
    }
}

impl Trackers {
    /// Trackers kept in `store`, reached through `reach`, their tools in `governor`'s registry.
    pub fn new(
        governor: Arc<Governor>,
        store: Arc<Database>,
        reach: Arc<dyn TrackerReach>,
        replicas: Replicas,
        events: EventBus,
    ) -> Self {
        let connected = Arc::new(Connected::default());
        let tools = IssueTools::new(connected.clone(), store.clone() as Arc<dyn IssueStore>);
        Self {
            governor,
            store,
            reach,
            replicas,
            events,
            connected,
            tools,
            sync: Arc::new(SyncState::default()),
        }
    }

    /// Puts the organization's stored trackers in force: adapters built, tools shown while it
    /// has an enabled tracker (at start, and when any replica announces a change).
    pub async fn reload(&self, organization_id: &str) -> Result<(), StoreError> {
        let stored: Vec<TrackerConfig> = self.store.list_documents(organization_id, None).await?;
        self.connect_all(organization_id, &stored);
        Ok(())
    }

    /// Takes the organization's trackers out of force (it was closed): no adapters, no tools,
    /// no syncs.
    pub fn forget(&self, organization_id: &str) {
        self.connect_all(organization_id, &[]);
    }

    fn connect_all(&self, organization_id: &str, stored: &[TrackerConfig]) {
        let mut connected = Vec::new();
        {
            let mut configs = self
                .connected
                .configs
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            configs.retain(|_, (config, _)| config.organization_id != organization_id);
            for config in stored {
                let built = connect::adapter(config, self.reach.as_ref());
                let error = built.as_ref().err().map(ToString::to_string);
                if let Some(error) = &error {
                    tracing::warn!(organization = organization_id, tracker = %config.name, %error, "cannot connect the tracker");
                }
                if let (Ok(tracker), true) = (built, config.enabled) {
                    connected.push(ConnectedTracker {
                        id: config.id.to_string(),
                        name: config.name.clone(),
                        projects: config.projects.clone(),
                        tracker,
                    });
                }
                configs.insert(config.id, (config.clone(), error));
            }
        }
        let registry = self.governor.registry();
        if connected.is_empty() {
            registry.remove_server(Some(organization_id), SERVER);
        } else if let Err(error) =
            registry.replace_server_tools(Some(organization_id), SERVER, self.tools.tools())
        {
            tracing::error!(organization = organization_id, %error, "cannot offer the issue tools");
        }
        let mut by_organization = self
            .connected
            .by_organization
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if connected.is_empty() {
            by_organization.remove(organization_id);
        } else {
            by_organization.insert(organization_id.to_owned(), connected);
        }
    }

    /// The organization's trackers.
    pub async fn list(
        &self,
        organization_id: &str,
    ) -> Result<Vec<TrackerStatus>, TrackerChangeError> {
        let stored: Vec<TrackerConfig> = self.store.list_documents(organization_id, None).await?;
        let mut statuses = Vec::with_capacity(stored.len());
        for tracker in stored {
            statuses.push(self.status_of(tracker).await?);
        }
        Ok(statuses)
    }

    /// One tracker of the organization, with its status.
    pub async fn get(
        &self,
        organization_id: &str,
        id: Uuid,
    ) -> Result<TrackerStatus, TrackerChangeError> {
        let tracker = self.stored(organization_id, id).await?;
        self.status_of(tracker).await
    }

    async fn stored(
        &self,
        organization_id: &str,
        id: Uuid,
    ) -> Result<TrackerConfig, TrackerChangeError> {
        DocumentStore::<TrackerConfig>::get_document(&*self.store, organization_id, &id.to_string())
            .await?
            .ok_or(TrackerChangeError::NoTracker { id })
    }

    async fn status_of(&self, tracker: TrackerConfig) -> Result<TrackerStatus, TrackerChangeError> {
        let id = tracker.id.to_string();
        let projects = self.project_records(&tracker).await?;
        let issues_indexed = self
            .store
            .count_issues(&tracker.organization_id, Some(&id))
            .await?;
        let connection_error = self
            .connected
            .configs
            .read()
            .ok()
            .and_then(|configs| configs.get(&tracker.id).and_then(|(_, e)| e.clone()));
        Ok(TrackerStatus {
            running: self.sync.progress(tracker.id),
            tracker,
            projects,
            issues_indexed,
            connection_error,
        })
    }

    /// The organization's projects' synchronization records, by key.
    pub async fn projects(
        &self,
        organization_id: &str,
    ) -> Result<Vec<Project>, TrackerChangeError> {
        Ok(self.store.list_documents(organization_id, None).await?)
    }

    /// One project's synchronization record.
    pub async fn project(
        &self,
        organization_id: &str,
        id: Uuid,
    ) -> Result<Project, TrackerChangeError> {
        DocumentStore::<Project>::get_document(&*self.store, organization_id, &id.to_string())
            .await?
            .ok_or(TrackerChangeError::NoProject { id })
    }

    /// Connects a tracker, and synchronizes it soon.
    pub async fn create(
        &self,
        organization_id: &str,
        input: TrackerInput,
    ) -> Result<TrackerConfig, TrackerChangeError> {
        if self.store_count(organization_id).await? >= MAX_TRACKERS {
            return Err(TrackerChangeError::TooMany);
        }
        let tracker = self.document(organization_id, Uuid::new_v4(), Utc::now(), input, None)?;
        self.store
            .insert_document(&tracker)
            .await
            .map_err(name_taken(&tracker))?;
        self.put_in_force(organization_id).await?;
        self.sync.wake();
        Ok(tracker)
    }

    /// Changes a tracker; its token and secret stay unless given anew.
    pub async fn update(
        &self,
        organization_id: &str,
        id: Uuid,
        input: TrackerInput,
    ) -> Result<TrackerConfig, TrackerChangeError> {
        let existing = self.stored(organization_id, id).await?;
        let tracker = self.document(
            organization_id,
            id,
            existing.created_at,
            input,
            Some(&existing),
        )?;
        self.store
            .update_document(&tracker)
            .await
            .map_err(name_taken(&tracker))?;
        self.forget_projects(&tracker).await?;
        self.put_in_force(organization_id).await?;
        self.sync.wake();
        Ok(tracker)
    }

    /// Creates or changes the tracker of this name (the configuration file's entries, applied
    /// at every start: a tracker of the same name keeps its id).
    pub async fn apply(
        &self,
        organization_id: &str,
        input: TrackerInput,
    ) -> Result<TrackerConfig, TrackerChangeError> {
        let stored: Vec<TrackerConfig> = self.store.list_documents(organization_id, None).await?;
        match stored.iter().find(|t| t.name == input.name) {
            Some(existing) => {
                let tracker = self.document(
                    organization_id,
                    existing.id,
                    existing.created_at,
                    input,
                    Some(existing),
                )?;
                if tracker != *existing {
                    self.store.update_document(&tracker).await?;
                    self.forget_projects(&tracker).await?;
                }
                Ok(tracker)
            }
            None => {
                let tracker =
                    self.document(organization_id, Uuid::new_v4(), Utc::now(), input, None)?;
                self.store.insert_document(&tracker).await?;
                Ok(tracker)
            }
        }
    }

    /// Disconnects a tracker: its tools and its synchronization stop; the issues it indexed
    /// leave the index.
    pub async fn delete(&self, organization_id: &str, id: Uuid) -> Result<(), TrackerChangeError> {
        let mut tracker = self.stored(organization_id, id).await?;
        tracker.projects.clear();
        self.forget_projects(&tracker).await?;
        DocumentStore::<TrackerConfig>::delete_document(
            &*self.store,
            organization_id,
            &id.to_string(),
        )
        .await?;
        self.store
            .delete_issues(organization_id, &id.to_string(), None)
            .await?;
        self.put_in_force(organization_id).await
    }

    /// Forgets the projects the tracker no longer lists: their sync records and their issues.
    async fn forget_projects(&self, tracker: &TrackerConfig) -> Result<(), StoreError> {
        let organization_id = &tracker.organization_id;
        for project in self.project_records(tracker).await? {
            if tracker.projects.contains(&project.key) {
                continue;
            }
            DocumentStore::<Project>::delete_document(
                &*self.store,
                organization_id,
                &project.id.to_string(),
            )
            .await?;
            let removed = self
                .store
                .delete_issues(organization_id, &tracker.id.to_string(), Some(&project.key))
                .await?;
            tracing::info!(tracker = %tracker.name, project = %project.key, issues = removed, "project no longer synchronized; its issues left the index");
        }
        Ok(())
    }

    /// Checks that a described tracker can be reached and read: each project as the tracker
    /// describes it, or the tracker's error.
    pub async fn test_connection(
        &self,
        organization_id: &str,
        input: TrackerInput,
    ) -> Result<Vec<ProjectInfo>, TrackerChangeError> {
        let tracker = self.document(organization_id, Uuid::new_v4(), Utc::now(), input, None)?;
        let adapter = connect::adapter(&tracker, self.reach.as_ref())?;
        let mut projects = Vec::with_capacity(tracker.projects.len());
        for project in &tracker.projects {
            projects.push(adapter.get_project(project).await?);
        }
        Ok(projects)
    }

    async fn store_count(&self, organization_id: &str) -> Result<usize, StoreError> {
        let stored: Vec<TrackerConfig> = self.store.list_documents(organization_id, None).await?;
        Ok(stored.len())
    }

    async fn put_in_force(&self, organization_id: &str) -> Result<(), TrackerChangeError> {
        self.reload(organization_id).await?;
        self.replicas.announce(organization_id).await;
        Ok(())
    }

    /// The stored document a described tracker becomes; `existing` supplies secrets the
    /// description leaves out, if the destination is unchanged.
    fn document(
        &self,
        organization_id: &str,
        id: Uuid,
        created_at: chrono::DateTime<Utc>,
        input: TrackerInput,
        existing: Option<&TrackerConfig>,
    ) -> Result<TrackerConfig, TrackerChangeError> {
        let invalid = |message: String| Err(TrackerChangeError::Invalid(message));
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.len() > 100 {
            return invalid("a tracker needs a name of 1 to 100 characters".to_owned());
        }
        let base_url = match input
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            Some(url) => url.to_owned(),
            None => match preloop_trackers::default_url(input.kind) {
                Some(url) => url.to_owned(),
                None => return invalid(
                    "a Jira tracker needs its site's URL (url = \"https://acme.atlassian.net\")"
                        .to_owned(),
                ),
            },
        };
        let parsed = url::Url::parse(&base_url).map_err(|e| {
            TrackerChangeError::Invalid(format!("the tracker URL {base_url:?} is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return invalid(format!(
                "the tracker URL {base_url:?} must be http:// or https:// with a host"
            ));
        }
        self.reach
            .permit(organization_id, &base_url)
            .map_err(|refusal| TrackerChangeError::Refused { refusal })?;
        let same_destination =
            existing.is_some_and(|e| e.base_url == base_url && e.kind == input.kind);
        let keep = |given: Option<String>,
                    stored: Option<String>|
         -> Result<Option<String>, TrackerChangeError> {
            match given {
                Some(value) if value != REDACTED => Ok(Some(value)),
                _ if stored.is_none() => Ok(None),
                _ if same_destination => Ok(stored),
                _ => Err(TrackerChangeError::CredentialsNeeded),
            }
        };
        let token = keep(input.token, existing.map(|e| e.token.clone()))?
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| TrackerChangeError::Invalid("a tracker needs a token".to_owned()))?;
        let webhook_secret = keep(
            input.webhook_secret,
            existing.and_then(|e| e.webhook_secret.clone()),
        )?
        .filter(|s| !s.is_empty());
        let mut projects: Vec<String> = input
            .projects
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        projects.dedup();
        if projects.is_empty() || projects.len() > MAX_PROJECTS {
            return invalid(format!(
                "a tracker synchronizes 1 to {MAX_PROJECTS} projects (owner/repo, group/project or Jira keys)"
            ));
        }
        if input.sync_interval_seconds < MIN_SYNC_INTERVAL_SECONDS {
            return invalid(format!(
                "sync_interval must be at least {MIN_SYNC_INTERVAL_SECONDS} seconds"
            ));
        }
        Ok(TrackerConfig {
            id,
            organization_id: organization_id.to_owned(),
            name,
            kind: input.kind,
            base_url,
            token,
            username: input
                .username
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty()),
            webhook_secret,
            projects,
            sync_interval_seconds: input.sync_interval_seconds,
            enabled: input.enabled,
            created_at,
        })
    }
}
