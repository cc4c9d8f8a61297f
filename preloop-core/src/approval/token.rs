//! Decision-link tokens: random, shown once, stored only as a SHA-256 hash, compared in constant
//! time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly generated token and the hash to store.
#[derive(Clone)]
pub struct DecisionToken {
    /// The secret to put in the link; never stored.
    pub secret: String,
    /// Hex SHA-256 of the secret; this is stored.
    pub hash: String,
}

impl std::fmt::Debug for DecisionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionToken")
            .field("secret", &"<redacted>")
            .field("hash", &self.hash)
            .finish()
    }
}

impl DecisionToken {
    /// Generates a token with 244 bits of randomness (two v4 UUIDs from the OS generator).
    pub fn generate() -> Self {
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let hash = hash_secret(&secret);
        Self { secret, hash }
    }
}

/// Hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    let computed = hash_secret(secret);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_their_hash_only() {
        let token = DecisionToken::generate();
        assert_eq!(token.secret.len(), 64);
        assert!(verify_secret(&token.secret, &token.hash));
        assert!(!verify_secret("guess", &token.hash));
        assert_ne!(DecisionToken::generate().secret, token.secret);
        assert!(!format!("{token:?}").contains(&token.secret));
    }
}
