//! `/api/v1/access-rules`: the organization's governance document (rules and approval policies),
//! read, replaced (validated, stored, applied at once) and tested.

use super::ApiError;
use crate::http::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use axum_extra::extract::WithRejection;
use chrono::Utc;
use preloop_core::audit::{AuditEntry, AuditEventKind};
use preloop_core::governor::ToolCall;
use preloop_core::policy::{EvaluationInput, Governance, GovernanceDocument};
use preloop_core::registry::{ToolDescriptor, ToolSource};
use preloop_core::{ClientInfo, Principal};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/access-rules", get(show).put(replace))
        .route("/access-rules/test", post(test))
}

fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.has_role("admin") {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only admins can change the policy".to_owned(),
        ))
    }
}

async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let document = state
        .policies
        .load_policy(&principal.organization_id)
        .await?
        .unwrap_or_default();
    Ok(Json(serde_json::to_value(document).unwrap_or(Value::Null)))
}

/// Replaces the document: compiled first (400 naming every broken rule), then stored with an
/// audit entry, then put in force for new calls.
async fn replace(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WithRejection(Json(document), _): WithRejection<Json<GovernanceDocument>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    Governance::compile(&document).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let org = principal.organization_id.as_str();
    let change = AuditEntry::new(
        org,
        Utc::now(),
        AuditEventKind::PolicyChanged {
            changed_by: principal
                .email
                .clone()
                .unwrap_or_else(|| principal.id.clone()),
            rules: document.policy.rules.len(),
        },
    );
    state
        .policies
        .save_policy(org, &document, vec![change])
        .await?;
    state.governor.set_policy(org, &document)?;
    Ok(Json(
        json!({"rules": document.policy.rules.len(), "approval_policies": document.approval_policies.len()}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    /// Exposed tool name.
    tool: String,
    #[serde(default)]
    arguments: Value,
    /// Roles of the hypothetical caller (default: the caller's own).
    roles: Option<Vec<String>>,
    /// E-mail of the hypothetical caller.
    email: Option<String>,
}

/// Explains the decision for a hypothetical call; nothing runs and nothing is recorded.
async fn test(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WithRejection(Json(body), _): WithRejection<Json<TestBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let mut caller = principal.clone();
    if let Some(roles) = body.roles {
        caller.roles = roles;
    }
    if body.email.is_some() {
        caller.email = body.email;
    }
    let call = ToolCall::new(body.tool.clone(), body.arguments.clone());
    let decision = match state.governor.explain(&caller, &call) {
        Ok(decision) => decision,
        // A tool that is not registered (yet): evaluate it by name.
        Err(preloop_core::governor::GovernorError::UnknownTool(_)) => {
            let governance = state
                .governor
                .governance(&principal.organization_id)
                .ok_or(ApiError::Unavailable)?;
            let (server, name) = body
                .tool
                .split_once("__")
                .unwrap_or(("preloop", body.tool.as_str()));
            let tool = ToolDescriptor::new(server, name, ToolSource::Upstream)
                .with_exposed_name(body.tool.as_str());
            let arguments = if body.arguments.is_null() {
                json!({})
            } else {
                body.arguments
            };
            governance.policy().evaluate(&EvaluationInput {
                tool: &tool,
                args: &arguments,
                principal: &caller,
                client: &ClientInfo::named("policy-test"),
                now: Utc::now(),
            })
        }
        Err(other) => return Err(other.into()),
    };
    Ok(Json(json!({
        "action": decision.effect.kind(),
        "rule": decision.rule().map(|r| r.id.clone()),
        "explanation": decision.explanation(),
    })))
}
