//! JWT access and refresh tokens (HS256), signed with `SECRET_KEY`.

use chrono::Utc;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use preloop_core::accounts::User;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Lifetime of an access token.
pub const ACCESS_TTL_SECONDS: i64 = 15 * 60;
/// Lifetime of a refresh token.
pub const REFRESH_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// Shortest accepted `SECRET_KEY`.
pub const MIN_SECRET_LENGTH: usize = 32;

/// The two kinds of token; a refresh token never authenticates a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Authenticates requests.
    Access,
    /// Obtains a new pair.
    Refresh,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Organization.
    pub org: String,
    /// Kind.
    pub typ: TokenKind,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires at (seconds).
    pub exp: i64,
    /// The user's credentials when the token was issued ([`credentials_stamp`]); a token whose
    /// stamp is not the user's current one was issued before a password change.
    #[serde(default)]
    pub pwd: String,
}

impl Claims {
    /// Whether the token was issued under `user`'s current credentials.
    pub fn is_current_for(&self, user: &User) -> bool {
        bool::from(
            self.pwd
                .as_bytes()
                .ct_eq(credentials_stamp(user).as_bytes()),
        )
    }
}

/// A short digest of `user`'s password hash: it changes whenever the password does, so tokens
/// carrying the old one stop working. (A digest of a salted hash, cut short: it reveals
/// nothing of the password.)
pub fn credentials_stamp(user: &User) -> String {
    let digest = Sha256::digest(user.password_hash.as_deref().unwrap_or_default().as_bytes());
    hex::encode(&digest[..8])
}

/// What a personal decision link says: this user may vote on this request until `exp`. It is a
/// JWT signed like access tokens, but with other claims, so neither kind passes for the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverClaims {
    /// User id.
    pub sub: String,
    /// Organization.
    pub org: String,
    /// The approval request.
    pub req: uuid::Uuid,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires at (seconds).
    pub exp: i64,
}

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct TokenKeys {
    /// Shared: the keys are cloned into every request's state, and copying them would allocate.
    keys: Arc<(EncodingKey, DecodingKey)>,
    /// The key that seals what the gateway hands clients to send back (2026-07-28
    /// `requestState`): HMAC-SHA256 of the secret and a label, so it is not the JWT key.
    state_key: Arc<[u8; 32]>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

/// Why a secret key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Too short to be a key.
    #[error("SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters long")]
    TooShort,
    /// The generated key file could not be read or written.
    #[error("cannot use the secret key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl TokenKeys {
    /// Keys from a secret.
    pub fn from_secret(secret: &str) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LENGTH {
            return Err(KeyError::TooShort);
        }
        let mut state_key =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| KeyError::TooShort)?;
        state_key.update(b"preloop request state");
        Ok(Self {
            keys: Arc::new((
                EncodingKey::from_secret(secret.as_bytes()),
                DecodingKey::from_secret(secret.as_bytes()),
            )),
            state_key: Arc::new(state_key.finalize().into_bytes().into()),
        })
    }

    /// The key that seals state handed to clients to send back (derived from the secret, so
    /// every replica sharing `SECRET_KEY` opens what another sealed).
    pub fn state_key(&self) -> &[u8] {
        &self.state_key[..]
    }

    /// `SECRET_KEY` if set; otherwise a key generated once into `data_dir/secret_key` (mode 0600),
    /// which suits one server. Replicas must share `SECRET_KEY`.
    pub fn load(secret: Option<String>, data_dir: &Path) -> Result<Self, KeyError> {
        if let Some(secret) = secret {
            return Self::from_secret(&secret);
        }
        let path = data_dir.join("secret_key");
        let file_error = |source: std::io::Error| KeyError::File {
            path: path.display().to_string(),
            source,
        };
        let secret = match std::fs::read_to_string(&path) {
            Ok(secret) => secret.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(file_error)?;
                let secret = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                write_private(&path, &secret).map_err(file_error)?;
                secret
            }
            Err(e) => return Err(file_error(e)),
        };
        Self::from_secret(&secret)
    }

    /// Issues a token of `kind` for `user`, valid until its password changes.
    pub fn issue(&self, user: &User, kind: TokenKind) -> String {
        let now = Utc::now().timestamp();
        let ttl = match kind {
            TokenKind::Access => ACCESS_TTL_SECONDS,
            TokenKind::Refresh => REFRESH_TTL_SECONDS,
        };
        let claims = Claims {
            sub: user.id.clone(),
            org: user.organization_id.clone(),
            typ: kind,
            iat: now,
            exp: now + ttl,
            pwd: credentials_stamp(user),
        };
        // HS256 signing of a serializable struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.keys.0)
            .unwrap_or_default()
    }

    /// A personal decision link's token: `user_id` may vote on `request_id` until `expires_at`.
    pub fn issue_approver(
        &self,
        user_id: &str,
        organization_id: &str,
        request_id: uuid::Uuid,
        expires_at: chrono::DateTime<Utc>,
    ) -> String {
        let claims = ApproverClaims {
            sub: user_id.to_owned(),
            org: organization_id.to_owned(),
            req: request_id,
            iat: Utc::now().timestamp(),
            exp: expires_at.timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.keys.0)
            .unwrap_or_default()
    }

    /// The claims of a valid, unexpired personal decision link token for `request_id`.
    pub fn verify_approver(&self, token: &str, request_id: uuid::Uuid) -> Option<ApproverClaims> {
        let claims: ApproverClaims = self.claims(token)?;
        (claims.req == request_id).then_some(claims)
    }

    /// The claims of a valid, unexpired token of `kind` (signature checked, only HS256 accepted).
    pub fn verify(&self, token: &str, kind: TokenKind) -> Option<Claims> {
        let claims: Claims = self.claims(token)?;
        (claims.typ == kind).then_some(claims)
    }

    /// The claims of a token signed with these keys (HS256 only), unexpired, without leeway.
    fn claims<C: serde::de::DeserializeOwned>(&self, token: &str) -> Option<C> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        jsonwebtoken::decode::<C>(token, &self.keys.1, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    std::fs::write(path, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, organization_id: &str) -> User {
        let mut user = User::new(organization_id, "u@example.com", Vec::new(), Utc::now());
        user.id = id.to_owned();
        user
    }

    #[test]
    fn tokens_verify_only_with_the_key_and_kind_they_were_made_for() {
        let keys = TokenKeys::from_secret(&"k".repeat(40)).unwrap();
        let access = keys.issue(&user("u1", "acme"), TokenKind::Access);
        let claims = keys.verify(&access, TokenKind::Access).unwrap();
        assert_eq!((claims.sub.as_str(), claims.org.as_str()), ("u1", "acme"));
        assert!(
            keys.verify(&access, TokenKind::Refresh).is_none(),
            "kinds are not interchangeable"
        );
        let other = TokenKeys::from_secret(&"x".repeat(40)).unwrap();
        assert!(
            other.verify(&access, TokenKind::Access).is_none(),
            "wrong signature"
        );
        let mut tampered = access.clone();
        tampered.pop();
        assert!(keys.verify(&tampered, TokenKind::Access).is_none());
        assert!(keys.verify("not.a.jwt", TokenKind::Access).is_none());
        assert!(matches!(
            TokenKeys::from_secret("short"),
            Err(KeyError::TooShort)
        ));
    }

    #[test]
    fn personal_decision_links_are_neither_access_tokens_nor_transferable() {
        let keys = TokenKeys::from_secret(&"k".repeat(40)).unwrap();
        let request = uuid::Uuid::new_v4();
        let later = Utc::now() + chrono::Duration::minutes(10);
        let link = keys.issue_approver("u1", "acme", request, later);
        let claims = keys.verify_approver(&link, request).unwrap();
        assert_eq!((claims.sub.as_str(), claims.org.as_str()), ("u1", "acme"));
        assert!(
            keys.verify_approver(&link, uuid::Uuid::new_v4()).is_none(),
            "another request"
        );
        assert!(
            keys.verify(&link, TokenKind::Access).is_none(),
            "not an access token"
        );
        let access = keys.issue(&user("u1", "acme"), TokenKind::Access);
        assert!(
            keys.verify_approver(&access, request).is_none(),
            "not a link"
        );
        let expired = keys.issue_approver(
            "u1",
            "acme",
            request,
            Utc::now() - chrono::Duration::seconds(5),
        );
        assert!(keys.verify_approver(&expired, request).is_none());
        let other = TokenKeys::from_secret(&"x".repeat(40)).unwrap();
        assert!(other.verify_approver(&link, request).is_none());
    }

    #[test]
    fn a_password_change_retires_the_tokens_issued_before() {
        let keys = TokenKeys::from_secret(&"k".repeat(40)).unwrap();
        let mut alice = user("u1", "acme");
        alice.password_hash = Some("$argon2id$old".to_owned());
        let token = keys.issue(&alice, TokenKind::Refresh);
        let claims = keys.verify(&token, TokenKind::Refresh).unwrap();
        assert!(claims.is_current_for(&alice));
        alice.password_hash = Some("$argon2id$new".to_owned());
        assert!(!claims.is_current_for(&alice));
        assert!(
            keys.verify(&keys.issue(&alice, TokenKind::Refresh), TokenKind::Refresh)
                .unwrap()
                .is_current_for(&alice)
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = TokenKeys::from_secret(&"k".repeat(40)).unwrap();
        let claims = Claims {
            sub: "u".into(),
            org: "o".into(),
            typ: TokenKind::Access,
            iat: 0,
            exp: 1,
            pwd: String::new(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.keys.0).unwrap();
        assert!(keys.verify(&token, TokenKind::Access).is_none());
    }

    #[test]
    fn a_generated_key_persists_in_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenKeys::load(None, dir.path()).unwrap();
        let token = first.issue(&user("u", "o"), TokenKind::Access);
        let again = TokenKeys::load(None, dir.path()).unwrap();
        assert!(again.verify(&token, TokenKind::Access).is_some());
    }
}
