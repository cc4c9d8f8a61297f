//! The configuration file (TOML), environment variables and flags, merged in that order of
//! precedence: flag > environment > file > default.

use preloop_core::approval::ApprovalPolicy;
use preloop_core::documents::{McpServer, McpTransport};
use preloop_core::policy::PolicyDocument;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod trackers;

pub use trackers::{TrackerEntry, TrackerEntryError};

/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = ".preloop";

/// `[server]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Listen address.
    pub bind: Option<String>,
    /// Public base URL, used in approval links.
    pub public_url: Option<String>,
    /// Host names the MCP endpoint accepts (DNS-rebinding protection).
    pub allowed_hosts: Option<Vec<String>>,
    /// Requests per second each principal may make (MCP and REST together; default 1,000).
    pub requests_per_second: Option<u32>,
    /// Requests a principal may make at once above the steady rate (default 2,000).
    pub burst: Option<u32>,
    /// Seconds between WebSocket heartbeats, which also re-check each socket's credential
    /// (default 25).
    pub websocket_heartbeat_seconds: Option<u64>,
}

/// `[database]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://...` or `postgres://...`.
    pub url: Option<String>,
}

/// One `[[mcp_servers]]` entry.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerEntry {
    /// Unique name.
    pub name: String,
    /// `stdio` or `http`.
    pub transport: String,
    /// Program (stdio).
    pub command: Option<String>,
    /// Arguments (stdio).
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment (stdio).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// URL (http).
    pub url: Option<String>,
    /// Headers (http).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Exposed-name prefix; `""` keeps the upstream names.
    pub tool_prefix: Option<String>,
    /// Per-call timeout in seconds (default 60).
    pub timeout_seconds: Option<u64>,
    /// Most concurrent calls to the server (default 32); more wait their turn within the timeout.
    pub max_concurrency: Option<u32>,
    /// Disabled servers expose no tools (default true).
    pub enabled: Option<bool>,
    /// Keep HTTP connections open between calls (default false; see `McpServer::keep_alive`).
    pub keep_alive: Option<bool>,
    /// Forward calls of tools the server does not list (default false; see
    /// `McpServer::forward_unlisted`).
    pub forward_unlisted: Option<bool>,
}

/// Longest WebSocket heartbeat interval (longer settings are cut to it).
const MAX_HEARTBEAT_SECONDS: u64 = 3600;
/// Longest per-call timeout of an upstream server: one day.
pub const MAX_UPSTREAM_TIMEOUT_SECONDS: u64 = 24 * 3600;
/// Most concurrent calls an upstream server may be given.
pub const MAX_UPSTREAM_CONCURRENCY: u32 = 10_000;

/// Default per-call timeout of an upstream server.
pub const DEFAULT_UPSTREAM_TIMEOUT_SECONDS: u64 = 60;
/// Default concurrency bound of an upstream server.
pub const DEFAULT_UPSTREAM_CONCURRENCY: u32 = 32;

/// What is wrong with an `[[mcp_servers]]` entry (or a server given to the REST API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerEntryError {
    /// The name is empty, too long or has other characters.
    #[error("mcp server name `{name}` is invalid: use 1 to 64 letters, digits, `_` or `-`")]
    Name {
        /// The name.
        name: String,
    },
    /// The transport needs a field the entry lacks.
    #[error("mcp server `{name}`: transport \"{transport}\" needs `{field}`")]
    Missing {
        /// The server.
        name: String,
        /// `stdio` or `http`.
        transport: &'static str,
        /// The field it needs.
        field: &'static str,
    },
    /// The URL is not http(s).
    #[error("mcp server `{name}`: `{url}` is not an http(s) URL")]
    Url {
        /// The server.
        name: String,
        /// The URL.
        url: String,
    },
    /// The transport is neither `stdio` nor `http`.
    #[error("mcp server `{name}`: unknown transport `{transport}` (use \"stdio\" or \"http\")")]
    Transport {
        /// The server.
        name: String,
        /// The transport named.
        transport: String,
    },
    /// The timeout or the concurrency bound is out of range.
    #[error(
        "mcp server `{name}`: `timeout_seconds` must be 1 to {MAX_UPSTREAM_TIMEOUT_SECONDS} and `max_concurrency` 1 to {MAX_UPSTREAM_CONCURRENCY}"
    )]
    Bounds {
        /// The server.
        name: String,
    },
}

impl McpServerEntry {
    /// The server as stored for `organization_id`; the error names what is missing or wrong.
    pub fn to_document(
        &self,
        organization_id: &str,
        id: uuid::Uuid,
        created_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<McpServer, ServerEntryError> {
        let name = &self.name;
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !valid_name {
            return Err(ServerEntryError::Name { name: name.clone() });
        }
        let transport = match self.transport.as_str() {
            "stdio" => McpTransport::Stdio {
                command: self
                    .command
                    .clone()
                    .ok_or_else(|| ServerEntryError::Missing {
                        name: name.clone(),
                        transport: "stdio",
                        field: "command",
                    })?,
                args: self.args.clone(),
                env: self.env.clone(),
            },
            "http" => {
                let url = self.url.clone().ok_or_else(|| ServerEntryError::Missing {
                    name: name.clone(),
                    transport: "http",
                    field: "url",
                })?;
                match url.parse::<axum::http::Uri>() {
                    Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => {}
                    _ => {
                        return Err(ServerEntryError::Url {
                            name: name.clone(),
                            url,
                        });
                    }
                }
                McpTransport::Http {
                    url,
                    headers: self.headers.clone(),
                }
            }
            other => {
                return Err(ServerEntryError::Transport {
                    name: name.clone(),
                    transport: other.to_owned(),
                });
            }
        };
        let timeout_seconds = self
            .timeout_seconds
            .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_SECONDS);
        let max_concurrency = self.max_concurrency.unwrap_or(DEFAULT_UPSTREAM_CONCURRENCY);
        if !(1..=MAX_UPSTREAM_TIMEOUT_SECONDS).contains(&timeout_seconds)
            || !(1..=MAX_UPSTREAM_CONCURRENCY).contains(&max_concurrency)
        {
            return Err(ServerEntryError::Bounds { name: name.clone() });
        }
        Ok(McpServer {
            id,
            organization_id: organization_id.to_owned(),
            name: name.clone(),
            transport,
            tool_prefix: self.tool_prefix.clone(),
            enabled: self.enabled.unwrap_or(true),
            timeout_seconds,
            max_concurrency,
            keep_alive: self.keep_alive.unwrap_or(false),
            forward_unlisted: self.forward_unlisted.unwrap_or(false),
            last_scanned_at: None,
            created_at,
        })
    }
}

impl std::fmt::Debug for McpServerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerEntry")
            .field("name", &self.name)
            .field("transport", &self.transport)
            .field("command", &self.command)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerSection,
    /// `[database]`.
    #[serde(default)]
    pub database: DatabaseSection,
    /// `[[mcp_servers]]`.
    #[serde(default)]
    pub mcp_servers: Vec<McpServerEntry>,
    /// `[[trackers]]`: issue trackers, connected in the default organization.
    #[serde(default)]
    pub trackers: Vec<TrackerEntry>,
    /// `[[approval_policies]]`.
    #[serde(default)]
    pub approval_policies: Vec<ApprovalPolicy>,
    /// `[policy]`; `None` when the file has none (the stored policy is then left alone).
    pub policy: Option<PolicyDocument>,
    /// `[channels.*]`: how approvers are reached.
    #[serde(default)]
    pub channels: crate::channels::ChannelsSection,
    /// `[auth.*]`: external sign-in.
    #[serde(default)]
    pub auth: AuthSection,
    /// `[security]`: what other organizations' upstream servers may run and reach.
    #[serde(default)]
    pub security: crate::gateway::upstream::egress::SecuritySection,
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `[auth.jwks]`: accept RS256/ES256 tokens from an identity provider.
    pub jwks: Option<crate::auth::jwks::JwksConfig>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("configuration file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// A `${VAR}` cannot be expanded.
    #[error("configuration file {path}: {source}")]
    Variable {
        /// The file.
        path: String,
        /// What is wrong with it.
        #[source]
        source: ExpandError,
    },
    /// The listen address does not parse.
    #[error("invalid bind address `{value}`: {source}")]
    Bind {
        /// The address as given.
        value: String,
        /// Why it does not parse.
        #[source]
        source: std::net::AddrParseError,
    },
}

/// Why `${...}` in the configuration file cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandError {
    /// A `${` has no closing `}`.
    #[error("an unterminated `${{`")]
    Unterminated,
    /// The variable named is not set.
    #[error("environment variable `{name}` is not set")]
    Unset {
        /// The variable.
        name: String,
    },
}

/// Expands `${NAME}` from the environment; `$${` stays a literal `${`.
pub fn expand_variables(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(ExpandError::Unterminated)?;
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| ExpandError::Unset {
            name: name.to_owned(),
        })?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ConfigFile {
    /// Reads and parses a configuration file, expanding `${VAR}` from the environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let expanded =
            expand_variables(&text, |name| std::env::var(name).ok()).map_err(|source| {
                ConfigError::Variable {
                    path: shown.clone(),
                    source,
                }
            })?;
        toml::from_str(&expanded).map_err(|source| ConfigError::Parse {
            path: shown,
            source,
        })
    }
}

/// Settings given on the command line or in the environment (clap reads both).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--bind` / `PRELOOP_BIND`.
    pub bind: Option<String>,
    /// `--data-dir` / `PRELOOP_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url` / `DATABASE_URL`.
    pub database_url: Option<String>,
}

/// The resolved settings of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub bind: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: String,
    /// Public base URL.
    pub public_url: String,
    /// Host names accepted by the MCP endpoint.
    pub allowed_hosts: Vec<String>,
    /// Requests per second per principal.
    pub requests_per_second: u32,
    /// Burst per principal.
    pub burst: u32,
    /// Between WebSocket heartbeats.
    pub websocket_heartbeat: std::time::Duration,
    /// The file's declarative content.
    pub file: ConfigFile,
}

impl Settings {
    /// Resolves the settings from the file (if any) and the overrides.
    pub fn resolve(file: ConfigFile, overrides: Overrides) -> Result<Self, ConfigError> {
        let bind_text = overrides
            .bind
            .or_else(|| file.server.bind.clone())
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind: SocketAddr = bind_text.parse().map_err(|source| ConfigError::Bind {
            value: bind_text.clone(),
            source,
        })?;
        let data_dir = overrides
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = overrides
            .database_url
            .or_else(|| file.database.url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("preloop.db").display()));
        let public_url = file
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bind}"))
            .trim_end_matches('/')
            .to_owned();
        let allowed_hosts = file.server.allowed_hosts.clone().unwrap_or_else(|| {
            let mut hosts = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            let ip = bind.ip().to_string();
            if !bind.ip().is_unspecified() && !hosts.contains(&ip) {
                hosts.push(ip);
            }
            hosts
        });
        Ok(Self {
            bind,
            data_dir,
            database_url,
            public_url,
            allowed_hosts,
            requests_per_second: file
                .server
                .requests_per_second
                .unwrap_or(crate::auth::limits::DEFAULT_REQUESTS_PER_SECOND),
            burst: file
                .server
                .burst
                .unwrap_or(crate::auth::limits::DEFAULT_BURST),
            websocket_heartbeat: file
                .server
                .websocket_heartbeat_seconds
                .filter(|&seconds| seconds > 0)
                .map_or(crate::web::ws::DEFAULT_HEARTBEAT, |seconds| {
                    std::time::Duration::from_secs(seconds.min(MAX_HEARTBEAT_SECONDS))
                }),
            file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_and_escape() {
        let lookup = |name: &str| (name == "TOKEN").then(|| "abc".to_owned());
        assert_eq!(
            expand_variables("Bearer ${TOKEN}!", lookup).unwrap(),
            "Bearer abc!"
        );
        assert_eq!(
            expand_variables("cost $${TOKEN}", lookup).unwrap(),
            "cost ${TOKEN}"
        );
        assert_eq!(
            expand_variables("${MISSING}", lookup).unwrap_err(),
            ExpandError::Unset {
                name: "MISSING".to_owned()
            }
        );
        assert!(expand_variables("${OPEN", lookup).is_err());
    }

    #[test]
    fn the_design_example_parses_and_resolves() {
        let text = r#"
[server]
bind = "127.0.0.1:8000"
public_url = "http://127.0.0.1:8000/"
allowed_hosts = ["localhost", "127.0.0.1"]

[database]
url = "sqlite://.preloop/preloop.db"

[[mcp_servers]]
name = "time"
transport = "stdio"
command = "mcp-server-time"
args = []
env = {}

[[mcp_servers]]
name = "docs"
transport = "http"
url = "http://127.0.0.1:9000/mcp"
headers = { Authorization = "Bearer x" }

[[approval_policies]]
name = "ops"
default = true
approvers = ["role:admin"]
quorum = 1
timeout = "10m"
on_timeout = "deny"
mode = "blocking"
channels = ["web"]

[policy]
default = "allow"

[[policy.rules]]
description = "No deletions by agents"
tools = ["*__delete_*"]
action = "deny"
message = "Deletions are not allowed"
"#;
        let file: ConfigFile = toml::from_str(text).unwrap();
        assert_eq!(file.mcp_servers.len(), 2);
        assert!(!format!("{:?}", file.mcp_servers[1]).contains("Bearer x"));
        let settings = Settings::resolve(file, Overrides::default()).unwrap();
        assert_eq!(settings.public_url, "http://127.0.0.1:8000");
        assert_eq!(settings.database_url, "sqlite://.preloop/preloop.db");
        let overridden = Settings::resolve(
            ConfigFile::default(),
            Overrides {
                bind: Some("0.0.0.0:9999".into()),
                data_dir: Some("/tmp/p".into()),
                database_url: None,
            },
        )
        .unwrap();
        assert_eq!(overridden.database_url, "sqlite:///tmp/p/preloop.db");
        assert_eq!(overridden.bind.port(), 9999);
    }

    #[test]
    fn bad_settings_are_named() {
        let error = Settings::resolve(
            ConfigFile::default(),
            Overrides {
                bind: Some("localhost".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("bind address"), "{error}");
        assert!(toml::from_str::<ConfigFile>("[server]\nbnd = 1").is_err());
    }
}
