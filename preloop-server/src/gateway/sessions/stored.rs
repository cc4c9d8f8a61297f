//! The database as rmcp's session store: sessions stored or loaded are also remembered, with
//! the client each one introduced, in [`Sessions`].

use super::{KnownClient, Sessions};
use crate::gateway::relay::{LogFilter, askable};
use chrono::Utc;
use preloop_core::ClientInfo;
use preloop_store::Database;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};
use std::sync::Arc;

/// The database as rmcp's session store.
#[derive(Debug, Clone)]
pub struct StoredSessions {
    /// Where sessions are kept.
    pub store: Arc<Database>,
    /// The sessions seen by this server.
    pub sessions: Sessions,
}

#[async_trait::async_trait]
impl SessionStore for StoredSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Some(text) = self.store.load_session(session_id).await? else {
            return Ok(None);
        };
        let state: SessionState = serde_json::from_str(&text)?;
        remember(&self.sessions, session_id, &state);
        Ok(Some(state))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let text = serde_json::to_string(state)?;
        self.store
            .save_session(session_id, &text, Utc::now())
            .await?;
        remember(&self.sessions, session_id, state);
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.sessions.forget(session_id);
        Ok(self.store.delete_session(session_id).await?)
    }
}

/// Remembers the client `state`'s handshake introduced.
fn remember(sessions: &Sessions, session_id: &str, state: &SessionState) {
    let params = &state.initialize_params;
    let client = KnownClient {
        client: ClientInfo::introduced(&params.client_info.name, &params.client_info.version),
        elicits: params.capabilities.elicitation.is_some(),
        logs: LogFilter::default(),
        capabilities: serde_json::to_value(&params.capabilities)
            .map(|declared| askable(&declared))
            .unwrap_or_default(),
    };
    sessions.update(session_id, |session| session.client = Some(client));
}
