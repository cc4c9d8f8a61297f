//! Approval policies: who approves, how many, how long, and what happens when nobody does.

use crate::principal::{Principal, PrincipalSelector};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Channels a request can be routed to.
pub const CHANNELS: [&str; 7] = [
    "web",
    "email",
    "slack",
    "mattermost",
    "telegram",
    "webhook",
    "elicitation",
];

/// What happens when a request reaches its timeout undecided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// The request expires and the call is denied.
    #[default]
    Deny,
    /// The request is approved automatically.
    Approve,
    /// The next escalation stage starts and the timeout restarts; with no stage left, it expires.
    Escalate,
}

/// How the calling agent waits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// The call waits until decided (or the blocking timeout).
    #[default]
    Blocking,
    /// The call returns `pending_approval` at once; the agent polls.
    Async,
}

/// Longest approval policy name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// An escalation stage: after a delay from creation, more approvers and channels join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStage {
    /// Delay from the request's creation.
    #[serde(with = "crate::clock::bounded_duration")]
    pub after: Duration,
    /// Approvers added at this stage.
    #[serde(default)]
    pub approvers: Vec<PrincipalSelector>,
    /// Channels notified at this stage.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// Standing grants approvers may give with an approval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantOptions {
    /// Longest grant an approver may give; `None` disables grants.
    #[serde(
        default,
        with = "crate::clock::bounded_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_duration: Option<Duration>,
}

fn one() -> u32 {
    1
}

fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}

fn web() -> Vec<String> {
    vec!["web".to_owned()]
}

/// A named approval policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// Unique name, referenced by rules.
    pub name: String,
    /// Used by rules that name no approval policy.
    #[serde(default)]
    pub default: bool,
    /// What the policy is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who may vote; empty means principals with the `admin` role.
    #[serde(default)]
    pub approvers: Vec<PrincipalSelector>,
    /// Distinct approvals needed.
    #[serde(default = "one")]
    pub quorum: u32,
    /// Declines that decline the request (1: any approver's decline does).
    #[serde(default = "one")]
    pub declines_required: u32,
    /// How long the request stays open.
    #[serde(default = "ten_minutes", with = "crate::clock::bounded_duration")]
    pub timeout: Duration,
    /// What happens at the timeout.
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// Blocking or async waiting.
    #[serde(default)]
    pub mode: ApprovalMode,
    /// Channels notified when the request is created.
    #[serde(default = "web")]
    pub channels: Vec<String>,
    /// Escalation stages, in increasing `after` order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<EscalationStage>,
    /// Votes must carry a comment.
    #[serde(default)]
    pub require_reason: bool,
    /// Approvers may change the arguments before approving.
    #[serde(default)]
    pub allow_edit: bool,
    /// The requester may approve their own call (e.g. inline through MCP elicitation).
    #[serde(default)]
    pub allow_self_approval: bool,
    /// Standing grants.
    #[serde(default)]
    pub grant: GrantOptions,
}

/// An approval policy that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("approval policy `{policy}`: {problem}")]
pub struct ApprovalPolicyError {
    /// The policy's name.
    pub policy: String,
    /// What is wrong.
    pub problem: String,
}

impl ApprovalPolicy {
    /// A policy with the defaults: admins approve, quorum 1, ten minutes, deny on timeout,
    /// blocking, the web channel.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            default: false,
            description: None,
            approvers: Vec::new(),
            quorum: 1,
            declines_required: 1,
            timeout: ten_minutes(),
            on_timeout: OnTimeout::Deny,
            mode: ApprovalMode::Blocking,
            channels: web(),
            escalation: Vec::new(),
            require_reason: false,
            allow_edit: false,
            allow_self_approval: false,
            grant: GrantOptions::default(),
        }
    }

    /// The policy used when a rule requires approval and no approval policy is defined.
    pub fn builtin_default() -> Self {
        Self {
            default: true,
            description: Some("built-in: one admin approves within ten minutes".to_owned()),
            ..Self::new("default")
        }
    }

    /// Checks the invariants the state machine relies on.
    pub fn validate(&self) -> Result<(), ApprovalPolicyError> {
        let fail = |problem: String| {
            Err(ApprovalPolicyError {
                policy: self.name.clone(),
                problem,
            })
        };
        if self.name.trim().is_empty() {
            return fail("the name is empty".to_owned());
        }
        if self.name.chars().count() > MAX_NAME_CHARS {
            return fail(format!(
                "the name is longer than {MAX_NAME_CHARS} characters"
            ));
        }
        if self.quorum == 0 {
            return fail("quorum must be at least 1".to_owned());
        }
        if self.declines_required == 0 {
            return fail("declines_required must be at least 1".to_owned());
        }
        if self.timeout.is_zero() {
            return fail("timeout must be longer than zero".to_owned());
        }
        if self.on_timeout == OnTimeout::Escalate && self.escalation.is_empty() {
            return fail(
                "on_timeout = \"escalate\" needs at least one escalation stage".to_owned(),
            );
        }
        let selectors = self.approvers.iter().chain(
            self.escalation
                .iter()
                .flat_map(|stage| stage.approvers.iter()),
        );
        for selector in selectors {
            if let Err(error) = selector.require_key_id() {
                return fail(error.to_string());
            }
        }
        if self.escalation.windows(2).any(|w| w[0].after >= w[1].after) {
            return fail(
                "escalation stages must be in strictly increasing `after` order".to_owned(),
            );
        }
        let channels = self
            .channels
            .iter()
            .chain(self.escalation.iter().flat_map(|s| s.channels.iter()));
        for channel in channels {
            if !CHANNELS.contains(&channel.as_str()) {
                return fail(format!(
                    "unknown channel `{channel}`; known channels: {}",
                    CHANNELS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Whether `principal` may vote once `stages_reached` escalation stages have started.
    pub fn is_approver(&self, principal: &Principal, stages_reached: usize) -> bool {
        let base_matches = if self.approvers.is_empty() {
            principal.has_role("admin")
        } else {
            self.approvers.iter().any(|s| s.matches(principal))
        };
        base_matches
            || self
                .escalation
                .iter()
                .take(stages_reached)
                .flat_map(|stage| stage.approvers.iter())
                .any(|s| s.matches(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_past_a_year_are_refused_when_parsed() {
        for text in [
            "name = \"ops\"\ntimeout = \"1000000years\"\n",
            "name = \"ops\"\ngrant = { max_duration = \"400days\" }\n",
            "name = \"ops\"\n[[escalation]]\nafter = \"1000000years\"\n",
        ] {
            let error = toml::from_str::<ApprovalPolicy>(text)
                .unwrap_err()
                .to_string();
            assert!(error.contains("longer than the limit"), "{text}: {error}");
        }
        let fine: ApprovalPolicy =
            toml::from_str("name = \"ops\"\ntimeout = \"366days\"\n").unwrap();
        assert_eq!(fine.timeout, crate::clock::MAX_DURATION);
    }

    #[test]
    fn defaults_fill_in_from_a_minimal_toml_policy() {
        let policy: ApprovalPolicy = toml::from_str("name = \"ops\"").unwrap();
        assert_eq!(policy, ApprovalPolicy::new("ops"));
        policy.validate().unwrap();
    }

    #[test]
    fn durations_are_human_readable() {
        let text = "name = \"ops\"\ntimeout = \"1h 30m\"\ngrant = { max_duration = \"15m\" }\n[[escalation]]\nafter = \"5m\"\napprovers = [\"role:oncall\"]\n";
        let policy: ApprovalPolicy = toml::from_str(text).unwrap();
        assert_eq!(policy.timeout, Duration::from_secs(5400));
        assert_eq!(policy.grant.max_duration, Some(Duration::from_secs(900)));
        assert_eq!(policy.escalation[0].after, Duration::from_secs(300));
    }

    #[test]
    fn invalid_policies_say_what_is_wrong() {
        let mut policy = ApprovalPolicy::new("ops");
        policy.quorum = 0;
        assert!(
            policy
                .validate()
                .unwrap_err()
                .to_string()
                .contains("quorum")
        );
        let mut policy = ApprovalPolicy::new("ops");
        policy.on_timeout = OnTimeout::Escalate;
        assert!(
            policy
                .validate()
                .unwrap_err()
                .to_string()
                .contains("escalation")
        );
        let mut policy = ApprovalPolicy::new("ops");
        policy.channels = vec!["pager".into()];
        assert!(policy.validate().unwrap_err().to_string().contains("pager"));
    }

    #[test]
    fn approvers_default_to_admins_and_grow_with_escalation() {
        let mut policy = ApprovalPolicy::new("ops");
        let admin = Principal::new("a", "o").with_role("admin");
        let oncall = Principal::new("b", "o").with_role("oncall");
        assert!(policy.is_approver(&admin, 0));
        assert!(!policy.is_approver(&oncall, 0));
        policy.escalation.push(EscalationStage {
            after: Duration::from_secs(60),
            approvers: vec!["role:oncall".parse().unwrap()],
            channels: vec![],
        });
        assert!(!policy.is_approver(&oncall, 0));
        assert!(policy.is_approver(&oncall, 1));
    }
}
