//! Size limits on what callers name and write. The body limit bounds a request; these bound
//! each field, so nobody stores a megabyte user name or session id for others to page through.

use super::ApiError;
use serde_json::Value;

/// Largest accepted request body, in bytes.
pub const BODY: usize = 4 * 1024 * 1024;
/// Identifiers callers choose (HITL session and client ids, tool names in paths).
pub const ID: usize = 128;
/// Names of people, keys and organizations.
pub const NAME: usize = 256;
/// E-mail addresses (RFC 5321's limit).
pub const EMAIL: usize = 254;
/// Passwords (argon2 hashes all of it; a limit keeps sign-in cheap).
pub const PASSWORD: usize = 1024;
/// Free text: messages, descriptions.
pub const TEXT: usize = 4096;
/// URLs.
pub const URL: usize = 2048;
/// Entries of a list of choices.
pub const OPTIONS: usize = 32;
/// Free-form JSON metadata, serialized.
pub const METADATA_BYTES: usize = 16 * 1024;

/// `value` if it has at most `limit` characters, else a 422 naming `field`.
pub fn text(field: &str, value: &str, limit: usize) -> Result<(), ApiError> {
    let length = value.chars().count();
    if length > limit {
        return Err(ApiError::Unprocessable(format!(
            "`{field}` has {length} characters; the limit is {limit}"
        )));
    }
    Ok(())
}

/// The same for an optional field.
pub fn optional(field: &str, value: Option<&str>, limit: usize) -> Result<(), ApiError> {
    value.map_or(Ok(()), |value| text(field, value, limit))
}

/// `value`, serialized, within `limit` bytes.
pub fn json(field: &str, value: &Value, limit: usize) -> Result<(), ApiError> {
    let size = serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len());
    if size > limit {
        return Err(ApiError::Unprocessable(format!(
            "`{field}` is {size} bytes of JSON; the limit is {limit}"
        )));
    }
    Ok(())
}

/// A list of at most `entries` entries of at most `limit` characters each.
pub fn list(field: &str, values: &[String], entries: usize, limit: usize) -> Result<(), ApiError> {
    if values.len() > entries {
        return Err(ApiError::Unprocessable(format!(
            "`{field}` has {} entries; the limit is {entries}",
            values.len()
        )));
    }
    values
        .iter()
        .try_for_each(|value| text(field, value, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_past_their_limit_are_unprocessable() {
        assert!(text("name", "ada", NAME).is_ok());
        let error = text("name", &"x".repeat(NAME + 1), NAME).unwrap_err();
        assert!(error.to_string().contains("the limit is 256"), "{error}");
        assert!(list("options", &vec!["a".to_owned(); OPTIONS + 1], OPTIONS, NAME).is_err());
        assert!(
            json(
                "metadata",
                &serde_json::json!({"a": "x".repeat(METADATA_BYTES)}),
                METADATA_BYTES
            )
            .is_err()
        );
        assert!(optional("name", None, 1).is_ok());
    }
}
