//! Organizations, users and API keys, and the secrets that authenticate them.
//!
//! Passwords are stored as argon2id PHC strings. API keys are random (240 bits), shown once, and
//! stored as their SHA-256: a key has too much entropy to need a slow hash, and a fast one lets
//! every request be authenticated by one indexed lookup. Nothing here keeps a secret in clear.

use crate::approval::{hash_secret, verify_secret};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tenant: every other row belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the organization was closed: its users disabled, its keys revoked, its calls
    /// denied, its records kept. `None` while it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
}

/// A person (or service account) who signs in, approves, or runs agents.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Identifier.
    pub id: String,
    /// Organization.
    pub organization_id: String,
    /// E-mail address, unique across all organizations (it is the sign-in name).
    pub email: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Roles: `admin`, `approver`, `member`, `agent`.
    pub roles: Vec<String>,
    /// argon2id PHC string; `None` for users who cannot sign in with a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Disabled users cannot authenticate.
    #[serde(default)]
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("organization_id", &self.organization_id)
            .field("email", &self.email)
            .field("roles", &self.roles)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl User {
    /// A new enabled user without a password.
    pub fn new(
        organization_id: impl Into<String>,
        email: impl Into<String>,
        roles: Vec<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::new_v4().to_string(),
            organization_id: organization_id.into(),
            email: email.into().to_lowercase(),
            name: None,
            roles,
            password_hash: None,
            disabled: false,
            created_at: now,
        }
    }

    /// The principal this user acts as.
    pub fn principal(&self) -> crate::Principal {
        crate::Principal {
            id: self.id.clone(),
            email: Some(self.email.clone()),
            roles: self.roles.clone(),
            api_key_id: None,
            api_key_name: None,
            organization_id: self.organization_id.clone(),
        }
    }
}

/// A password that cannot be hashed (argon2 refuses it, e.g. longer than its limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the password cannot be used: {source}")]
pub struct PasswordError {
    /// What argon2 reported.
    #[source]
    source: argon2::password_hash::Error,
}

/// Hashes a password with argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|source| PasswordError { source })
}

/// Whether `password` matches a PHC string from [`hash_password`]; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The prefix every API key secret starts with, so leaked keys are recognizable by scanners.
pub const API_KEY_PREFIX: &str = "pl_";

/// An API key as stored: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Identifier.
    pub id: Uuid,
    /// Organization.
    pub organization_id: String,
    /// The user the key acts as.
    pub user_id: String,
    /// A name for people (selectors use the id: names are not unique).
    pub name: String,
    /// The first characters of the secret, to tell keys apart in listings.
    pub prefix: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// Scopes the key is limited to (empty: the user's full rights).
    pub scopes: Vec<String>,
    /// When the key stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When the key last authenticated a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revoked keys never authenticate.
    pub revoked: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A freshly created key: the secret to show once, and the record to store.
#[derive(Clone)]
pub struct IssuedApiKey {
    /// The secret (`pl_...`); shown to the user once and never stored.
    pub secret: String,
    /// What to store.
    pub key: ApiKey,
}

impl std::fmt::Debug for IssuedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedApiKey")
            .field("secret", &"<redacted>")
            .field("key", &self.key)
            .finish()
    }
}

impl ApiKey {
    /// Issues a new key for `user`.
    pub fn issue(
        user: &User,
        name: impl Into<String>,
        scopes: Vec<String>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> IssuedApiKey {
        let secret = format!(
            "{API_KEY_PREFIX}{}{}",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        );
        Self::from_secret(user, name, scopes, expires_at, now, secret)
    }

    /// Records a key whose secret the operator chose (e.g. `PRELOOP_ADMIN_API_KEY` at bootstrap).
    pub fn from_secret(
        user: &User,
        name: impl Into<String>,
        scopes: Vec<String>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        secret: String,
    ) -> IssuedApiKey {
        let key = ApiKey {
            id: Uuid::new_v4(),
            organization_id: user.organization_id.clone(),
            user_id: user.id.clone(),
            name: name.into(),
            prefix: secret.chars().take(API_KEY_PREFIX.len() + 6).collect(),
            hash: hash_secret(&secret),
            scopes,
            expires_at,
            last_used_at: None,
            revoked: false,
            created_at: now,
        };
        IssuedApiKey { secret, key }
    }

    /// Whether the key may authenticate `secret` at `now` (hash compared in constant time).
    pub fn accepts(&self, secret: &str, now: DateTime<Utc>) -> bool {
        self.accepts_at(now) && verify_secret(secret, &self.hash)
    }

    /// Whether the key works at `now`: not revoked, not expired.
    pub fn accepts_at(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at.is_none_or(|e| now < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User::new("acme", "Dana@Example.com", vec!["admin".into()], Utc::now())
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not a phc string"));
        assert_ne!(hash_password("correct horse").unwrap(), hash, "salted");
    }

    #[test]
    fn api_keys_are_random_hashed_and_expire() {
        let now = Utc::now();
        let issued = ApiKey::issue(
            &user(),
            "ci",
            vec![],
            Some(now + chrono::Duration::hours(1)),
            now,
        );
        assert!(issued.secret.starts_with(API_KEY_PREFIX));
        assert_eq!(issued.secret.len(), API_KEY_PREFIX.len() + 64);
        assert!(issued.secret.starts_with(&issued.key.prefix));
        assert_ne!(issued.key.hash, issued.secret);
        assert!(issued.key.accepts(&issued.secret, now));
        assert!(!issued.key.accepts("pl_guess", now));
        assert!(
            !issued
                .key
                .accepts(&issued.secret, now + chrono::Duration::hours(2))
        );
        let mut revoked = issued.key.clone();
        revoked.revoked = true;
        assert!(!revoked.accepts(&issued.secret, now));
        assert!(!format!("{issued:?}").contains(&issued.secret));
    }

    #[test]
    fn users_have_lowercase_emails_and_redacted_debug() {
        let mut user = user();
        assert_eq!(user.email, "dana@example.com");
        user.password_hash = Some(hash_password("pw").unwrap());
        assert!(!format!("{user:?}").contains("argon2"));
        assert_eq!(user.principal().roles, ["admin"]);
    }
}
