//! Bearer authentication: an API key, an access token or an identity provider's token becomes
//! the principal of the request. Beside it: access and refresh tokens ([`tokens`]), the identity
//! provider's keys ([`jwks`]), per-principal rate limits ([`limits`]) and the sign-in and
//! registration throttles ([`throttle`]); [`capped`] bounds the caches' memory.

pub(crate) mod capped;
pub mod jwks;
pub mod limits;
pub mod throttle;
pub mod tokens;

use crate::auth::capped::insert_capped;
use crate::auth::jwks::Jwks;
use crate::auth::tokens::{TokenKeys, TokenKind};
use chrono::{DateTime, Utc};
use preloop_core::Principal;
use preloop_core::accounts::{API_KEY_PREFIX, User};
use preloop_core::approval::hash_secret;
use preloop_core::store::{AccountStore, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

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

/// How long a verified key is trusted without asking the store again. A key revoked on another
/// replica stops working within this time (at once on the replica that revoked it).
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// How often a key's last use is written.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Most cached keys; past it the cache is cleared.
const CACHE_CAPACITY: usize = 10_000;

struct Cached {
    principal: Principal,
    credential: Credential,
    expires_at: Option<DateTime<Utc>>,
    verified: Instant,
}

/// How a request's principal proved who it is. Handlers that change credentials ask for it:
/// an API key (above all a scoped one, which carries fewer roles than its user) may not turn
/// itself into a password or a wider key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An API key.
    ApiKey {
        /// The key.
        id: Uuid,
        /// When it expires, if it does.
        expires_at: Option<DateTime<Utc>>,
    },
    /// An access token from signing in with a password.
    Session,
    /// A token of the configured identity provider.
    IdentityProvider,
}

impl Credential {
    /// Whether a person signed in to get it (a password or the identity provider), as opposed
    /// to a key a program holds.
    pub fn is_interactive(self) -> bool {
        matches!(self, Self::Session | Self::IdentityProvider)
    }

    /// The API key, for keys.
    pub fn key_id(self) -> Option<Uuid> {
        match self {
            Self::ApiKey { id, .. } => Some(id),
            Self::Session | Self::IdentityProvider => None,
        }
    }
}

/// A verified request: who, and how they proved it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who is calling.
    pub principal: Principal,
    /// With what.
    pub credential: Credential,
}

/// Verifies bearer tokens (API keys and JWT access tokens), caching verified ones briefly.
#[derive(Clone)]
pub struct Authenticator {
    accounts: Arc<dyn AccountStore>,
    keys: TokenKeys,
    jwks: Option<Arc<Jwks>>,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    touched: Arc<Mutex<HashMap<Uuid, Instant>>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

impl Authenticator {
    /// An authenticator over the account store, verifying JWTs with `keys`.
    pub fn new(accounts: Arc<dyn AccountStore>, keys: TokenKeys) -> Self {
        Self {
            accounts,
            keys,
            jwks: None,
            cache: Arc::default(),
            touched: Arc::default(),
        }
    }

    /// Also accepts RS256/ES256 tokens from the identity provider behind `jwks`.
    #[must_use]
    pub fn with_jwks(mut self, jwks: Arc<Jwks>) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Forgets a key at once (after revoking it).
    pub fn forget(&self, key_id: Uuid) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, c| c.credential.key_id() != Some(key_id));
    }

    /// Forgets every cached credential of a user at once (after disabling them or changing
    /// their roles).
    pub fn forget_user(&self, user_id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, c| c.principal.id != user_id);
    }

    fn cached(&self, hash: &str, now: DateTime<Utc>) -> Option<Authenticated> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = cache.get(hash)?;
        let fresh =
            entry.verified.elapsed() < CACHE_TTL && entry.expires_at.is_none_or(|e| now < e);
        fresh.then(|| Authenticated {
            principal: entry.principal.clone(),
            credential: entry.credential,
        })
    }

    /// Records a key's use, at most once per [`TOUCH_INTERVAL`].
    async fn touch(&self, key_id: Uuid, now: DateTime<Utc>) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
            if touched
                .get(&key_id)
                .is_some_and(|t| t.elapsed() < TOUCH_INTERVAL)
            {
                return;
            }
            insert_capped(&mut touched, CACHE_CAPACITY, key_id, Instant::now());
        }
        if let Err(error) = self.accounts.touch_api_key(key_id, now).await {
            tracing::warn!(%error, "could not record API key use");
        }
    }

    /// The principal of an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        self.verify(header).await.map(|verified| verified.principal)
    }

    /// The principal of an `Authorization` header value, and the credential it used.
    pub async fn verify(&self, header: Option<&str>) -> Result<Authenticated, AuthError> {
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
        let hash = hash_secret(token);
        if let Some(verified) = self.cached(&hash, now) {
            if let Some(key_id) = verified.credential.key_id() {
                self.touch(key_id, now).await;
            }
            return Ok(verified);
        }
        let (principal, credential, expires_at) = if token.starts_with(API_KEY_PREFIX) {
            let key = self
                .accounts
                .find_api_key_by_hash(&hash)
                .await
                .map_err(unavailable)?
                .filter(|key| key.accepts(token, now))
                .ok_or(AuthError::Invalid)?;
            let user = self
                .enabled_user(&key.organization_id, &key.user_id)
                .await?;
            let mut principal = user
                .principal()
                .with_api_key(key.id.to_string(), key.name.clone());
            // A scoped key acts with only the scoped roles the user still holds.
            if !key.scopes.is_empty() {
                principal.roles.retain(|role| key.scopes.contains(role));
            }
            (
                principal,
                Credential::ApiKey {
                    id: key.id,
                    expires_at: key.expires_at,
                },
                key.expires_at,
            )
        } else if let Some(claims) = self.keys.verify(token, TokenKind::Access) {
            let user = self.enabled_user(&claims.org, &claims.sub).await?;
            // A token issued before the user's password changed is retired.
            if !claims.is_current_for(&user) {
                return Err(AuthError::Invalid);
            }
            (
                user.principal(),
                Credential::Session,
                DateTime::from_timestamp(claims.exp, 0),
            )
        } else {
            let jwks = self.jwks.as_ref().ok_or(AuthError::Invalid)?;
            let identity = jwks.verify(token).await.ok_or(AuthError::Invalid)?;
            let user = self
                .accounts
                .find_user_by_email(&identity.email)
                .await
                .map_err(unavailable)?
                .filter(|user| !user.disabled && jwks.serves(&user.organization_id))
                .ok_or(AuthError::Invalid)?;
            (
                user.principal(),
                Credential::IdentityProvider,
                DateTime::from_timestamp(identity.expires_at, 0),
            )
        };
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            insert_capped(
                &mut cache,
                CACHE_CAPACITY,
                hash,
                Cached {
                    principal: principal.clone(),
                    credential,
                    expires_at,
                    verified: Instant::now(),
                },
            );
        }
        if let Some(key_id) = credential.key_id() {
            self.touch(key_id, now).await;
        }
        Ok(Authenticated {
            principal,
            credential,
        })
    }

    /// The user a credential belongs to, if it exists and is enabled.
    async fn enabled_user(&self, organization_id: &str, user_id: &str) -> Result<User, AuthError> {
        self.accounts
            .get_user(organization_id, user_id)
            .await
            .map_err(|error| {
                tracing::error!(%error, "authentication store failed");
                AuthError::Unavailable
            })?
            .filter(|user| !user.disabled)
            .ok_or(AuthError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bootstrap::bootstrap;
    use preloop_core::store::MemoryStore;

    #[tokio::test]
    async fn api_keys_authenticate_until_revoked() {
        let store = Arc::new(MemoryStore::new());
        let admin = bootstrap(&*store, None).await.unwrap().unwrap();
        let keys = TokenKeys::from_secret(&"k".repeat(40)).unwrap();
        let auth = Authenticator::new(store.clone(), keys.clone());
        let header = format!("Bearer {}", admin.api_key);
        let principal = auth.authenticate(Some(&header)).await.unwrap();
        assert!(principal.has_role("admin"));
        assert_eq!(principal.api_key_name.as_deref(), Some("admin"));
        assert!(principal.api_key_id.is_some());
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
        // Still cached for up to CACHE_TTL; forgetting it applies the revocation at once.
        assert!(auth.authenticate(Some(&header)).await.is_ok());
        auth.forget(key.id);
        // A JWT for the same user authenticates; one signed with another key does not.
        let jwt = keys.issue(&admin.admin, TokenKind::Access);
        assert!(
            auth.authenticate(Some(&format!("Bearer {jwt}")))
                .await
                .is_ok()
        );
        let forged = TokenKeys::from_secret(&"x".repeat(40))
            .unwrap()
            .issue(&admin.admin, TokenKind::Access);
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {forged}"))).await,
            Err(AuthError::Invalid)
        );
        let refresh = keys.issue(&admin.admin, TokenKind::Refresh);
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {refresh}"))).await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.authenticate(Some(&header)).await,
            Err(AuthError::Invalid)
        );
    }
}
