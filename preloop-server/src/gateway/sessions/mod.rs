//! The MCP sessions this server has seen, in one registry: who opened each one
//! ([`owners`]: a request on a session must come from its owner), the client it introduced at
//! its handshake (what [`crate::gateway::fastpath`] needs to serve it without rmcp), and its
//! peer once it has initialized or listed tools here ([`listeners`]: told when its tools
//! change). Sessions themselves are kept in the database ([`stored`]: rmcp's `SessionStore`),
//! so a client whose session started on another replica, or before a restart, is resumed
//! instead of having to initialize again; the registry is this replica's memory of them and
//! is rebuilt from the database as sessions are used.

pub mod listeners;
pub mod owners;
pub mod stored;

use crate::gateway::relay::LogFilter;
use preloop_core::ClientInfo;
use rmcp::RoleServer;
use rmcp::service::Peer;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// The MCP session a request names in its `Mcp-Session-Id` header, if any.
pub fn session_id(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("mcp-session-id")?.to_str().ok()
}

/// How long an idle session is kept.
pub const SESSION_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most sessions remembered in memory; past it the memory is cleared, and each session is
/// remembered again from the database (owner, client) or its next `tools/list` (peer).
const CAPACITY: usize = 100_000;

/// What is known of a session's client.
#[derive(Debug, Clone)]
pub struct KnownClient {
    /// Its name and version.
    pub client: ClientInfo,
    /// Whether it declared the elicitation capability.
    pub elicits: bool,
    /// The log messages it asked for with `logging/setLevel`.
    pub logs: LogFilter,
    /// What an upstream may ask it during a call ([`crate::gateway::relay::askable`]).
    pub capabilities: serde_json::Value,
}

/// A session's peer, to tell it of tool changes in its organization.
#[derive(Debug, Clone)]
struct Listener {
    organization_id: String,
    peer: Peer<RoleServer>,
}

/// What this replica knows of one session.
#[derive(Debug, Clone, Default)]
struct Session {
    owner: Option<String>,
    client: Option<KnownClient>,
    listener: Option<Listener>,
    /// Set by `logging/setLevel`; kept apart from the client, which is remembered anew
    /// whenever rmcp stores the session.
    logs: LogFilter,
    /// The resources (URIs as agents see them) it subscribed to.
    subscribed: std::collections::HashSet<String>,
}

/// Every MCP session this replica has seen; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Sessions(Arc<RwLock<HashMap<String, Session>>>);

impl Sessions {
    /// The client of a session whose handshake this replica has seen or restored.
    pub fn client(&self, session_id: &str) -> Option<KnownClient> {
        self.read(session_id, |session| {
            let mut client = session.client.clone()?;
            client.logs = session.logs;
            Some(client)
        })
    }

    /// Which log messages the session's client asked for (all until it sets a level).
    pub fn logs(&self, session_id: &str) -> LogFilter {
        self.read(session_id, |session| Some(session.logs))
            .unwrap_or_default()
    }

    /// Records the log level the session's client set.
    pub fn set_logs(&self, session_id: &str, logs: LogFilter) {
        self.update(session_id, |session| session.logs = logs);
    }

    /// The session's owner, if remembered.
    fn owner(&self, session_id: &str) -> Option<String> {
        self.read(session_id, |session| session.owner.clone())
    }

    fn read<T>(&self, session_id: &str, field: impl FnOnce(&Session) -> Option<T>) -> Option<T> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session_id)
            .and_then(field)
    }

    /// Changes what is known of `session_id` (remembering it if it was not).
    fn update(&self, session_id: &str, change: impl FnOnce(&mut Session)) {
        let mut sessions = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= CAPACITY && !sessions.contains_key(session_id) {
            sessions.clear();
        }
        change(sessions.entry(session_id.to_owned()).or_default());
    }

    /// Records that the session subscribed to resource `uri` (or unsubscribed).
    pub fn subscribe(&self, session_id: &str, uri: &str, subscribed: bool) {
        self.update(session_id, |session| {
            if subscribed {
                session.subscribed.insert(uri.to_owned());
            } else {
                session.subscribed.remove(uri);
            }
        });
    }

    /// The peers of the organization's sessions subscribed to `uri`, with their ids.
    fn subscribers(&self, organization_id: &str, uri: &str) -> Vec<(String, Peer<RoleServer>)> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, session)| session.subscribed.contains(uri))
            .filter_map(|(id, session)| {
                let listener = session.listener.as_ref()?;
                (listener.organization_id == organization_id)
                    .then(|| (id.clone(), listener.peer.clone()))
            })
            .collect()
    }

    /// Forgets the session (it was deleted).
    fn forget(&self, session_id: &str) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session_id);
    }

    /// The peers of the sessions whose organization `concerns` selects, with their ids.
    fn listeners(&self, concerns: impl Fn(&str) -> bool) -> Vec<(String, Peer<RoleServer>)> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(id, session)| {
                let listener = session.listener.as_ref()?;
                concerns(&listener.organization_id).then(|| (id.clone(), listener.peer.clone()))
            })
            .collect()
    }
}
