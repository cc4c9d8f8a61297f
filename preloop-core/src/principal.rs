//! Who is calling: principals (users, API keys, agents), the MCP client they use, and the selectors
//! that rules and approval policies use to name them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The identity a call or a vote is made under.
///
/// The server builds one from a verified API key or JWT; an embedder builds one for its own agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable identifier of the user (or service account) within its organization.
    pub id: String,
    /// E-mail address, when the principal is a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Roles such as `admin`, `approver`, `member`, `agent`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Id of the API key the request was authenticated with, if any: what `apikey:` selectors
    /// and `user.api_key` in conditions see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// Name of that API key, for people to read (chosen by the key's holder and not unique,
    /// so never used to decide anything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_name: Option<String>,
    /// Organization every query made for this principal is scoped to.
    pub organization_id: String,
}

impl Principal {
    /// A principal with an id and organization and nothing else.
    pub fn new(id: impl Into<String>, organization_id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            email: None,
            roles: Vec::new(),
            api_key_id: None,
            api_key_name: None,
            organization_id: organization_id.into(),
        }
    }

    /// Sets the e-mail address.
    #[must_use]
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Adds a role.
    #[must_use]
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Sets the API key the principal authenticated with: its id and its name.
    #[must_use]
    pub fn with_api_key(mut self, id: impl Into<String>, name: impl Into<String>) -> Self {
        self.api_key_id = Some(id.into());
        self.api_key_name = Some(name.into());
        self
    }

    /// How people see the principal in records: the e-mail address, else the id.
    pub fn display_name(&self) -> String {
        self.email.clone().unwrap_or_else(|| self.id.clone())
    }

    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The MCP client (or embedding runtime) a call arrives through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Client name as declared at MCP initialization, e.g. `claude-code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Client version as declared at MCP initialization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Longest client name or version kept, in characters (clients choose them).
pub const MAX_CLIENT_FIELD_CHARS: usize = 256;

impl ClientInfo {
    /// A client as it introduced itself, each field cut to [`MAX_CLIENT_FIELD_CHARS`].
    pub fn introduced(name: &str, version: &str) -> Self {
        let cut = |text: &str| {
            text.chars()
                .take(MAX_CLIENT_FIELD_CHARS)
                .collect::<String>()
        };
        Self {
            name: Some(cut(name)),
            version: Some(cut(version)),
        }
    }

    /// A client with a name and no version.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            version: None,
        }
    }
}

/// Names a set of principals in rules and approval policies.
///
/// Written as strings: `*` (everyone), `role:<role>`, `apikey:<key id>`, `user:<id or email>`,
/// or a bare id or e-mail address. API keys are selected by id: their names are chosen by
/// whoever holds them and are not unique, so a name would let any member impersonate a bot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PrincipalSelector {
    /// Every principal.
    Anyone,
    /// Principals holding the role.
    Role(String),
    /// Principals authenticated with the API key of this id.
    ApiKey(String),
    /// The principal with this id or e-mail address.
    User(String),
}

/// A selector string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid principal selector `{selector}`: {reason}")]
pub struct SelectorError {
    /// The selector as written.
    pub selector: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl PrincipalSelector {
    /// Whether `principal` is selected.
    pub fn matches(&self, principal: &Principal) -> bool {
        match self {
            Self::Anyone => true,
            Self::Role(role) => principal.has_role(role),
            Self::ApiKey(id) => principal.api_key_id.as_deref() == Some(id.as_str()),
            Self::User(user) => {
                principal.id == *user
                    || principal
                        .email
                        .as_deref()
                        .is_some_and(|email| email.eq_ignore_ascii_case(user))
            }
        }
    }
}

impl PrincipalSelector {
    /// Refuses an `apikey:` selector that names a key instead of giving its id. Parsing
    /// accepts names, so documents stored before keys were selected by id still load (and
    /// match nothing until they are migrated); compiling a policy and saving settings refuse
    /// them.
    pub fn require_key_id(&self) -> Result<(), SelectorError> {
        match self {
            Self::ApiKey(value) if uuid::Uuid::parse_str(value).is_err() => Err(SelectorError {
                selector: self.to_string(),
                reason: "API keys are selected by id (`apikey:<key id>`, as `GET /api/v1/api-keys` shows it): key names are chosen by their holders and are not unique",
            }),
            _ => Ok(()),
        }
    }
}

impl FromStr for PrincipalSelector {
    type Err = SelectorError;

    fn from_str(selector: &str) -> Result<Self, Self::Err> {
        let error = |reason| SelectorError {
            selector: selector.to_owned(),
            reason,
        };
        let trimmed = selector.trim();
        if trimmed.is_empty() {
            return Err(error("it is empty"));
        }
        if trimmed == "*" {
            return Ok(Self::Anyone);
        }
        let (kind, value) = match trimmed.split_once(':') {
            Some((kind, value)) => (Some(kind), value),
            None => (None, trimmed),
        };
        if value.is_empty() {
            return Err(error("nothing follows the colon"));
        }
        match kind {
            None => Ok(Self::User(value.to_owned())),
            Some("role") => Ok(Self::Role(value.to_owned())),
            Some("apikey") => Ok(Self::ApiKey(value.to_owned())),
            Some("user") => Ok(Self::User(value.to_owned())),
            Some(_) => Err(error(
                "expected `*`, `role:`, `apikey:`, `user:` or a bare user",
            )),
        }
    }
}

impl fmt::Display for PrincipalSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anyone => f.write_str("*"),
            Self::Role(role) => write!(f, "role:{role}"),
            Self::ApiKey(name) => write!(f, "apikey:{name}"),
            Self::User(user) => write!(f, "user:{user}"),
        }
    }
}

impl Serialize for PrincipalSelector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PrincipalSelector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal::new("u1", "org")
            .with_email("Alice@Example.com")
            .with_role("admin")
            .with_api_key(KEY, "ci")
    }

    #[test]
    fn selectors_parse_and_match() {
        let cases = [
            ("*", true),
            ("role:admin", true),
            ("role:agent", false),
            (&format!("apikey:{KEY}") as &str, true),
            // A key's name is not its identity: anyone can name a key `ci`.
            ("apikey:ci", false),
            ("apikey:other", false),
            ("user:u1", true),
            ("alice@example.com", true),
            ("u2", false),
        ];
        for (text, expected) in cases {
            let selector: PrincipalSelector = text.parse().unwrap();
            assert_eq!(selector.matches(&alice()), expected, "{text}");
        }
    }

    const KEY: &str = "2f0e2a49-3a2c-4f0c-9d55-6b1f6b8f3c11";

    #[test]
    fn api_keys_are_selected_by_id_only() {
        let by_id: PrincipalSelector = format!("apikey:{KEY}").parse().unwrap();
        assert!(by_id.require_key_id().is_ok());
        let by_name: PrincipalSelector = "apikey:release-bot".parse().unwrap();
        let error = by_name.require_key_id().unwrap_err().to_string();
        assert!(error.contains("selected by id"), "{error}");
        // Someone who names their key like the bot's is not the bot.
        let impostor = Principal::new("u2", "org")
            .with_api_key(uuid::Uuid::new_v4().to_string(), "release-bot");
        assert!(!by_name.matches(&impostor));
    }

    #[test]
    fn bad_selectors_are_rejected() {
        for text in ["", "role:", "group:x"] {
            assert!(text.parse::<PrincipalSelector>().is_err(), "{text}");
        }
    }

    #[test]
    fn selectors_round_trip_through_serde() {
        let selector: PrincipalSelector = serde_json::from_str("\"role:approver\"").unwrap();
        assert_eq!(selector, PrincipalSelector::Role("approver".into()));
        assert_eq!(
            serde_json::to_string(&selector).unwrap(),
            "\"role:approver\""
        );
    }
}
