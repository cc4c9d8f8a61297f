//! Configuration aggregates stored as documents: MCP servers and their discovered tools, tool
//! configurations, trackers, projects, flows and flow executions.
//!
//! Each has its own table of the same shape (organization, id, parent, a name unique under the
//! parent, the JSON document), so one generic [`DocumentStore`] serves them all.

use crate::principal::PrincipalSelector;
use crate::registry::{ToolDescriptor, ToolSettings};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A stored configuration document.
pub trait Document:
    Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static
{
    /// The table (and kind) name.
    const KIND: &'static str;
    /// Identifier, unique within the organization.
    fn id(&self) -> String;
    /// Owning organization.
    fn organization_id(&self) -> &str;
    /// The parent document's id (a tool's server, a project's tracker, an execution's flow).
    fn parent_id(&self) -> Option<String> {
        None
    }
    /// A name unique under the parent; listings are sorted by it.
    fn name(&self) -> String;
}

fn redacted_map(map: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    map.keys().map(|k| (k.as_str(), "<redacted>")).collect()
}

/// How to reach an upstream MCP server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum McpTransport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio {
        /// Program.
        command: String,
        /// Arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Environment (may hold secrets; redacted in `Debug`).
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// Streamable HTTP.
    Http {
        /// Endpoint URL.
        url: String,
        /// Headers (may hold credentials; redacted in `Debug`).
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

impl std::fmt::Debug for McpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdio { command, args, env } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &redacted_map(env))
                .finish(),
            Self::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", url)
                .field("headers", &redacted_map(headers))
                .finish(),
        }
    }
}

/// An upstream MCP server registered with Preloop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServer {
    /// Identifier.
    pub id: Uuid,
    /// Organization.
    pub organization_id: String,
    /// Unique name; tools are exposed as `{name}__{tool}` unless `tool_prefix` says otherwise.
    pub name: String,
    /// How to reach it.
    #[serde(flatten)]
    pub transport: McpTransport,
    /// Prefix for exposed tool names (`""` keeps upstream names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_prefix: Option<String>,
    /// Disabled servers expose no tools.
    pub enabled: bool,
    /// Per-call timeout in seconds.
    pub timeout_seconds: u64,
    /// Most concurrent calls to this server.
    pub max_concurrency: u32,
    /// Keep HTTP connections open between calls. Only for servers that set `TCP_NODELAY`: with
    /// others, each call waits for a delayed ACK (about 40 ms) before its connection is free.
    #[serde(default)]
    pub keep_alive: bool,
    /// Calls of tools it does not list (tools a server keeps hidden) are forwarded to it,
    /// governed by the rules like the others but never held for approval. Off by default: a
    /// name the gateway does not list is an unknown tool.
    #[serde(default)]
    pub forward_unlisted: bool,
    /// When its tools were last discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scanned_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl Document for McpServer {
    const KIND: &'static str = "mcp_servers";
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn organization_id(&self) -> &str {
        &self.organization_id
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A tool discovered on an upstream server by its last scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredTool {
    /// Organization.
    pub organization_id: String,
    /// The server.
    pub server_id: Uuid,
    /// The tool as it will be registered.
    pub descriptor: ToolDescriptor,
    /// When the scan saw it.
    pub discovered_at: DateTime<Utc>,
}

impl Document for DiscoveredTool {
    const KIND: &'static str = "mcp_server_tools";
    fn id(&self) -> String {
        format!("{}/{}", self.server_id, self.descriptor.name)
    }
    fn organization_id(&self) -> &str {
        &self.organization_id
    }
    fn parent_id(&self) -> Option<String> {
        Some(self.server_id.to_string())
    }
    fn name(&self) -> String {
        self.descriptor.name.clone()
    }
}

/// Administrator settings for one exposed tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolConfiguration {
    /// Organization.
    pub organization_id: String,
    /// The exposed tool name.
    pub tool: String,
    /// Disabled tools are invisible to everyone.
    pub enabled: bool,
    /// Who may see the tool (empty: everyone).
    #[serde(default)]
    pub visible_to: Vec<PrincipalSelector>,
    /// A description shown to agents instead of the upstream one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The approval policy for calls a rule holds for approval without naming one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl ToolConfiguration {
    /// The registry settings this configuration stands for.
    pub fn settings(&self) -> ToolSettings {
        ToolSettings {
            enabled: self.enabled,
            visible_to: self.visible_to.clone(),
            description: self.description.clone(),
            approval_policy: self.approval_policy.clone(),
        }
    }
}

impl Document for ToolConfiguration {
    const KIND: &'static str = "tool_configurations";
    fn id(&self) -> String {
        self.tool.clone()
    }
    fn organization_id(&self) -> &str {
        &self.organization_id
    }
    fn name(&self) -> String {
        self.tool.clone()
    }
}

/// Which issue tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackerKind {
    /// GitHub (or GitHub Enterprise).
    Github,
    /// GitLab.
    Gitlab,
    /// Jira.
    Jira,
}

/// A connected tracker. Its credentials never appear in `Debug`, logs or API responses.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerConfig {
    /// Identifier.
    pub id: Uuid,
    /// Organization.
    pub organization_id: String,
    /// Unique name.
    pub name: String,
    /// Kind.
    pub kind: TrackerKind,
    /// API base URL (e.g. `https://api.github.com`, a GitLab or Jira host).
    pub base_url: String,
    /// Access token (or API token for Jira).
    pub token: String,
    /// User name, for Jira's basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret webhook deliveries are signed or authenticated with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// The projects synchronized (`owner/repo`, `group/project`, Jira keys).
    #[serde(default)]
    pub projects: Vec<String>,
    /// Seconds between synchronizations.
    #[serde(default = "default_sync_interval")]
    pub sync_interval_seconds: u64,
    /// Disabled trackers are not synchronized.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for TrackerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerConfig")
            .field("id", &self.id)
            .field("organization_id", &self.organization_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("projects", &self.projects)
            .field("sync_interval_seconds", &self.sync_interval_seconds)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Five minutes between synchronizations, unless configured.
pub const DEFAULT_SYNC_INTERVAL_SECONDS: u64 = 300;

fn default_sync_interval() -> u64 {
    DEFAULT_SYNC_INTERVAL_SECONDS
}

impl Document for TrackerConfig {
    const KIND: &'static str = "trackers";
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn organization_id(&self) -> &str {
        &self.organization_id
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A project (repository, Jira project) of a tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Identifier.
    pub id: Uuid,
    /// Organization.
    pub organization_id: String,
    /// The tracker.
    pub tracker_id: Uuid,
    /// The tracker's key for it (`owner/repo`, `group/project`, `PROJ`).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Whether issues are synchronized.
    pub sync_enabled: bool,
    /// Last successful synchronization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The newest update synchronized: the next synchronization asks for changes since then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_through: Option<DateTime<Utc>>,
    /// Why the last synchronization failed (cleared by a successful one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Document for Project {
    const KIND: &'static str = "projects";
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn organization_id(&self) -> &str {
        &self.organization_id
    }
    fn parent_id(&self) -> Option<String> {
        Some(self.tracker_id.to_string())
    }
    fn name(&self) -> String {
        self.key.clone()
    }
}

/// What starts a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowTrigger {
    /// Event type, e.g. `issue.created`, `issue.updated`, `schedule`.
    pub event: String,
    /// Only events of this tracker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker_id: Option<Uuid>,
    /// A CEL condition over the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// An event-driven agent flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Identifier.
    pub id: Uuid,
    /// Organization.
    pub organization_id: String,
    /// Unique name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What starts it.
    pub trigger: FlowTrigger,
    /// Instructions for the agent.
    pub prompt: String,
    /// Tools (exposed names) the agent may use; still governed by policy.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Disabled flows never start.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl Document for Flow {
    const KIND: &'static str = "flows";
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn organization_id(&self) -> &str {
        &self.organization_id
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// Where a flow execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowExecutionState {
    /// Waiting to start.
    Queued,
    /// Running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped by a person.
    Cancelled,
}

/// One run of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowExecution {
    /// Identifier.
    pub id: Uuid,
    /// Organization.
    pub organization_id: String,
    /// The flow.
    pub flow_id: Uuid,
    /// State.
    pub state: FlowExecutionState,
    /// The event that started it.
    pub trigger_event: Value,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// What the agent reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Document for FlowExecution {
    const KIND: &'static str = "flow_executions";
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn organization_id(&self) -> &str {
        &self.organization_id
    }
    fn parent_id(&self) -> Option<String> {
        Some(self.flow_id.to_string())
    }
    /// Start time first, so listings are chronological.
    fn name(&self) -> String {
        format!(
            "{}/{}",
            self.started_at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            self.id
        )
    }
}

/// A session of an agent using the Loopgate-compatible HITL API (`/hitl/register`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitlSession {
    /// Organization.
    pub organization_id: String,
    /// The session id the agent chose; unique within the organization.
    pub session_id: String,
    /// The agent's client id.
    pub client_id: String,
    /// The Telegram user to notify, as Loopgate clients send it (kept for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram_id: Option<i64>,
    /// Deactivated sessions accept no new requests.
    pub active: bool,
    /// The principal that registered it.
    pub registered_by: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl Document for HitlSession {
    const KIND: &'static str = "hitl_sessions";
    fn id(&self) -> String {
        self.session_id.clone()
    }
    fn organization_id(&self) -> &str {
        &self.organization_id
    }
    fn name(&self) -> String {
        self.session_id.clone()
    }
}

/// Where a channel delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Being sent (or retried).
    Sending,
    /// The channel accepted it.
    Delivered,
    /// Every attempt failed.
    Failed,
}

/// One message an approval channel sent (or tried to send) about a request: the request's channel
/// history, and what a channel needs to update its message once the request is decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// Organization.
    pub organization_id: String,
    /// The approval request.
    pub request_id: Uuid,
    /// `email`, `slack`, `mattermost`, `telegram`, `webhook`.
    pub channel: String,
    /// What was sent: `created`, `escalated-1`, `decided`.
    pub event: String,
    /// Who it went to (a channel, a chat, an address); never a secret.
    pub recipient: String,
    /// Where the delivery stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The channel's handle on the sent message (a Slack `ts`, a Telegram `message_id`), or a
    /// hashed callback secret; channel-specific.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub reference: Value,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl ChannelMessage {
    /// The name of the record of `event` sent by `channel` to `recipient`.
    pub fn key(channel: &str, event: &str, recipient: &str) -> String {
        format!("{channel}/{event}/{recipient}")
    }
}

impl Document for ChannelMessage {
    const KIND: &'static str = "channel_messages";
    fn id(&self) -> String {
        format!(
            "{}/{}",
            self.request_id,
            Self::key(&self.channel, &self.event, &self.recipient)
        )
    }
    fn organization_id(&self) -> &str {
        &self.organization_id
    }
    fn parent_id(&self) -> Option<String> {
        Some(self.request_id.to_string())
    }
    fn name(&self) -> String {
        Self::key(&self.channel, &self.event, &self.recipient)
    }
}
