//! The governor: the one entry point every call goes through, whether it arrives over MCP, the
//! REST/HITL API or from an embedding runtime.
//!
//! `visibility -> policy -> approval -> execute -> audit`, over the store, executor, notifier and
//! clock traits. Failure is closed: a store error, a missing approval policy or a policy error
//! never lets a call through.

mod approvals;
mod decisions;
mod notifier;
mod operations;
mod outcome;
mod wakeups;

mod builder;
mod call;

pub use builder::{GovernorBuilder, GovernorConfig};
pub use call::{ProgressSink, ToolCall};
pub use decisions::{DecisionJob, DecisionRunner, InlineDecisions};
pub use notifier::{NoNotifier, Notification, Notifier, NotifyError};
pub use outcome::{GovernorError, Outcome};

use crate::approval::{
    ApprovalMode, ApprovalRequest, DecisionToken, NewApprovalRequest, RequestedTool,
};
use crate::audit::{AuditEntry, AuditEventKind};
use crate::clock::Clock;
use crate::executor::ExecutionContext;
use crate::policy::{
    Decision, Effect, EvaluationInput, Governance, GovernanceDocument, INLINE_BUDGET, Reason,
};
use crate::principal::{ClientInfo, Principal};
use crate::registry::{OperationKind, RegisteredTool, Registry};
use crate::store::{ApprovalStore, AuditStore, GrantStore};
use chrono::{DateTime, Utc};
use operations::Holding;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use uuid::Uuid;
use wakeups::Wakeups;

/// The governance pipeline.
pub struct Governor {
    registry: Arc<Registry>,
    approvals: Arc<dyn ApprovalStore>,
    grants: Arc<dyn GrantStore>,
    audit: Arc<dyn AuditStore>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    decisions: Arc<dyn DecisionRunner>,
    config: GovernorConfig,
    governance: RwLock<HashMap<String, Arc<Governance>>>,
    fallback: Option<Arc<Governance>>,
    wakeups: Wakeups,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("config", &self.config)
            .field("tools", &self.registry.len())
            .finish_non_exhaustive()
    }
}

impl Governor {
    /// Starts building a governor over `registry`.
    pub fn builder(registry: Arc<Registry>) -> GovernorBuilder {
        GovernorBuilder::new(registry)
    }

    /// The tool registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Compiles and installs `document` for `organization_id`; the old policy stays on error.
    pub fn set_policy(
        &self,
        organization_id: &str,
        document: &GovernanceDocument,
    ) -> Result<(), GovernorError> {
        self.install_policy(organization_id, Governance::compile(document)?);
        Ok(())
    }

    /// Installs a policy compiled beforehand (compiling can take a while: a server does it
    /// away from its request threads).
    pub fn install_policy(&self, organization_id: &str, governance: Governance) {
        let compiled = Arc::new(governance);
        self.governance
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(organization_id.to_owned(), compiled);
        // A policy can hide tools (those it denies outright).
        self.registry.note_change(Some(organization_id));
    }

    /// The governance in force for an organization, if any can be had (fails closed otherwise).
    pub fn governance(&self, organization_id: &str) -> Option<Arc<Governance>> {
        self.governance
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(organization_id)
            .cloned()
            .or_else(|| self.fallback.clone())
    }

    /// Decides a hypothetical call without running or recording anything (`policy test`).
    pub fn explain(
        &self,
        principal: &Principal,
        call: &ToolCall,
    ) -> Result<Decision, GovernorError> {
        let tool = self.visible_tool(principal, &call.tool)?;
        let arguments = normalize_arguments(&call.arguments)?;
        let governance = self.governance_or_fail(principal)?;
        Ok(governance.policy().evaluate(&EvaluationInput {
            tool: &tool.descriptor,
            args: &arguments,
            principal,
            client: &call.client,
            now: self.clock.now(),
        }))
    }

    /// The tools `principal` may see, without those a rule denies them unconditionally.
    pub fn list_tools(&self, principal: &Principal) -> Vec<RegisteredTool> {
        let governance = self.governance(&principal.organization_id);
        self.registry
            .visible_to(principal)
            .into_iter()
            .filter(|tool| {
                governance.as_ref().is_some_and(|g| {
                    !g.policy()
                        .denies_unconditionally(&tool.descriptor, principal)
                })
            })
            .collect()
    }

    /// Governs one call: decides, holds it for approval if needed, runs it at most once, and
    /// records every step.
    pub async fn call(
        &self,
        principal: &Principal,
        call: ToolCall,
    ) -> Result<Outcome, GovernorError> {
        let checked = self.visible_tool(principal, &call.tool).and_then(|tool| {
            let arguments = checked_arguments(&tool, &call.arguments)?;
            Ok((tool, arguments))
        });
        self.govern(principal, checked, &call, Holding::Allowed)
            .await
    }

    /// Decides the `checked` call (or records why it was rejected), then runs it, holds it (if
    /// `holding` allows) or refuses it, recording every step.
    async fn govern(
        &self,
        principal: &Principal,
        checked: Result<(RegisteredTool, Value), GovernorError>,
        call: &ToolCall,
        holding: Holding,
    ) -> Result<Outcome, GovernorError> {
        let call_id = Uuid::new_v4();
        let now = self.clock.now();
        let org = principal.organization_id.as_str();
        let (tool, arguments) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                let reason = error.to_string();
                self.record(org, now, AuditEventKind::CallRejected { call_id, reason })
                    .await?;
                return Err(error);
            }
        };
        let governance = self.governance_or_fail(principal)?;
        let decision = self
            .policy_decision(&governance, &tool, &arguments, principal, &call.client, now)
            .await?;
        self.audit
            .append(vec![
                AuditEntry::new(
                    org,
                    now,
                    AuditEventKind::CallReceived {
                        call_id,
                        principal_id: principal.id.clone(),
                        tool: tool.descriptor.exposed_name.clone(),
                        arguments: arguments.clone(),
                        kind: tool.descriptor.kind,
                    },
                ),
                AuditEntry::new(org, now, decision_event(call_id, &decision)),
            ])
            .await?;
        match &decision.effect {
            Effect::Allow => self.run(&tool, arguments, principal, call, call_id).await,
            Effect::Deny { message } => Ok(Outcome::Denied {
                call_id,
                message: message.to_string(),
                rule: decision.rule().map(|r| r.id.clone()),
            }),
            Effect::RequireApproval { .. }
                if holding == Holding::Refused || tool.descriptor.kind != OperationKind::Tool =>
            {
                // INVARIANT (an approved call runs): approved requests find their tool in the
                // registry again, so only calls of registered tools are held.
                Ok(Outcome::Denied {
                    call_id,
                    message: format!(
                        "denied: a rule holds this {} for approval, and only calls of listed tools can be held",
                        tool.descriptor.kind.as_str()
                    ),
                    rule: decision.rule().map(|r| r.id.clone()),
                })
            }
            Effect::RequireApproval { approval_policy } => {
                let held = Held {
                    tool: &tool,
                    arguments,
                    call,
                    call_id,
                    rule: decision.rule().map(|r| r.id.clone()),
                };
                // The rule's approval policy, else the tool's, else the organization's default.
                let approval_policy = approval_policy
                    .as_deref()
                    .or(tool.approval_policy.as_deref());
                self.hold_for_approval(principal, &governance, approval_policy, held, true)
                    .await
            }
        }
    }

    /// The policy's decision on a call: at once, or through the [`DecisionRunner`] when the
    /// tool's candidate rules include a costly condition or the decision would spend more than
    /// [`INLINE_BUDGET`] (large arguments).
    async fn policy_decision(
        &self,
        governance: &Arc<Governance>,
        tool: &RegisteredTool,
        arguments: &Value,
        principal: &Principal,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Decision, GovernorError> {
        if !governance.policy().is_costly(&tool.descriptor) {
            let input = EvaluationInput {
                tool: &tool.descriptor,
                args: arguments,
                principal,
                client,
                now,
            };
            // Cheap rules are decided here, unless the arguments make them expensive.
            if let Some(decision) = governance.policy().try_evaluate(&input, INLINE_BUDGET) {
                return Ok(decision);
            }
        }
        let (governance, descriptor, arguments, principal_owned, client) = (
            Arc::clone(governance),
            tool.descriptor.clone(),
            arguments.clone(),
            principal.clone(),
            client.clone(),
        );
        self.decisions
            .run(
                &principal.organization_id,
                Box::new(move || {
                    governance.policy().evaluate(&EvaluationInput {
                        tool: &descriptor,
                        args: &arguments,
                        principal: &principal_owned,
                        client: &client,
                        now,
                    })
                }),
            )
            .await
            .ok_or(GovernorError::DecisionUnavailable)
    }

    /// Asks humans to approve a call of `call.tool` whatever the policy says (the agent asked for
    /// it, e.g. through the `request_approval` tool), under `approval_policy` or the default
    /// approval policy. Standing grants do not apply: the agent wants a person to look.
    pub async fn request_approval(
        &self,
        principal: &Principal,
        call: ToolCall,
        approval_policy: Option<&str>,
    ) -> Result<Outcome, GovernorError> {
        let call_id = Uuid::new_v4();
        let now = self.clock.now();
        let org = principal.organization_id.as_str();
        let tool = self.visible_tool(principal, &call.tool)?;
        let arguments = checked_arguments(&tool, &call.arguments)?;
        let governance = self.governance_or_fail(principal)?;
        if approval_policy.is_some_and(|name| governance.approval_policy(Some(name)).is_none()) {
            return Err(GovernorError::Forbidden(format!(
                "approval policy `{}` is not defined",
                approval_policy.unwrap_or_default()
            )));
        }
        self.record(
            org,
            now,
            AuditEventKind::CallReceived {
                call_id,
                principal_id: principal.id.clone(),
                tool: tool.descriptor.exposed_name.clone(),
                arguments: arguments.clone(),
                kind: tool.descriptor.kind,
            },
        )
        .await?;
        let held = Held {
            tool: &tool,
            arguments,
            call: &call,
            call_id,
            rule: None,
        };
        self.hold_for_approval(principal, &governance, approval_policy, held, false)
            .await
    }

    /// Opens an approval request for a held call and waits for it (blocking mode) or returns it
    /// pending (async mode); a standing grant, when `grants_apply`, runs the call at once.
    async fn hold_for_approval(
        &self,
        principal: &Principal,
        governance: &Governance,
        approval_policy: Option<&str>,
        held: Held<'_>,
        grants_apply: bool,
    ) -> Result<Outcome, GovernorError> {
        let Held {
            tool,
            arguments,
            call,
            call_id,
            rule,
        } = held;
        let now = self.clock.now();
        let org = principal.organization_id.as_str();
        let Some(mut policy) = governance.approval_policy(approval_policy).cloned() else {
            // Unreachable for compiled governance (names are checked), but fail closed.
            return Ok(Outcome::Denied {
                call_id,
                message: "denied: the approval policy this call needs is not defined".to_owned(),
                rule,
            });
        };
        if let Some(timeout) = call.approval_timeout {
            policy.timeout = policy.timeout.min(timeout);
        }
        if grants_apply
            && let Some(grant) = self
                .grants
                .find_grant(org, &principal.id, &tool.descriptor.exposed_name, now)
                .await?
        {
            self.record(
                org,
                now,
                AuditEventKind::GrantUsed {
                    call_id,
                    grant_id: grant.id,
                },
            )
            .await?;
            return self.run(tool, arguments, principal, call, call_id).await;
        }
        let mut request = ApprovalRequest::open(
            NewApprovalRequest {
                call_id,
                requester: principal.clone(),
                tool: RequestedTool {
                    exposed_name: tool.descriptor.exposed_name.clone(),
                    server: tool.descriptor.server.clone(),
                    name: tool.descriptor.name.clone(),
                    input_schema: tool.descriptor.input_schema.clone(),
                },
                arguments,
                context: call.context.clone(),
                policy: policy.clone(),
                matched_rule: rule,
            },
            now,
        );
        request.answers.clone_from(&call.answers);
        let token = DecisionToken::generate();
        request.token_hash = Some(token.hash.clone());
        request.token_expires_at = Some(request.expires_at);
        self.open_request(&request, &token).await?;
        match policy.mode {
            _ if call.no_wait => Ok(Outcome::of_request(&request, self.config.poll_after)),
            ApprovalMode::Async => Ok(Outcome::of_request(&request, self.config.poll_after)),
            ApprovalMode::Blocking => {
                if let Some(progress) = &call.progress {
                    progress.held(&request);
                }
                let until = crate::clock::later(now, self.config.blocking_timeout);
                self.wait(org, request.id, until, call.progress.as_deref())
                    .await
            }
        }
    }

    fn visible_tool(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<RegisteredTool, GovernorError> {
        self.registry
            .get(&principal.organization_id, name)
            .filter(|tool| tool.is_visible_to(principal))
            .ok_or_else(|| GovernorError::UnknownTool(name.to_owned()))
    }

    fn governance_or_fail(&self, principal: &Principal) -> Result<Arc<Governance>, GovernorError> {
        self.governance(&principal.organization_id)
            .ok_or_else(|| GovernorError::Forbidden("no policy is in force".to_owned()))
    }

    async fn record(
        &self,
        org: &str,
        at: DateTime<Utc>,
        kind: AuditEventKind,
    ) -> Result<(), GovernorError> {
        self.audit
            .append(vec![AuditEntry::new(org, at, kind)])
            .await?;
        Ok(())
    }

    async fn open_request(
        &self,
        request: &ApprovalRequest,
        token: &DecisionToken,
    ) -> Result<(), GovernorError> {
        let entry = AuditEntry::new(
            &request.organization_id,
            request.created_at,
            AuditEventKind::ApprovalRequested {
                request_id: request.id,
                call_id: request.call_id,
                approval_policy: request.policy.name.clone(),
            },
        );
        self.approvals.insert_request(request, vec![entry]).await?;
        self.deliver(Notification::Created {
            request,
            token: &token.secret,
        })
        .await;
        Ok(())
    }

    /// Delivers a notification; a failing channel is logged, never fatal.
    async fn deliver(&self, notification: Notification<'_>) {
        if let Err(error) = self.notifier.notify(notification).await {
            tracing::warn!(%error, "approval notification failed");
        }
    }

    /// Runs a call that needs no (more) approval and records the result.
    async fn run(
        &self,
        tool: &RegisteredTool,
        arguments: Value,
        principal: &Principal,
        call: &ToolCall,
        call_id: Uuid,
    ) -> Result<Outcome, GovernorError> {
        let context = ExecutionContext {
            call_id,
            approval_request_id: None,
            principal_id: principal.id.clone(),
            organization_id: principal.organization_id.clone(),
            observer: call.observer.clone(),
            answers: call.answers.clone(),
        };
        let result = tool
            .executor
            .execute(&tool.descriptor, arguments, &context)
            .await;
        let org = principal.organization_id.as_str();
        let now = self.clock.now();
        match result {
            Ok(output) => {
                let kind = AuditEventKind::Executed {
                    call_id,
                    request_id: None,
                    is_error: output.is_error,
                };
                self.record_outcome(org, now, kind).await;
                Ok(Outcome::Executed {
                    call_id,
                    request_id: None,
                    output,
                })
            }
            Err(error) => {
                let kind = AuditEventKind::ExecutionFailed {
                    call_id,
                    request_id: None,
                    error: error.to_string(),
                };
                self.record_outcome(org, now, kind).await;
                Ok(Outcome::Failed {
                    call_id,
                    request_id: None,
                    error: error.to_string(),
                })
            }
        }
    }

    /// Records how a call that ran ended. The call was made whether or not this succeeds, so a
    /// failure does not turn the outcome into an error (which would tell the agent it was not
    /// made): it is logged, and the log keeps the call's decision record.
    async fn record_outcome(&self, org: &str, at: DateTime<Utc>, kind: AuditEventKind) {
        if let Err(error) = self.record(org, at, kind).await {
            tracing::error!(%error, organization = org, "a call ran but its outcome could not be audited");
        }
    }
}

/// A call on its way to approval.
struct Held<'a> {
    tool: &'a RegisteredTool,
    arguments: Value,
    call: &'a ToolCall,
    call_id: Uuid,
    rule: Option<String>,
}

/// The call's arguments as an object that matches the tool's input schema.
fn checked_arguments(tool: &RegisteredTool, arguments: &Value) -> Result<Value, GovernorError> {
    let arguments = normalize_arguments(arguments)?;
    tool.check_arguments(&arguments).map_err(|errors| {
        GovernorError::InvalidArguments(format!(
            "the arguments do not match the tool's input schema: {}",
            errors.join("; ")
        ))
    })?;
    Ok(arguments)
}

fn normalize_arguments(arguments: &Value) -> Result<Value, GovernorError> {
    match arguments {
        Value::Null => Ok(Value::Object(serde_json::Map::new())),
        Value::Object(_) => Ok(arguments.clone()),
        other => Err(GovernorError::InvalidArguments(format!(
            "arguments must be a JSON object, not {}",
            match other {
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                _ => "an array",
            }
        ))),
    }
}

fn decision_event(call_id: Uuid, decision: &Decision) -> AuditEventKind {
    AuditEventKind::Decision {
        call_id,
        action: decision.effect.kind(),
        rule: match &decision.reason {
            Reason::Rule { rule } | Reason::RuleError { rule, .. } => Some(rule.id.clone()),
            Reason::Default | Reason::ShadowSet => None,
        },
        explanation: decision.explanation(),
        shadow_action: decision.shadow.as_ref().map(|s| s.effect.kind()),
        shadow_rule: decision
            .shadow
            .as_ref()
            .and_then(|s| s.rule.as_ref().map(|r| r.id.clone())),
    }
}

#[cfg(test)]
mod tests;
