//! Human approval: approval policies, the request state machine, standing grants, decision-link
//! tokens and argument validation.
//!
//! The state machine is pure: [`transition`] maps a request, an [`ApprovalEvent`] and the time to
//! a new request and the [`ApprovalEffect`]s the caller carries out.

mod grant;
mod machine;
mod policy;
mod request;
mod schema;
mod token;

pub use grant::Grant;
pub use machine::{
    ApprovalEffect, ApprovalEvent, Transition, TransitionError, VoteCast, transition,
};
pub use policy::{
    ApprovalMode, ApprovalPolicy, ApprovalPolicyError, CHANNELS, EscalationStage, GrantOptions,
    OnTimeout,
};
pub use request::{
    ApprovalRequest, ApprovalState, NewApprovalRequest, RequestContext, RequestedTool, Vote,
    VoteDecision,
};
pub use schema::{ArgumentSchema, SchemaError, validate_arguments};
pub use token::{DecisionToken, hash_secret, verify_secret};

#[cfg(test)]
mod tests;
