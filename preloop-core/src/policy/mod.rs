//! The policy engine: rules over tools, principals and CEL conditions, compiled once and
//! evaluated per call.
//!
//! ```
//! use preloop_core::policy::{GovernanceDocument, Format, Governance, EvaluationInput, Effect};
//! use preloop_core::registry::{ToolDescriptor, ToolSource};
//! use preloop_core::{ClientInfo, Principal};
//!
//! let document = GovernanceDocument::parse(r#"
//! [policy]
//! default = "allow"
//! [[policy.rules]]
//! tools = ["*__delete_*"]
//! action = "deny"
//! message = "Deletions are not allowed"
//! "#, Format::Toml)?;
//! let governance = Governance::compile(&document)?;
//! let tool = ToolDescriptor::new("fs", "delete_file", ToolSource::Upstream);
//! let decision = governance.policy().evaluate(&EvaluationInput {
//!     tool: &tool,
//!     args: &serde_json::json!({"path": "/tmp/x"}),
//!     principal: &Principal::new("agent-1", "acme"),
//!     client: &ClientInfo::default(),
//!     now: chrono::Utc::now(),
//! });
//! assert!(matches!(decision.effect, Effect::Deny { .. }));
//! println!("{}", decision.explanation());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! How evaluation stays fast: rules compile once (globs, principal selectors, CEL programs); an
//! index maps each tool to the few rules whose tool and server patterns can match it, memoized per
//! tool; and the CEL activation builds a variable only when an expression reads it, borrowing
//! strings from the call instead of copying them.
//!
//! Failure is closed: a condition that errors at run time (a missing argument, a type mismatch)
//! makes the decision `deny` (or `require_approval` with `on_error = "require_approval"`), never
//! `allow`. Conditions that may meet missing arguments should test them with `has(args.x)`.

mod condition;
mod cost;
mod decision;
mod document;
mod errors;
mod fast;
mod governance;
mod pattern;
mod set;

pub use condition::{ConditionError, EvaluationInput, PolicyLimits, VARIABLES};
pub use cost::{ASSUMED_ITEMS, MatchesError};
pub use decision::{Decision, Effect, Reason, RuleInfo, ShadowDecision};
pub use document::{
    ActionKind, Format, GovernanceDocument, OnError, PolicyDocument, RenderError, RuleMode,
    RuleSpec, SyntaxError,
};
pub use errors::{PolicyError, RuleError, RuleProblem};
pub use governance::{Governance, GovernanceError};
pub use pattern::PatternError;
pub use set::{COSTLY_CONDITION, INLINE_BUDGET, PolicySet};

#[cfg(test)]
mod fast_tests;
#[cfg(test)]
mod tests;
