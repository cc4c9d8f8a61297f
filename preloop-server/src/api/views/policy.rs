//! The governance document over REST. Rules, approval policies and the whole document are the
//! documented policy-file format (`preloop-core`'s `policy::document`), which users write in
//! TOML, YAML or JSON and read back: the API takes and gives them exactly as the core reads and
//! writes them, so a `GET` followed by a `PUT` never loses a field. Those three are wrapped here
//! only to describe them in `/openapi.json`; everything around them (lists, summaries,
//! explanations) is a view chosen field by field.

use preloop_core::approval::ApprovalPolicy;
use preloop_core::policy::{ActionKind, Decision, GovernanceDocument, PolicyDocument, RuleSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A rule as policy files write it: `id` (default `rule-<position>`), `description`, `tools`
/// (globs over the exposed name, default `["*"]` unless the rule names prompts or resources),
/// `prompts` (globs over prompt names), `resources` (globs over resource URIs), `servers` (globs), `principals` (selectors:
/// `role:<role>`, `apikey:<key id>`, `user:<id or e-mail>`, `*`), `when` (a CEL condition),
/// `action` (`allow`, `deny` or `require_approval`), `message` (shown on deny),
/// `approval_policy`, `mode` (`enforce` or `shadow`), `enabled`. Unknown fields are refused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(as = Rule, value_type = Object)]
pub(in crate::api) struct RuleDoc(pub RuleSpec);

/// An approval policy as policy files write it: `name`, `default`, `description`, `approvers`
/// (selectors; empty means admins), `quorum`, `declines_required`, `timeout` (e.g. `"10m"`),
/// `on_timeout` (`deny`, `approve` or `escalate`), `mode` (`blocking` or `async`), `channels`,
/// `escalation` (stages of `after`, `approvers`, `channels`), `require_reason`, `allow_edit`,
/// `allow_self_approval`, `grant` (`max_duration`). Unknown fields are refused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(as = ApprovalPolicy, value_type = Object)]
pub(in crate::api) struct ApprovalPolicyDoc(pub ApprovalPolicy);

/// A governance document as policy files write it: `policy` (`default` action,
/// `default_message`, `mode`, `on_error` and the ordered `rules`, each a `Rule`) and
/// `approval_policies` (each an `ApprovalPolicy`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(as = GovernanceDocument, value_type = Object)]
pub(in crate::api) struct GovernanceDoc(pub GovernanceDocument);

/// What a rule, or the default, does with a call.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(in crate::api) enum Action {
    /// Let the call through.
    Allow,
    /// Refuse it.
    Deny,
    /// Hold it for human approval.
    RequireApproval,
}

impl From<ActionKind> for Action {
    fn from(kind: ActionKind) -> Self {
        match kind {
            ActionKind::Allow => Self::Allow,
            ActionKind::Deny => Self::Deny,
            ActionKind::RequireApproval => Self::RequireApproval,
        }
    }
}

/// The rules in order, and what happens to a call none matches.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct RuleList {
    /// The action when no rule matches.
    default: Action,
    /// The rules, first match wins.
    items: Vec<RuleDoc>,
}

impl From<PolicyDocument> for RuleList {
    fn from(policy: PolicyDocument) -> Self {
        Self {
            default: policy.default.into(),
            items: policy.rules.into_iter().map(RuleDoc).collect(),
        }
    }
}

/// What a replaced document holds.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct DocumentSummary {
    /// Approval policies in the new document.
    approval_policies: usize,
    /// Rules in the new document.
    rules: usize,
}

impl From<&GovernanceDocument> for DocumentSummary {
    fn from(document: &GovernanceDocument) -> Self {
        Self {
            approval_policies: document.approval_policies.len(),
            rules: document.policy.rules.len(),
        }
    }
}

/// The decision on a hypothetical call, explained.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct Explanation {
    /// What would happen to the call.
    action: Action,
    /// The deciding rule's id; `null` when the default decided.
    rule: Option<String>,
    /// Which rule decided and why, in words.
    explanation: String,
}

impl From<&Decision> for Explanation {
    fn from(decision: &Decision) -> Self {
        Self {
            action: decision.effect.kind().into(),
            rule: decision.rule().map(|r| r.id.clone()),
            explanation: decision.explanation(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use preloop_core::policy::RuleMode;
    use serde_json::json;

    #[test]
    fn the_rule_list_is_the_default_and_the_rules_as_written() {
        let document = GovernanceDocument {
            policy: PolicyDocument {
                default: ActionKind::RequireApproval,
                rules: vec![
                    RuleSpec::new(ActionKind::Deny, ["github__*"])
                        .id("no-github")
                        .message("no")
                        .mode(RuleMode::Shadow),
                ],
                ..PolicyDocument::default()
            },
            approval_policies: vec![ApprovalPolicy::new("ops")],
        };
        let listed = serde_json::to_value(RuleList::from(document.policy.clone())).unwrap();
        assert_eq!(
            listed,
            json!({"default": document.policy.default, "items": document.policy.rules})
        );
        assert_eq!(
            serde_json::to_value(DocumentSummary::from(&document)).unwrap(),
            json!({"rules": 1, "approval_policies": 1})
        );
        for (wrapped, core) in [
            (
                serde_json::to_value(GovernanceDoc(document.clone())).unwrap(),
                serde_json::to_value(&document).unwrap(),
            ),
            (
                serde_json::to_value(ApprovalPolicyDoc(document.approval_policies[0].clone()))
                    .unwrap(),
                serde_json::to_value(&document.approval_policies[0]).unwrap(),
            ),
        ] {
            assert_eq!(wrapped, core);
        }
        let read: RuleDoc = serde_json::from_value(json!({"action": "allow"})).unwrap();
        assert_eq!(
            read.0,
            RuleSpec {
                tools: None,
                ..RuleSpec::new(ActionKind::Allow, ["*"])
            }
        );
        assert!(serde_json::from_value::<RuleDoc>(json!({"action": "allow", "x": 1})).is_err());
    }

    #[test]
    fn actions_are_written_as_the_core_writes_them() {
        for kind in [
            ActionKind::Allow,
            ActionKind::Deny,
            ActionKind::RequireApproval,
        ] {
            assert_eq!(
                serde_json::to_value(Action::from(kind)).unwrap(),
                serde_json::to_value(kind).unwrap()
            );
        }
    }
}
