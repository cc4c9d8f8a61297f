//! Organizations' upstream MCP servers and their tools' configurations: checked, stored,
//! started or stopped, put in force and announced to the other replicas.

use super::Replicas;
use chrono::{DateTime, Utc};
use preloop_core::documents::{DiscoveredTool, McpServer, McpTransport, ToolConfiguration};
use preloop_core::governor::Governor;
use preloop_core::principal::SelectorError;
use preloop_core::registry::{RegisteredTool, ToolSettings};
use preloop_core::store::{DocumentStore, StoreError};
use preloop_store::Database;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// What views show instead of a stored credential, and what a caller sends back to keep it.
pub const REDACTED: &str = "<redacted>";

/// An error of a layer above the services (the configuration's or the gateway's), kept whole
/// as the source of a [`ServerError`].
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The running upstream servers, as this service drives them. They live in the gateway, a
/// layer above the services, which implements this (see `state`).
#[async_trait::async_trait]
pub trait UpstreamControl: Send + Sync {
    /// Refuses a server its organization may not run or reach.
    fn permit(&self, server: &McpServer) -> Result<(), Cause>;
    /// How many servers the organization may have (`None`: any number).
    fn server_limit(&self, organization_id: &str) -> Option<usize>;
    /// Starts `server`, or restarts it with these settings; its tools are discovered in the
    /// background.
    async fn start(&self, server: McpServer);
    /// Stops the server, if it runs; its tools disappear.
    async fn stop(&self, organization_id: &str, id: Uuid);
    /// Rediscovers a running server's tools now and says how many it has (the error says why
    /// it could not be reached); `None` when the server does not run.
    async fn rescan(&self, organization_id: &str, id: Uuid) -> Option<Result<usize, Cause>>;
}

/// A server as a caller describes it (the configuration's `[[mcp_servers]]` entry).
pub trait ServerDescription {
    /// The stored document for `organization_id` with this id and creation time; the error
    /// names what is missing or wrong.
    fn document(
        &self,
        organization_id: &str,
        id: Uuid,
        created_at: DateTime<Utc>,
    ) -> Result<McpServer, Cause>;
}

/// Why a server or tool change did not happen, or what is not there.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No such server in the organization.
    #[error("no MCP server `{id}`")]
    NoServer {
        /// The id asked for.
        id: Uuid,
    },
    /// The tool has no configuration.
    #[error("tool `{tool}` has no configuration")]
    NoConfiguration {
        /// The exposed tool name asked for.
        tool: String,
    },
    /// The description is not a server.
    #[error("{source}")]
    Invalid {
        /// What is missing or wrong.
        #[source]
        source: Cause,
    },
    /// A credential came back redacted for a new destination.
    #[error(
        "the server's URL origin or program changed: give its credentials again instead of `<redacted>`"
    )]
    CredentialsNeeded,
    /// The organization may not run or reach the server.
    #[error("{refusal}")]
    Refused {
        /// Why not.
        refusal: Cause,
    },
    /// The organization has as many servers as it may.
    #[error("an organization may have at most {limit} MCP servers")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// The name is taken.
    #[error("an MCP server `{name}` exists")]
    Exists {
        /// The name.
        name: String,
    },
    /// The server does not run, so it cannot be scanned.
    #[error("MCP server `{name}` is disabled")]
    Disabled {
        /// The server's name.
        name: String,
    },
    /// The server did not answer a scan.
    #[error("{source}")]
    Unreachable {
        /// What went wrong.
        #[source]
        source: Cause,
    },
    /// A visibility selector names an API key by name.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// A tool names an approval policy the organization does not define.
    #[error("approval policy `{name}` is not defined")]
    UnknownApprovalPolicy {
        /// The name.
        name: String,
    },
    /// The store failed, or holds nothing under that key.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a scan found.
#[derive(Debug, Clone, Copy)]
pub struct Scanned {
    /// How many tools the server has.
    pub tools: usize,
    /// When they were discovered.
    pub at: DateTime<Utc>,
}

/// Registers, changes, scans and removes organizations' upstream servers and configures their
/// tools. Each change is checked (what the organization may run and reach, credentials kept
/// only for the destination they were given for), stored, put in force here (the upstream
/// started or stopped, the registry told) and announced to the other replicas.
#[derive(Clone)]
pub struct Servers {
    governor: Arc<Governor>,
    store: Arc<Database>,
    upstreams: Arc<dyn UpstreamControl>,
    replicas: Replicas,
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Servers")
    }
}

impl Servers {
    /// Servers kept in `store`, run by `upstreams`, their tools in `governor`'s registry.
    pub fn new(
        governor: Arc<Governor>,
        store: Arc<Database>,
        upstreams: Arc<dyn UpstreamControl>,
        replicas: Replicas,
    ) -> Self {
        Self {
            governor,
            store,
            upstreams,
            replicas,
        }
    }

    /// The organization's servers.
    pub async fn list(&self, organization_id: &str) -> Result<Vec<McpServer>, ServerError> {
        Ok(self.store.list_documents(organization_id, None).await?)
    }

    /// One server of the organization.
    pub async fn get(&self, organization_id: &str, id: Uuid) -> Result<McpServer, ServerError> {
        DocumentStore::<McpServer>::get_document(&*self.store, organization_id, &id.to_string())
            .await?
            .ok_or(ServerError::NoServer { id })
    }

    /// Registers a server and starts it (its tools are discovered in the background).
    pub async fn create(
        &self,
        organization_id: &str,
        description: &impl ServerDescription,
    ) -> Result<McpServer, ServerError> {
        let server = description
            .document(organization_id, Uuid::new_v4(), Utc::now())
            .map_err(|source| ServerError::Invalid { source })?;
        self.permit(&server)?;
        if let Some(limit) = self.upstreams.server_limit(organization_id)
            && self.list(organization_id).await?.len() >= limit
        {
            return Err(ServerError::TooMany { limit });
        }
        self.store
            .insert_document(&server)
            .await
            .map_err(|error| match error {
                StoreError::AlreadyExists => ServerError::Exists {
                    name: server.name.clone(),
                },
                other => other.into(),
            })?;
        self.put_in_force(server.clone()).await;
        Ok(server)
    }

    /// Replaces a server's settings and restarts it (its tools are rediscovered). A credential
    /// sent back as [`REDACTED`] keeps the stored one, for the same URL origin or program only.
    pub async fn replace(
        &self,
        organization_id: &str,
        id: Uuid,
        description: &impl ServerDescription,
    ) -> Result<McpServer, ServerError> {
        let old = self.get(organization_id, id).await?;
        let mut server = description
            .document(organization_id, id, old.created_at)
            .map_err(|source| ServerError::Invalid { source })?;
        keep_credentials(&mut server.transport, &old.transport)?;
        server.last_scanned_at = old.last_scanned_at;
        self.permit(&server)?;
        self.store.update_document(&server).await?;
        self.put_in_force(server.clone()).await;
        Ok(server)
    }

    /// Stops and deletes a server; its tools disappear at once.
    pub async fn remove(&self, organization_id: &str, id: Uuid) -> Result<(), ServerError> {
        let server = self.get(organization_id, id).await?;
        self.upstreams.stop(organization_id, id).await;
        DocumentStore::<DiscoveredTool>::replace_children(
            &*self.store,
            organization_id,
            &id.to_string(),
            &[],
        )
        .await?;
        DocumentStore::<McpServer>::delete_document(
            &*self.store,
            organization_id,
            &server.id.to_string(),
        )
        .await?;
        self.replicas.announce(organization_id).await;
        Ok(())
    }

    /// Rediscovers a running server's tools now.
    pub async fn scan(&self, organization_id: &str, id: Uuid) -> Result<Scanned, ServerError> {
        let mut server = self.get(organization_id, id).await?;
        let tools = self
            .upstreams
            .rescan(organization_id, id)
            .await
            .ok_or_else(|| ServerError::Disabled {
                name: server.name.clone(),
            })?
            .map_err(|source| ServerError::Unreachable { source })?;
        let at = Utc::now();
        server.last_scanned_at = Some(at);
        self.store.update_document(&server).await?;
        Ok(Scanned { tools, at })
    }

    /// A server's tools as the registry exposes them.
    pub async fn tools(
        &self,
        organization_id: &str,
        id: Uuid,
    ) -> Result<Vec<RegisteredTool>, ServerError> {
        let server = self.get(organization_id, id).await?;
        Ok(self
            .governor
            .registry()
            .server_tools(Some(organization_id), &server.name))
    }

    /// The organization's tool configurations.
    pub async fn configurations(
        &self,
        organization_id: &str,
    ) -> Result<Vec<ToolConfiguration>, ServerError> {
        Ok(self.store.list_documents(organization_id, None).await?)
    }

    /// One tool's configuration.
    pub async fn configuration(
        &self,
        organization_id: &str,
        tool: &str,
    ) -> Result<ToolConfiguration, ServerError> {
        DocumentStore::<ToolConfiguration>::get_document(&*self.store, organization_id, tool)
            .await?
            .ok_or_else(|| ServerError::NoConfiguration {
                tool: tool.to_owned(),
            })
    }

    /// Sets a tool's configuration (kept across rescans; the tool need not exist yet) and puts
    /// it in force. Visibility selects API keys by id, and the approval policy must exist.
    pub async fn configure(
        &self,
        organization_id: &str,
        tool: &str,
        settings: ToolSettings,
    ) -> Result<ToolConfiguration, ServerError> {
        for selector in &settings.visible_to {
            selector.require_key_id()?;
        }
        if let Some(name) = &settings.approval_policy {
            let known = self
                .governor
                .governance(organization_id)
                .is_some_and(|g| g.approval_policy(Some(name)).is_some());
            if !known {
                return Err(ServerError::UnknownApprovalPolicy { name: name.clone() });
            }
        }
        let configuration = ToolConfiguration {
            organization_id: organization_id.to_owned(),
            tool: tool.to_owned(),
            enabled: settings.enabled,
            visible_to: settings.visible_to,
            description: settings.description,
            approval_policy: settings.approval_policy,
            updated_at: Utc::now(),
        };
        let exists =
            DocumentStore::<ToolConfiguration>::get_document(&*self.store, organization_id, tool)
                .await?
                .is_some();
        if exists {
            self.store.update_document(&configuration).await?;
        } else {
            self.store.insert_document(&configuration).await?;
        }
        self.governor.registry().configure(
            Some(organization_id),
            tool,
            Some(configuration.settings()),
        );
        self.replicas.announce(organization_id).await;
        Ok(configuration)
    }

    /// Removes a tool's configuration: it is enabled for everyone again.
    pub async fn unconfigure(&self, organization_id: &str, tool: &str) -> Result<(), ServerError> {
        DocumentStore::<ToolConfiguration>::delete_document(&*self.store, organization_id, tool)
            .await?;
        self.governor
            .registry()
            .configure(Some(organization_id), tool, None);
        self.replicas.announce(organization_id).await;
        Ok(())
    }

    fn permit(&self, server: &McpServer) -> Result<(), ServerError> {
        self.upstreams
            .permit(server)
            .map_err(|refusal| ServerError::Refused { refusal })
    }

    /// Starts (or restarts) a stored server here and tells the other replicas.
    async fn put_in_force(&self, server: McpServer) {
        let organization_id = server.organization_id.clone();
        self.upstreams.start(server).await;
        self.replicas.announce(&organization_id).await;
    }
}

/// Keeps stored credentials that came back as [`REDACTED`], but only for the destination they
/// were given for: the same URL origin, or the same program and arguments. A redacted
/// credential left for a new destination is refused (the caller gives it again instead).
fn keep_credentials(new: &mut McpTransport, old: &McpTransport) -> Result<(), ServerError> {
    let kept = match (&mut *new, old) {
        (
            McpTransport::Http { url, headers },
            McpTransport::Http {
                url: old_url,
                headers: old,
            },
        ) if same_origin(url, old_url) => {
            keep_secrets(headers, old);
            true
        }
        (
            McpTransport::Stdio { command, args, env },
            McpTransport::Stdio {
                command: old_command,
                args: old_args,
                env: old,
            },
        ) if command == old_command && args == old_args => {
            keep_secrets(env, old);
            true
        }
        _ => false,
    };
    let redacted_left = match new {
        McpTransport::Http { headers, .. } => headers.values().any(|v| v == REDACTED),
        McpTransport::Stdio { env, .. } => env.values().any(|v| v == REDACTED),
    };
    if !kept && redacted_left {
        return Err(ServerError::CredentialsNeeded);
    }
    Ok(())
}

/// Whether two URLs have the same scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// Keeps stored credentials whose value came back as the redaction marker.
fn keep_secrets(new: &mut BTreeMap<String, String>, old: &BTreeMap<String, String>) {
    for (name, value) in new.iter_mut() {
        if value == REDACTED
            && let Some(stored) = old.get(name)
        {
            value.clone_from(stored);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str, token: &str) -> McpTransport {
        McpTransport::Http {
            url: url.to_owned(),
            headers: BTreeMap::from([("Authorization".to_owned(), token.to_owned())]),
        }
    }

    #[test]
    fn a_redacted_credential_is_kept_only_for_the_same_destination() {
        let stored = http("https://example.com/mcp", "Bearer s3cret");
        let mut same = http("https://example.com/other", REDACTED);
        keep_credentials(&mut same, &stored).unwrap();
        assert_eq!(same, http("https://example.com/other", "Bearer s3cret"));

        let mut elsewhere = http("https://attacker.example/mcp", REDACTED);
        assert!(matches!(
            keep_credentials(&mut elsewhere, &stored),
            Err(ServerError::CredentialsNeeded)
        ));
        let mut given_again = http("https://attacker.example/mcp", "Bearer new");
        keep_credentials(&mut given_again, &stored).unwrap();
        assert_eq!(
            given_again,
            http("https://attacker.example/mcp", "Bearer new")
        );

        let program = |args: &[&str], value: &str| McpTransport::Stdio {
            command: "python3".to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: BTreeMap::from([("TOKEN".to_owned(), value.to_owned())]),
        };
        let mut rerun = program(&["server.py"], REDACTED);
        keep_credentials(&mut rerun, &program(&["server.py"], "s3cret")).unwrap();
        assert_eq!(rerun, program(&["server.py"], "s3cret"));
        let mut other = program(&["leak.py"], REDACTED);
        assert!(keep_credentials(&mut other, &program(&["server.py"], "s3cret")).is_err());
    }
}
