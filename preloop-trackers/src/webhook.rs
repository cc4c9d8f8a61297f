//! What every tracker's webhook needs: signature and token checks in constant time, delivery
//! ids for deduplication, and the typed outcome. Each tracker's module reads its own payloads
//! (`github::webhook`, `gitlab::webhook`, `jira::webhook`); [`receive`] picks the right one.

use hmac::{Hmac, Mac};
use preloop_core::documents::TrackerKind;
use preloop_core::tracker::TrackerEvent;
use reqwest::header::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a delivery was refused. Nothing of a refused delivery is stored or acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The tracker has no webhook secret configured, so no delivery can be trusted.
    #[error("this tracker has no webhook secret: set one to accept deliveries")]
    NoSecret,
    /// The signature (or token) header is missing.
    #[error("the delivery carries no {0} header")]
    MissingSignature(&'static str),
    /// The signature (or token) does not match the secret.
    #[error("the delivery's signature does not match")]
    BadSignature,
    /// Signed correctly, but not a payload this tracker sends.
    #[error("malformed delivery: {0}")]
    Malformed(String),
}

/// An authentic delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The tracker's delivery id (or the body's SHA-256 when it sends none): a delivery seen
    /// twice is a replay.
    pub id: String,
    /// The issue event it reports; `None` for deliveries about something else (a ping, a pull
    /// request, a push), which are accepted and ignored.
    pub event: Option<TrackerEvent>,
}

/// Checks and reads a delivery for a tracker of `kind` whose webhook secret is `secret`:
/// without a secret no delivery is trusted.
pub fn receive(
    kind: TrackerKind,
    secret: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Delivery, WebhookError> {
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or(WebhookError::NoSecret)?;
    match kind {
        TrackerKind::Github => crate::github::webhook::receive(secret, headers, body),
        TrackerKind::Gitlab => crate::gitlab::webhook::receive(secret, headers, body),
        TrackerKind::Jira => crate::jira::webhook::receive(secret, headers, body),
    }
}

/// Checks `header` (hex HMAC-SHA256 of `body` under `secret`, optionally prefixed `sha256=`)
/// in constant time.
pub fn verify_hmac_sha256(
    secret: &str,
    headers: &HeaderMap,
    header: &'static str,
    body: &[u8],
) -> Result<(), WebhookError> {
    let given = header_text(headers, header).ok_or(WebhookError::MissingSignature(header))?;
    let hex_digest = given.trim().strip_prefix("sha256=").unwrap_or(given.trim());
    let signature = hex::decode(hex_digest).map_err(|_| WebhookError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| WebhookError::BadSignature)
}

/// Checks that `header` equals `secret` (GitLab's `X-Gitlab-Token`) in constant time.
pub fn verify_token(
    secret: &str,
    headers: &HeaderMap,
    header: &'static str,
) -> Result<(), WebhookError> {
    let given = header_text(headers, header).ok_or(WebhookError::MissingSignature(header))?;
    // Compare digests, so neither the length nor the content of the secret leaks in timing.
    let equal = Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(secret.as_bytes()));
    if bool::from(equal) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// The delivery id in `header`, or the hex SHA-256 of the body when the tracker sent none.
pub fn delivery_id(headers: &HeaderMap, header: &str, body: &[u8]) -> String {
    header_text(headers, header)
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(Sha256::digest(body)))
}

pub use crate::http::header_text;

/// The body as JSON, or [`WebhookError::Malformed`].
pub fn json_body(body: &[u8]) -> Result<serde_json::Value, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn signed(secret: &str, body: &[u8]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return String::new();
        };
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn hmac_signatures_are_checked() -> Result<(), Box<dyn std::error::Error>> {
        let body = br#"{"action":"opened"}"#;
        let mut headers = HeaderMap::new();
        assert_eq!(
            verify_hmac_sha256("s3cret", &headers, "x-hub-signature-256", body),
            Err(WebhookError::MissingSignature("x-hub-signature-256"))
        );
        headers.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&signed("s3cret", body))?,
        );
        assert_eq!(
            verify_hmac_sha256("s3cret", &headers, "x-hub-signature-256", body),
            Ok(())
        );
        assert_eq!(
            verify_hmac_sha256("other", &headers, "x-hub-signature-256", body),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_hmac_sha256("s3cret", &headers, "x-hub-signature-256", b"{}"),
            Err(WebhookError::BadSignature)
        );
        headers.insert("x-hub-signature-256", HeaderValue::from_static("sha256=zz"));
        assert_eq!(
            verify_hmac_sha256("s3cret", &headers, "x-hub-signature-256", body),
            Err(WebhookError::BadSignature)
        );
        Ok(())
    }

    #[test]
    fn tokens_are_compared_whole() {
        let mut headers = HeaderMap::new();
        headers.insert("x-gitlab-token", HeaderValue::from_static("abc"));
        assert_eq!(verify_token("abc", &headers, "x-gitlab-token"), Ok(()));
        assert_eq!(
            verify_token("abcd", &headers, "x-gitlab-token"),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_token("ab", &headers, "x-gitlab-token"),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn deliveries_without_an_id_are_named_by_their_body() {
        let headers = HeaderMap::new();
        let id = delivery_id(&headers, "x-github-delivery", b"{}");
        assert_eq!(id.len(), 64);
        assert_eq!(id, delivery_id(&headers, "x-github-delivery", b"{}"));
    }

    #[test]
    fn no_secret_means_no_delivery_is_trusted() {
        let headers = HeaderMap::new();
        for secret in [None, Some("")] {
            assert_eq!(
                receive(TrackerKind::Github, secret, &headers, b"{}"),
                Err(WebhookError::NoSecret)
            );
        }
    }
}
