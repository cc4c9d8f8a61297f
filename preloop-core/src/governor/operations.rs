//! Governed operations that are not registered tools: prompts got and resources read through
//! an upstream server, decided by the rules that name their kind and audited like tool calls.

use super::{Governor, GovernorError, Outcome, ToolCall, normalize_arguments};
use crate::principal::Principal;
use crate::registry::{RegisteredTool, ToolDescriptor};

/// Whether a call may be held for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holding {
    /// It may: its tool is registered, so the approved request finds it again.
    Allowed,
    /// It may not (an operation the caller hands in with its own executor): a rule that
    /// would hold it denies it.
    Refused,
}

impl Governor {
    /// Of `operations` (prompts or resources an upstream offers, each with the descriptor the
    /// policy sees), those no rule denies `principal` unconditionally; none when no policy is
    /// in force.
    pub fn visible_operations<T>(
        &self,
        principal: &Principal,
        operations: impl IntoIterator<Item = (ToolDescriptor, T)>,
    ) -> Vec<T> {
        let Some(governance) = self.governance(&principal.organization_id) else {
            return Vec::new();
        };
        operations
            .into_iter()
            .filter(|(operation, _)| {
                !governance
                    .policy()
                    .denies_unconditionally(operation, principal)
            })
            .map(|(_, item)| item)
            .collect()
    }

    /// Governs an operation that is not a registered tool: getting a prompt or reading a
    /// resource through an upstream server (`tool.descriptor.kind` says which), or calling a
    /// tool the upstream does not list, done by `tool`'s executor. The policy rules of that kind decide it and the audit log records it
    /// as it records tool calls; `call.tool` is ignored. Such operations are not held for
    /// approval: a rule that would hold one denies it. Visibility is the caller's to check.
    pub async fn call_operation(
        &self,
        principal: &Principal,
        tool: RegisteredTool,
        call: ToolCall,
    ) -> Result<Outcome, GovernorError> {
        let checked = normalize_arguments(&call.arguments).map(|arguments| (tool, arguments));
        self.govern(principal, checked, &call, Holding::Refused)
            .await
    }
}
