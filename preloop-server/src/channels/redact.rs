//! Secrets kept out of approval messages: before any channel sends a request's arguments, the
//! values of keys that match a pattern (`[channels] redact_keys`, case-insensitive globs, at any
//! depth) are replaced with [`REDACTED`].

use super::ChannelsError;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::Value;

/// The key patterns redacted when `[channels] redact_keys` is not set.
pub const DEFAULT_REDACT_KEYS: &[&str] = &[
    "*password*",
    "*passwd*",
    "*secret*",
    "*token*",
    "*api_key*",
    "*apikey*",
    "*private_key*",
    "*credential*",
    "authorization",
    "cookie",
];

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Replaces the values of secret-looking keys.
#[derive(Debug, Clone)]
pub struct Redactor(GlobSet);

impl Redactor {
    /// A redactor for `patterns` (globs over object keys, case-insensitive).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, ChannelsError> {
        let mut set = GlobSetBuilder::new();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            let glob = GlobBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .map_err(|source| ChannelsError::RedactPattern {
                    pattern: pattern.to_owned(),
                    source,
                })?;
            set.add(glob);
        }
        set.build()
            .map(Self)
            .map_err(|source| ChannelsError::RedactSet { source })
    }

    /// `value` with the value of every matching key replaced, however deep.
    pub fn redact(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| {
                        let value = if self.0.is_match(key) {
                            Value::String(REDACTED.to_owned())
                        } else {
                            self.redact(value)
                        };
                        (key.clone(), value)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.redact(v)).collect()),
            other => other.clone(),
        }
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(DEFAULT_REDACT_KEYS)
            .unwrap_or_else(|_| unreachable!("the default patterns are valid globs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_looking_keys_are_redacted_at_any_depth_and_nothing_else_is() {
        let arguments = json!({
            "repo": "acme/app",
            "API_Token": "t0ken",
            "headers": {"Authorization": "Bearer x", "accept": "json"},
            "steps": [{"db_password": "hunter2", "name": "migrate"}],
            "count": 3,
        });
        assert_eq!(
            Redactor::default().redact(&arguments),
            json!({
                "repo": "acme/app",
                "API_Token": REDACTED,
                "headers": {"Authorization": REDACTED, "accept": "json"},
                "steps": [{"db_password": REDACTED, "name": "migrate"}],
                "count": 3,
            })
        );
    }

    #[test]
    fn configured_patterns_replace_the_defaults_and_bad_ones_are_refused() {
        let redactor = Redactor::new(&["ssn", "card_*"]).unwrap();
        assert_eq!(
            redactor.redact(&json!({"SSN": "1", "card_number": "2", "password": "3"})),
            json!({"SSN": REDACTED, "card_number": REDACTED, "password": "3"})
        );
        let error = Redactor::new(&["card_[x"]).unwrap_err().to_string();
        assert!(error.contains("card_[x"), "{error}");
    }
}
