//! MCP sessions kept in the database (rmcp's `SessionStore`): a client whose session started on
//! one replica, or before a restart, is resumed transparently instead of having to initialize
//! again.

use chrono::Utc;
use preloop_store::Database;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};
use std::sync::Arc;
use std::time::Duration;

/// How long an idle session is kept.
pub const SESSION_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The database as rmcp's session store.
#[derive(Debug, Clone)]
pub struct StoredSessions(pub Arc<Database>);

#[async_trait::async_trait]
impl SessionStore for StoredSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        match self.0.load_session(session_id).await? {
            Some(text) => Ok(Some(serde_json::from_str(&text)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let text = serde_json::to_string(state)?;
        Ok(self.0.save_session(session_id, &text, Utc::now()).await?)
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        Ok(self.0.delete_session(session_id).await?)
    }
}
