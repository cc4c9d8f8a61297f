//! Who opened each MCP session. A session belongs to the credential (an API key, or a user's
//! signed-in session) that initialized it: a request on it with any other, even with the
//! session id, is answered as if the session did not exist.

use super::Sessions;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use preloop_core::Principal;
use preloop_core::store::StoreError;
use preloop_store::Database;
use std::sync::Arc;

/// The header carrying the MCP session id.
const SESSION_HEADER: &str = "mcp-session-id";

/// Longest MCP session id accepted (the server issues UUIDs; anything longer is not one).
pub const MAX_SESSION_ID_LENGTH: usize = crate::http::bounds::ID;

/// The session owners: kept in the database, remembered in [`Sessions`].
#[derive(Debug, Clone)]
pub struct SessionOwners {
    store: Arc<Database>,
    sessions: Sessions,
}

impl SessionOwners {
    /// Owners kept in `store`, remembered in `sessions`.
    pub fn new(store: Arc<Database>, sessions: Sessions) -> Self {
        Self { store, sessions }
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
        if let Some(owner) = self.sessions.owner(session_id) {
            return Ok(Some(owner));
        }
        let owner = self.store.session_owner(session_id).await?;
        if let Some(owner) = &owner {
            self.remember(session_id, owner);
        }
        Ok(owner)
    }

    fn remember(&self, session_id: &str, owner: &str) {
        self.sessions
            .update(session_id, |session| session.owner = Some(owner.to_owned()));
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
        owners.sessions.forget(&id);
        // rmcp answers 202; clients expect an ended session to be answered 200 or 204 (the
        // Python SDK logs "Session termination failed: 202").
        return StatusCode::NO_CONTENT.into_response();
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
