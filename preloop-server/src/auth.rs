//! Bearer authentication: an API key becomes the principal of the request.

use chrono::Utc;
use preloop_core::Principal;
use preloop_core::approval::hash_secret;
use preloop_core::store::{AccountStore, StoreError};
use std::sync::Arc;

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer ...` header.
    #[error("missing bearer token: send `Authorization: Bearer <API key>`")]
    Missing,
    /// The token is unknown, revoked or expired, or its user is disabled.
    #[error("invalid, revoked or expired token")]
    Invalid,
    /// The store could not be asked; authentication fails closed.
    #[error("authentication is unavailable")]
    Unavailable,
}

/// Verifies bearer tokens against stored API keys.
#[derive(Clone)]
pub struct Authenticator {
    accounts: Arc<dyn AccountStore>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

impl Authenticator {
    /// An authenticator over the account store.
    pub fn new(accounts: Arc<dyn AccountStore>) -> Self {
        Self { accounts }
    }

    /// The principal of an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let unavailable = |error: StoreError| {
            tracing::error!(%error, "authentication store failed");
            AuthError::Unavailable
        };
        let now = Utc::now();
        let key = self
            .accounts
            .find_api_key_by_hash(&hash_secret(token))
            .await
            .map_err(unavailable)?
            .filter(|key| key.accepts(token, now))
            .ok_or(AuthError::Invalid)?;
        let user = self
            .accounts
            .get_user(&key.organization_id, &key.user_id)
            .await
            .map_err(unavailable)?
            .filter(|user| !user.disabled)
            .ok_or(AuthError::Invalid)?;
        if let Err(error) = self.accounts.touch_api_key(key.id, now).await {
            tracing::warn!(%error, "could not record API key use");
        }
        Ok(user.principal().with_api_key_name(key.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::bootstrap;
    use preloop_core::store::MemoryStore;

    #[tokio::test]
    async fn api_keys_authenticate_until_revoked() {
        let store = Arc::new(MemoryStore::new());
        let admin = bootstrap(&*store, None).await.unwrap().unwrap();
        let auth = Authenticator::new(store.clone());
        let header = format!("Bearer {}", admin.api_key);
        let principal = auth.authenticate(Some(&header)).await.unwrap();
        assert!(principal.has_role("admin"));
        assert_eq!(principal.api_key_name.as_deref(), Some("admin"));
        assert_eq!(auth.authenticate(None).await, Err(AuthError::Missing));
        assert_eq!(
            auth.authenticate(Some("Basic abc")).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.authenticate(Some("Bearer pl_wrong")).await,
            Err(AuthError::Invalid)
        );
        let key = store.list_api_keys("default").await.unwrap().remove(0);
        store.revoke_api_key("default", key.id).await.unwrap();
        assert_eq!(
            auth.authenticate(Some(&header)).await,
            Err(AuthError::Invalid)
        );
    }
}
