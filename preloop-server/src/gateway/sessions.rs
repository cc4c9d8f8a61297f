//! MCP sessions kept in the database (rmcp's `SessionStore`): a client whose session started on
//! one replica, or before a restart, is resumed transparently instead of having to initialize
//! again.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use preloop_core::store::StoreError;
use preloop_core::{ClientInfo, Principal};
use preloop_store::Database;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// The header carrying the MCP session id.
const SESSION_HEADER: &str = "mcp-session-id";

/// How long an idle session is kept.
pub const SESSION_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most sessions remembered in memory; past it the memory is cleared and sessions are served
/// by rmcp (which restores them from the database) until they are remembered again.
const KNOWN_CAPACITY: usize = 100_000;

/// The sessions this server has seen established or restored, with the client each one
/// introduced at its handshake: what [`crate::gateway::fastpath`] needs to serve a request on a session
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
            client: ClientInfo::introduced(&params.client_info.name, &params.client_info.version),
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

/// Longest MCP session id accepted (the server issues UUIDs; anything longer is not one).
pub const MAX_SESSION_ID_LENGTH: usize = crate::http::bounds::ID;

/// Most session owners remembered in memory; past it the memory is cleared and owners are
/// read from the database again.
const OWNERS_CAPACITY: usize = 100_000;

/// Who opened each MCP session. A session belongs to the credential (an API key, or a user's
/// signed-in session) that initialized it: a request on it with any other, even with the
/// session id, is answered as if the session did not exist.
#[derive(Debug, Clone)]
pub struct SessionOwners {
    store: Arc<Database>,
    known: Arc<RwLock<HashMap<String, String>>>,
}

impl SessionOwners {
    /// Owners kept in `store`.
    pub fn new(store: Arc<Database>) -> Self {
        Self {
            store,
            known: Arc::default(),
        }
    }

    /// How an owner is written: the user, and the API key they opened it with (one user's
    /// narrower key cannot use the session of their wider one; signed-in sessions, whose
    /// tokens are refreshed, count as one credential).
    fn key(principal: &Principal) -> String {
        format!(
            "{}/{}/{}",
            principal.organization_id,
            principal.id,
            principal.api_key_id.as_deref().unwrap_or("session")
        )
    }

    async fn owner(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        if let Some(owner) = self
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session_id)
        {
            return Ok(Some(owner.clone()));
        }
        let owner = self.store.session_owner(session_id).await?;
        if let Some(owner) = &owner {
            self.remember(session_id, owner);
        }
        Ok(owner)
    }

    fn remember(&self, session_id: &str, owner: &str) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= OWNERS_CAPACITY {
            known.clear();
        }
        known.insert(session_id.to_owned(), owner.to_owned());
    }

    fn forget(&self, session_id: &str) {
        self.known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session_id);
    }
}

/// An MCP session id as a client sent it, if it could be one of ours.
fn plausible_session_id(value: &HeaderValue) -> Option<&str> {
    let id = value.to_str().ok()?;
    (!id.is_empty()
        && id.len() <= MAX_SESSION_ID_LENGTH
        && id.bytes().all(|b| b.is_ascii_graphic()))
    .then_some(id)
}

/// Middleware (inside authentication): a request on a session must come from the session's
/// owner; a request that opens a session makes its caller the owner.
pub async fn bind(State(owners): State<SessionOwners>, request: Request, next: Next) -> Response {
    let Some(principal) = request.extensions().get::<Principal>() else {
        return next.run(request).await;
    };
    let caller = SessionOwners::key(principal);
    let Some(value) = request.headers().get(SESSION_HEADER).cloned() else {
        let response = next.run(request).await;
        if let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(plausible_session_id)
        {
            // Recorded before the client learns the id, so no request can come first.
            match owners
                .store
                .set_session_owner(id, &caller, Utc::now())
                .await
            {
                Ok(()) => owners.remember(id, &caller),
                Err(error) => {
                    tracing::error!(%error, "cannot record who opened an MCP session; it will not be usable");
                }
            }
        }
        return response;
    };
    let Some(id) = plausible_session_id(&value) else {
        return session_not_found();
    };
    match owners.owner(id).await {
        Ok(Some(owner)) if owner == caller => {}
        Ok(_) => return session_not_found(),
        Err(error) => {
            tracing::error!(%error, "cannot check an MCP session's owner");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(crate::wire::json_rpc_error(
                    -32603,
                    "sessions are unavailable",
                )),
            )
                .into_response();
        }
    }
    let id = id.to_owned();
    let ends = request.method() == Method::DELETE;
    let response = next.run(request).await;
    if ends && response.status().is_success() {
        owners.forget(&id);
    }
    response
}

/// What an unknown session gets (the client initializes a new one).
fn session_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(crate::wire::json_rpc_error(-32001, "session not found")),
    )
        .into_response()
}
