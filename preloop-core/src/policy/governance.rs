//! A compiled governance document: the policy set plus the approval policies it refers to.

use super::condition::PolicyLimits;
use super::document::GovernanceDocument;
use super::errors::{PolicyError, RuleError, RuleProblem};
use super::set::PolicySet;
use crate::approval::{ApprovalPolicy, ApprovalPolicyError};
use std::collections::HashMap;

/// Why a governance document does not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GovernanceError {
    /// The rules do not compile (or name undefined approval policies).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// An approval policy is invalid.
    #[error(transparent)]
    ApprovalPolicy(#[from] ApprovalPolicyError),
    /// Two approval policies share a name.
    #[error("approval policy `{0}` is defined twice")]
    DuplicateApprovalPolicy(String),
    /// More than one approval policy says `default = true`.
    #[error("approval policies {0} are all marked default; mark one")]
    SeveralDefaults(String),
}

/// The compiled policy set and the approval policies, ready for the governor.
#[derive(Debug)]
pub struct Governance {
    policy: PolicySet,
    approval_policies: HashMap<String, ApprovalPolicy>,
    default_approval_policy: ApprovalPolicy,
    document: GovernanceDocument,
}

impl Governance {
    /// Compiles a document with the default limits.
    pub fn compile(document: &GovernanceDocument) -> Result<Self, GovernanceError> {
        Self::compile_with_limits(document, &PolicyLimits::default())
    }

    /// Compiles a document. Rules that require approval without naming a policy use the policy
    /// marked `default = true`, else one named `default`, else the only one defined, else
    /// [`ApprovalPolicy::builtin_default`].
    pub fn compile_with_limits(
        document: &GovernanceDocument,
        limits: &PolicyLimits,
    ) -> Result<Self, GovernanceError> {
        let mut approval_policies = HashMap::new();
        for policy in &document.approval_policies {
            policy.validate()?;
            if approval_policies
                .insert(policy.name.clone(), policy.clone())
                .is_some()
            {
                return Err(GovernanceError::DuplicateApprovalPolicy(
                    policy.name.clone(),
                ));
            }
        }
        let defaults: Vec<&ApprovalPolicy> = document
            .approval_policies
            .iter()
            .filter(|p| p.default)
            .collect();
        if defaults.len() > 1 {
            let names: Vec<String> = defaults.iter().map(|p| format!("`{}`", p.name)).collect();
            return Err(GovernanceError::SeveralDefaults(names.join(", ")));
        }
        let default_approval_policy = defaults
            .first()
            .copied()
            .or(approval_policies.get("default"))
            .or(match document.approval_policies.as_slice() {
                [only] => Some(only),
                _ => None,
            })
            .cloned()
            .unwrap_or_else(ApprovalPolicy::builtin_default);
        let policy = PolicySet::compile_with_limits(&document.policy, limits)?;
        let unknown: Vec<RuleError> = policy
            .approval_policies_named()
            .filter(|(_, name)| !approval_policies.contains_key(*name))
            .map(|(rule, name)| RuleError {
                rule_id: rule.id.clone(),
                position: rule.index + 1,
                problem: RuleProblem::UnknownApprovalPolicy {
                    name: name.to_owned(),
                },
            })
            .collect();
        if !unknown.is_empty() {
            return Err(PolicyError::Rules(unknown).into());
        }
        Ok(Self {
            policy,
            approval_policies,
            default_approval_policy,
            document: document.clone(),
        })
    }

    /// The compiled rules.
    pub fn policy(&self) -> &PolicySet {
        &self.policy
    }

    /// The approval policy called `name`, or the default one for `None`.
    pub fn approval_policy(&self, name: Option<&str>) -> Option<&ApprovalPolicy> {
        match name {
            Some(name) => self.approval_policies.get(name),
            None => Some(&self.default_approval_policy),
        }
    }

    /// The document this was compiled from.
    pub fn document(&self) -> &GovernanceDocument {
        &self.document
    }
}
