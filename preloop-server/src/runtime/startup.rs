//! Start-up loading: the configuration file's upstream servers recorded in the store, then every
//! organization's stored configuration put in force (policy, tool settings, upstream servers,
//! issue trackers).

use crate::app::{Reload, Trackers, rewrite_stored};
use crate::config::{McpServerEntry, ServerEntryError};
use crate::gateway::upstream::Upstreams;
use crate::runtime::serve::Follower;
use crate::tenancy::DEFAULT_ORGANIZATION;
use chrono::Utc;
use preloop_core::audit::{AuditEntry, AuditEventKind};
use preloop_core::documents::{McpServer, ToolConfiguration};
use preloop_core::governor::Governor;
use preloop_core::policy::GovernanceDocument;
use preloop_core::principal::PrincipalSelector;
use preloop_core::store::{AccountStore, DocumentStore, PolicyStore, StoreError};
use preloop_store::Database;
use std::sync::Arc;
use uuid::Uuid;

/// Why the configuration file's `[[mcp_servers]]` could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfiguredServersError {
    /// The stored servers could not be listed.
    #[error(transparent)]
    List {
        /// The store's error.
        #[from]
        source: StoreError,
    },
    /// An entry is incomplete or invalid.
    #[error(transparent)]
    Entry {
        /// What is wrong with it.
        #[from]
        source: ServerEntryError,
    },
    /// An entry could not be stored.
    #[error("mcp server `{name}`: {source}")]
    Store {
        /// The server's name.
        name: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

/// Records the configuration file's `[[mcp_servers]]` in the default organization, idempotently:
/// a server of the same name is updated in place (keeping its id), others are left alone.
pub async fn record_configured_servers(
    entries: &[McpServerEntry],
    database: &Database,
) -> Result<(), ConfiguredServersError> {
    let stored: Vec<McpServer> = database.list_documents(DEFAULT_ORGANIZATION, None).await?;
    for entry in entries {
        let existing = stored.iter().find(|s| s.name == entry.name);
        let (id, created_at) =
            existing.map_or_else(|| (Uuid::new_v4(), Utc::now()), |s| (s.id, s.created_at));
        let mut server = entry.to_document(DEFAULT_ORGANIZATION, id, created_at)?;
        let result = match existing {
            None => database.insert_document(&server).await,
            Some(existing) => {
                server.last_scanned_at = existing.last_scanned_at;
                if *existing == server {
                    continue;
                }
                database.update_document(&server).await
            }
        };
        result.map_err(|source| ConfiguredServersError::Store {
            name: entry.name.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Puts every organization's stored configuration in force (at start; the default
/// organization's file policy was stored already).
pub async fn load_organizations(
    database: &Database,
    governor: &Governor,
    upstreams: &Upstreams,
    trackers: &Trackers,
) -> Result<(), StoreError> {
    for organization in database.list_organizations().await? {
        let org = organization.id.as_str();
        let loaded = async {
            migrate_key_selectors(database, org).await?;
            let closed = organization.closed_at.is_some();
            put_in_force(database, governor, upstreams, trackers, org, closed).await
        };
        // One organization's unreadable configuration (stored by an older build, say) must not
        // keep the others from being served: it fails closed alone.
        if let Err(error) = loaded.await {
            tracing::error!(organization = org, %error, "cannot load the organization's configuration; denying its calls until it is fixed");
            governor
                .set_policy(org, &deny_everything(INVALID_POLICY))
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
        }
    }
    Ok(())
}

/// Rewrites the `apikey:<name>` selectors of documents stored before keys were selected by id
/// (in rules, approval policies and tool visibility) to `apikey:<id>`, where the organization
/// has exactly one usable key of that name. Idempotent: run at every start. A name no key or
/// several keys carry is left as it is and logged: in a policy it fails to compile, so the
/// organization denies every call until an admin fixes it; in a tool's visibility it matches
/// nobody. Both fail closed.
pub async fn migrate_key_selectors(
    database: &Database,
    organization_id: &str,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let keys = database.list_api_keys(organization_id).await?;
    let resolve = |selector: &str| -> Option<String> {
        let name = selector.strip_prefix("apikey:")?;
        if Uuid::parse_str(name).is_ok() {
            return None;
        }
        let mut matching = keys
            .iter()
            .filter(|key| key.name == name && key.accepts_at(now));
        match (matching.next(), matching.next()) {
            (Some(key), None) => {
                tracing::warn!(organization = organization_id, selector, key = %key.id, user = %key.user_id, "API key selected by name rewritten to its id; check that this is the key meant");
                Some(format!("apikey:{}", key.id))
            }
            _ => {
                tracing::error!(
                    organization = organization_id,
                    selector,
                    "API key selector names no single key; select the key by id (apikey:<id>)"
                );
                None
            }
        }
    };
    rewrite_stored(database, organization_id, |stored| {
        let mut document = stored?;
        let mut changed = 0;
        for rule in &mut document.policy.rules {
            for selector in &mut rule.principals {
                if let Some(by_id) = resolve(selector) {
                    *selector = by_id;
                    changed += 1;
                }
            }
        }
        for policy in &mut document.approval_policies {
            let stages = policy
                .escalation
                .iter_mut()
                .map(|stage| &mut stage.approvers);
            for approvers in std::iter::once(&mut policy.approvers).chain(stages) {
                changed += migrate_selectors(approvers, &resolve);
            }
        }
        (changed > 0).then(|| {
            let entry = AuditEntry::new(
                organization_id,
                now,
                AuditEventKind::PolicyChanged {
                    changed_by: "migration: API keys selected by id".to_owned(),
                    rules: document.policy.rules.len(),
                },
            );
            (document, vec![entry])
        })
    })
    .await?;
    let configurations: Vec<ToolConfiguration> =
        database.list_documents(organization_id, None).await?;
    for mut configuration in configurations {
        if migrate_selectors(&mut configuration.visible_to, &resolve) > 0 {
            database.update_document(&configuration).await?;
        }
    }
    Ok(())
}

/// Rewrites the selectors `resolve` knows a replacement for; returns how many.
fn migrate_selectors(
    selectors: &mut [PrincipalSelector],
    resolve: &impl Fn(&str) -> Option<String>,
) -> usize {
    let mut changed = 0;
    for selector in selectors {
        if let Some(Ok(by_id)) = resolve(&selector.to_string()).map(|text| text.parse()) {
            *selector = by_id;
            changed += 1;
        }
    }
    changed
}

/// Puts one organization's stored policy, tool configurations, upstream servers and issue
/// trackers in force:
/// at start, and whenever any replica announces that they changed. An organization without a
/// stored policy gets the empty one; one whose stored policy no longer compiles (a newer build's
/// stricter checks) denies every call until an admin fixes it, rather than keeping the server
/// down.
pub async fn reload_organization(
    database: &Database,
    governor: &Governor,
    upstreams: &Upstreams,
    trackers: &Trackers,
    organization_id: &str,
) -> Result<(), StoreError> {
    let closed = database
        .get_organization(organization_id)
        .await?
        .is_some_and(|o| o.closed_at.is_some());
    put_in_force(
        database,
        governor,
        upstreams,
        trackers,
        organization_id,
        closed,
    )
    .await
}

/// [`reload_organization`] for an organization whose closing is known: a closed one denies
/// every call and has no tool settings, upstreams or trackers.
async fn put_in_force(
    database: &Database,
    governor: &Governor,
    upstreams: &Upstreams,
    trackers: &Trackers,
    organization_id: &str,
    closed: bool,
) -> Result<(), StoreError> {
    let org = organization_id;
    if closed {
        governor
            .set_policy(org, &deny_everything("the organization is closed"))
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        governor
            .registry()
            .replace_settings(org, Default::default());
        upstreams.sync(org, Vec::new()).await;
        trackers.forget(org);
        return Ok(());
    }
    let document = database
        .load_policy(org)
        .await?
        .map(|stored| stored.document)
        .unwrap_or_default();
    if let Err(error) = governor.set_policy(org, &document) {
        tracing::error!(organization = org, %error, "stored policy does not compile; denying every call until it is fixed");
        governor
            .set_policy(org, &deny_everything(INVALID_POLICY))
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    let configurations: Vec<ToolConfiguration> = database.list_documents(org, None).await?;
    let settings = configurations
        .iter()
        .map(|c| (c.tool.clone(), c.settings()))
        .collect();
    governor.registry().replace_settings(org, settings);
    let servers: Vec<McpServer> = database.list_documents(org, None).await?;
    upstreams.sync(org, servers).await;
    trackers.reload(org).await
}

/// A policy denying every call with `message`.
fn deny_everything(message: &str) -> GovernanceDocument {
    let mut document = GovernanceDocument::default();
    document.policy.default = preloop_core::policy::ActionKind::Deny;
    document.policy.default_message = Some(message.to_owned());
    document
}

/// Why an organization whose configuration cannot be read or compiled denies every call.
const INVALID_POLICY: &str = "the organization's stored policy is invalid; an admin must fix it";

/// Puts an organization's configuration in force: on this replica after a change here, and when
/// another replica announces one (everything, after a gap in the announcements).
#[derive(Clone)]
pub struct ConfigReloads {
    /// The store the configuration is read from.
    pub database: Arc<Database>,
    /// Where policies and tool settings go.
    pub governor: Arc<Governor>,
    /// The organizations' running upstreams.
    pub upstreams: Arc<Upstreams>,
    /// The organizations' connected trackers.
    pub trackers: Trackers,
}

impl std::fmt::Debug for ConfigReloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigReloads")
    }
}

#[async_trait::async_trait]
impl Reload for ConfigReloads {
    async fn reload(&self, organization: &str) {
        let reloaded = reload_organization(
            &self.database,
            &self.governor,
            &self.upstreams,
            &self.trackers,
            organization,
        )
        .await;
        if let Err(error) = reloaded {
            tracing::warn!(%error, %organization, "reloading an organization failed");
        }
    }
}

impl Follower for ConfigReloads {
    const CHANNEL: &'static str = preloop_store::CONFIG_CHANNEL;

    async fn on_payload(&self, organization: String) {
        Reload::reload(self, &organization).await;
    }

    async fn on_renewed(&self) {
        let reloaded = load_organizations(
            &self.database,
            &self.governor,
            &self.upstreams,
            &self.trackers,
        )
        .await;
        if let Err(error) = reloaded {
            tracing::warn!(%error, "reloading the configuration failed");
        }
    }
}
