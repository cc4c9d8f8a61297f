//! Sign-in through an external identity provider: JWTs signed with RS256 or ES256 by keys
//! published as a JWKS (fetched from a URL, or read from a file), with the issuer (and, if set,
//! the audience) checked. The token's e-mail claim names the Preloop user it acts as; the user
//! must exist and be enabled. Unknown key ids trigger a refetch, at most every 30 seconds.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// Least time between two fetches of the key set.
const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// `[auth.jwks]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// Where the identity provider publishes its keys (`https://.../.well-known/jwks.json`).
    pub url: Option<String>,
    /// Or a file holding the key set.
    pub file: Option<PathBuf>,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry, if set.
    pub audience: Option<String>,
    /// The claim holding the user's e-mail address (default `email`).
    pub email_claim: Option<String>,
    /// The organizations whose users may sign in with the identity provider (ids; `"*"`: any);
    /// default: the default organization. Addresses are matched across organizations, so
    /// without this a self-registered organization could create a user with someone's address
    /// and receive their sign-in.
    pub organizations: Option<Vec<String>>,
}

/// A verified external token: who it names and until when it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The e-mail address, lower-cased.
    pub email: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

/// Why the identity provider's key set cannot be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The configuration names neither or both sources.
    #[error("[auth.jwks] needs exactly one of `url` and `file`")]
    Source,
    /// The HTTP client could not be built.
    #[error("{source}")]
    Client {
        /// The client builder's error.
        #[source]
        source: reqwest::Error,
    },
    /// The URL did not answer with the key set.
    #[error("fetching {url}: {source}")]
    Fetch {
        /// The URL.
        url: String,
        /// The request's error (or the status).
        #[source]
        source: reqwest::Error,
    },
    /// The answer's body could not be read.
    #[error("{source}")]
    Body {
        /// The read error.
        #[source]
        source: reqwest::Error,
    },
    /// The file cannot be read.
    #[error("reading {path}: {source}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// What was read is not a JWKS.
    #[error("the key set is not a JWKS: {source}")]
    Parse {
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// The key set and its verification rules.
#[derive(Debug)]
pub struct Jwks {
    config: JwksConfig,
    keys: RwLock<(JwkSet, Option<Instant>)>,
    http: reqwest::Client,
}

impl Jwks {
    /// Whether users of `organization_id` may sign in with the identity provider.
    pub fn serves(&self, organization_id: &str) -> bool {
        match &self.config.organizations {
            None => organization_id == crate::tenancy::DEFAULT_ORGANIZATION,
            Some(organizations) => organizations
                .iter()
                .any(|o| o == "*" || o == organization_id),
        }
    }

    /// Reads the key set once; an unreachable URL is logged and retried when a token arrives.
    /// A configuration naming neither or both sources is an error.
    pub async fn load(config: JwksConfig) -> Result<Self, JwksError> {
        if config.url.is_some() == config.file.is_some() {
            return Err(JwksError::Source);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| JwksError::Client { source })?;
        let jwks = Self {
            config,
            keys: RwLock::new((JwkSet { keys: Vec::new() }, None)),
            http,
        };
        if let Err(error) = jwks.refetch().await {
            if jwks.config.file.is_some() {
                return Err(error);
            }
            tracing::warn!(%error, "cannot fetch the identity provider's keys yet");
        }
        Ok(jwks)
    }

    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        let text = match (&self.config.url, &self.config.file) {
            (Some(url), _) => self
                .http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|source| JwksError::Fetch {
                    url: url.clone(),
                    source,
                })?
                .text()
                .await
                .map_err(|source| JwksError::Body { source })?,
            (None, Some(file)) => {
                std::fs::read_to_string(file).map_err(|source| JwksError::Read {
                    path: file.clone(),
                    source,
                })?
            }
            (None, None) => return Err(JwksError::Source),
        };
        serde_json::from_str(&text).map_err(|source| JwksError::Parse { source })
    }

    async fn refetch(&self) -> Result<(), JwksError> {
        let set = self.fetch().await;
        let mut keys = self.keys.write().await;
        keys.1 = Some(Instant::now());
        keys.0 = set?;
        Ok(())
    }

    /// The key with id `kid`, refetching the set once if it is unknown (and not fetched lately).
    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let find = |set: &JwkSet| {
            set.find(kid)
                .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
        };
        {
            let keys = self.keys.read().await;
            if let Some(key) = find(&keys.0) {
                return Some(key);
            }
            if keys.1.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
                return None;
            }
        }
        if let Err(error) = self.refetch().await {
            tracing::warn!(%error, "refreshing the identity provider's keys failed");
        }
        find(&self.keys.read().await.0)
    }

    /// The identity a token proves, or `None` (bad signature, algorithm, issuer, audience,
    /// expiry, key id, or no e-mail claim).
    pub async fn verify(&self, token: &str) -> Option<ExternalIdentity> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return None;
        }
        let key = self.key(header.kid.as_deref()?).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.set_issuer(&[&self.config.issuer]);
        match &self.config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&["exp", "iss"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .ok()?
            .claims;
        let email_claim = self.config.email_claim.as_deref().unwrap_or("email");
        Some(ExternalIdentity {
            email: claims.get(email_claim)?.as_str()?.to_lowercase(),
            expires_at: claims.get("exp")?.as_i64()?,
        })
    }
}
