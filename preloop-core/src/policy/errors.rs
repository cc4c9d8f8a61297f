//! What can be wrong with a policy: each broken rule, and the policy as a whole.

use super::condition::ConditionError;
use super::pattern::PatternError;
use crate::principal::SelectorError;

/// What is wrong with one rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleProblem {
    /// A tool or server pattern does not compile.
    #[error("pattern `{pattern}` is invalid: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        #[source]
        reason: PatternError,
    },
    /// A principal selector does not parse.
    #[error(transparent)]
    Principal(#[from] SelectorError),
    /// The `when` condition does not compile.
    #[error(transparent)]
    Condition(#[from] ConditionError),
    /// Two rules share an id.
    #[error("the id is used by an earlier rule too")]
    DuplicateId,
    /// `tools` is empty and the rule names no prompts, resources or questions, so it could
    /// never match.
    #[error(
        "`tools` is empty and no prompts, resources or questions are named, so the rule can never match; use [\"*\"] for every tool"
    )]
    NoTools,
    /// The id or description is longer than allowed.
    #[error("the {field} has {length} characters; the limit is {limit}")]
    TooLong {
        /// `id` or `description`.
        field: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The named approval policy does not exist.
    #[error("approval policy `{name}` is not defined")]
    UnknownApprovalPolicy {
        /// The name.
        name: String,
    },
}

/// A rule that does not compile, named by id and position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("rule `{rule_id}` (rule #{position}): {problem}")]
pub struct RuleError {
    /// The rule's id.
    pub rule_id: String,
    /// 1-based position.
    pub position: usize,
    /// What is wrong.
    pub problem: RuleProblem,
}

/// Why a policy set does not compile: every problem found, not just the first.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// One or more rules are invalid.
    #[error("{}", join_lines(.0))]
    Rules(Vec<RuleError>),
    /// The set has more rules than the limit allows.
    #[error("the policy has {count} rules; the limit is {limit}")]
    TooManyRules {
        /// Rules in the document.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The compiler's thread could not be started (the process is out of threads or memory).
    #[error("the policy compiler could not start: {0}")]
    CompilerUnavailable(String),
}

fn join_lines(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
