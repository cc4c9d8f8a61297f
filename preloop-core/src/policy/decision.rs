//! Decisions and their explanations.

use super::document::{ActionKind, RuleMode};
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::Arc;

/// The identity of a compiled rule, shared by every decision it makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    /// The rule's id (given, or `rule-<position>`).
    pub id: String,
    /// 0-based position in the set.
    pub index: usize,
    /// The rule's description.
    pub description: Option<String>,
    /// What the rule does when it matches.
    pub action: ActionKind,
    /// Whether the rule is enforced or shadowed.
    pub mode: RuleMode,
    /// The rule's CEL condition, if any.
    pub condition: Option<String>,
}

impl RuleInfo {
    fn describe(&self) -> String {
        match &self.description {
            Some(description) => format!("rule `{}` ({description})", self.id),
            None => format!("rule `{}`", self.id),
        }
    }
}

/// What happens to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Effect {
    /// The call proceeds.
    Allow,
    /// The call is refused with a message for the agent.
    Deny {
        /// The message.
        message: Arc<str>,
    },
    /// The call waits for human approval.
    RequireApproval {
        /// The approval policy to use; `None` means the default approval policy.
        approval_policy: Option<Arc<str>>,
    },
}

impl Effect {
    /// The action kind of this effect.
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::Allow => ActionKind::Allow,
            Self::Deny { .. } => ActionKind::Deny,
            Self::RequireApproval { .. } => ActionKind::RequireApproval,
        }
    }
}

/// Why the decision came out as it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// An enforced rule matched.
    Rule {
        /// The rule.
        rule: Arc<RuleInfo>,
    },
    /// An enforced rule's condition failed at run time; the call fails closed.
    RuleError {
        /// The rule.
        rule: Arc<RuleInfo>,
        /// The evaluation error.
        error: String,
    },
    /// No enforced rule matched.
    Default,
    /// The whole set runs in shadow mode, so it enforces nothing.
    ShadowSet,
}

/// The would-be decision of shadow rules, recorded but not enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShadowDecision {
    /// What the shadow rule (or the shadowed default) would have done.
    pub effect: Effect,
    /// The shadow rule that matched, or `None` for a shadowed set's default.
    pub rule: Option<Arc<RuleInfo>>,
    /// The shadow rule's evaluation error, if that is why it "matched".
    pub error: Option<String>,
}

/// The outcome of evaluating a policy set for one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What happens to the call.
    pub effect: Effect,
    /// Why.
    pub reason: Reason,
    /// What shadow rules would have done, when that differs from being ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowDecision>,
    /// How many rules' patterns matched the tool (the candidates), for diagnostics.
    pub candidates: usize,
}

impl Decision {
    /// The enforced rule that decided, if one did.
    pub fn rule(&self) -> Option<&RuleInfo> {
        match &self.reason {
            Reason::Rule { rule } | Reason::RuleError { rule, .. } => Some(rule),
            Reason::Default | Reason::ShadowSet => None,
        }
    }

    /// A human-readable explanation: which rule decided and why.
    pub fn explanation(&self) -> String {
        let verdict = match &self.effect {
            Effect::Allow => "allowed".to_owned(),
            Effect::Deny { message } => format!("denied (\"{message}\")"),
            Effect::RequireApproval { approval_policy } => match approval_policy {
                Some(policy) => format!("held for approval under policy `{policy}`"),
                None => "held for approval under the default approval policy".to_owned(),
            },
        };
        let mut text = match &self.reason {
            Reason::Rule { rule } => {
                let mut why = format!("{verdict} by {}", rule.describe());
                if let Some(condition) = &rule.condition {
                    let _ = write!(why, ": its condition `{condition}` is true");
                }
                why
            }
            Reason::RuleError { rule, error } => format!(
                "{verdict} because {} failed to evaluate ({error}); errors fail closed",
                rule.describe()
            ),
            Reason::Default => format!(
                "{verdict} by the default action: none of the {} rule(s) whose tool patterns match applied",
                self.candidates
            ),
            Reason::ShadowSet => format!("{verdict}: the policy set runs in shadow mode"),
        };
        if let Some(shadow) = &self.shadow {
            let who = shadow
                .rule
                .as_ref()
                .map_or_else(|| "the shadowed default".to_owned(), |r| r.describe());
            let _ = write!(
                text,
                "; in shadow mode {who} would have {}",
                match &shadow.effect {
                    Effect::Allow => "allowed it".to_owned(),
                    Effect::Deny { message } => format!("denied it (\"{message}\")"),
                    Effect::RequireApproval { .. } => "held it for approval".to_owned(),
                }
            );
            if let Some(error) = &shadow.error {
                let _ = write!(text, " (evaluation error: {error})");
            }
        }
        text
    }
}
