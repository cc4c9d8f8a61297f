//! MCP sessions kept in the database (rmcp's `SessionStore`): a client whose session started on
//! one replica, or before a restart, is resumed transparently instead of having to initialize
//! again.

use chrono::Utc;
use preloop_core::ClientInfo;
use preloop_store::Database;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// How long an idle session is kept.
pub const SESSION_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most sessions remembered in memory; past it the memory is cleared and sessions are served
/// by rmcp (which restores them from the database) until they are remembered again.
const KNOWN_CAPACITY: usize = 100_000;

/// The sessions this server has seen established or restored, with the client each one
/// introduced at its handshake: what [`crate::fastpath`] needs to serve a request on a session
/// without rmcp.
#[derive(Debug, Clone, Default)]
pub struct KnownSessions(Arc<RwLock<HashMap<String, KnownClient>>>);

/// What is known of a session's client.
#[derive(Debug, Clone)]
pub struct KnownClient {
    /// Its name and version.
    pub client: ClientInfo,
    /// Whether it declared the elicitation capability.
    pub elicits: bool,
}

impl KnownSessions {
    /// The client of a known session.
    pub fn client(&self, session_id: &str) -> Option<KnownClient> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session_id)
            .cloned()
    }

    fn remember(&self, session_id: &str, state: &SessionState) {
        let params = &state.initialize_params;
        let client = KnownClient {
            client: ClientInfo {
                name: Some(params.client_info.name.clone()),
                version: Some(params.client_info.version.clone()),
            },
            elicits: params.capabilities.elicitation.is_some(),
        };
        let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= KNOWN_CAPACITY {
            known.clear();
        }
        known.insert(session_id.to_owned(), client);
    }

    fn forget(&self, session_id: &str) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session_id);
    }
}

/// The database as rmcp's session store; sessions stored or loaded are also remembered in
/// [`KnownSessions`].
#[derive(Debug, Clone)]
pub struct StoredSessions {
    /// Where sessions are kept.
    pub store: Arc<Database>,
    /// The sessions seen by this server.
    pub known: KnownSessions,
}

#[async_trait::async_trait]
impl SessionStore for StoredSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Some(text) = self.store.load_session(session_id).await? else {
            return Ok(None);
        };
        let state: SessionState = serde_json::from_str(&text)?;
        self.known.remember(session_id, &state);
        Ok(Some(state))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let text = serde_json::to_string(state)?;
        self.store
            .save_session(session_id, &text, Utc::now())
            .await?;
        self.known.remember(session_id, state);
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.known.forget(session_id);
        Ok(self.store.delete_session(session_id).await?)
    }
}
