//! The organization's governance document over REST: `/policy` (the whole document),
//! `/access-rules` (one rule at a time, ordering, and `test` to explain a hypothetical call) and
//! `/approval-policies`. Every change is compiled first (400 naming every broken rule), then
//! stored with an audit entry, then put in force for new calls.

use super::views::Items;
use super::views::policy::{
    ApprovalPolicyDoc, DocumentSummary, Explanation, GovernanceDoc, RuleDoc, RuleList,
};
use crate::http::ApiError;
use crate::http::extract::{Body, Param, require_role};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use preloop_core::Principal;
use preloop_core::policy::{GovernanceDocument, RuleSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show_document, replace_document))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(reorder_rules))
        .routes(routes!(test))
        .routes(routes!(show_rule, replace_rule, delete_rule))
        .routes(routes!(list_approval_policies, create_approval_policy))
        .routes(routes!(
            show_approval_policy,
            replace_approval_policy,
            delete_approval_policy
        ))
}

/// The organization's document, for its admins (rules say who is watched and how: not for
/// agents or members to read).
async fn load(state: &AppState, principal: &Principal) -> Result<GovernanceDocument, ApiError> {
    require_role(principal, "admin", "read the policy")?;
    Ok(state.policies.document(&principal.organization_id).await?)
}

/// A change of the caller's organization's document (admins only): `change` edits it, the
/// policy service compiles, stores and applies it.
async fn modify<T>(
    state: &AppState,
    principal: &Principal,
    change: impl FnOnce(&mut GovernanceDocument) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    require_role(principal, "admin", "change the policy")?;
    Ok(state.policies.modify(principal, change).await?)
}

#[utoipa::path(
    get,
    path = "/policy",
    tag = "policy",
    summary = "The whole governance document (rules and approval policies)",
    responses((status = 200, description = "Done", body = GovernanceDoc), (status = 401, description = "Missing or invalid credentials"))
)]
async fn show_document(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<GovernanceDoc>, ApiError> {
    Ok(Json(GovernanceDoc(load(&state, &principal).await?)))
}

#[utoipa::path(
    put,
    path = "/policy",
    tag = "policy",
    summary = "Replace the whole governance document (admins; 400 names every broken rule)",
    request_body = GovernanceDoc,
    responses((status = 200, description = "Done", body = DocumentSummary), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"))
)]
async fn replace_document(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(GovernanceDoc(document)): Body<GovernanceDoc>,
) -> Result<Json<DocumentSummary>, ApiError> {
    let summary = DocumentSummary::from(&document);
    modify(&state, &principal, |current| {
        *current = document;
        Ok(())
    })
    .await?;
    Ok(Json(summary))
}

fn position_of(document: &GovernanceDocument, id: &str) -> Result<usize, ApiError> {
    document
        .policy
        .rules
        .iter()
        .position(|r| r.id.as_deref() == Some(id))
        .ok_or_else(|| ApiError::NotFound(format!("no rule `{id}`")))
}

#[utoipa::path(
    get,
    path = "/access-rules",
    tag = "access-rules",
    summary = "The rules in order, and the default action",
    responses((status = 200, description = "Done", body = RuleList), (status = 401, description = "Missing or invalid credentials"))
)]
async fn list_rules(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<RuleList>, ApiError> {
    Ok(Json(load(&state, &principal).await?.policy.into()))
}

#[utoipa::path(
    get,
    path = "/access-rules/{id}",
    tag = "access-rules",
    summary = "One rule",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, description = "Done", body = RuleDoc), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show_rule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<String>,
) -> Result<Json<RuleDoc>, ApiError> {
    let mut document = load(&state, &principal).await?;
    let position = position_of(&document, &id)?;
    Ok(Json(RuleDoc(document.policy.rules.swap_remove(position))))
}

/// A new rule and where it goes: a `Rule` with, beside its fields, `position`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct NewRule {
    /// 1-based position (default: last).
    #[serde(default)]
    position: Option<usize>,
    /// The rule (its fields sit beside `position`).
    #[serde(flatten)]
    #[schema(value_type = RuleDoc)]
    rule: RuleSpec,
}

/// Adds a rule (at `position`, else last); without an id it gets a fresh one.
#[utoipa::path(
    post,
    path = "/access-rules",
    tag = "access-rules",
    summary = "Add a rule (at `position`, else last; admins)",
    request_body = NewRule,
    responses((status = 201, description = "Created", body = RuleDoc), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 409, description = "Conflicts with the current state"))
)]
async fn create_rule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(NewRule { position, mut rule }): Body<NewRule>,
) -> Result<(StatusCode, Json<RuleDoc>), ApiError> {
    let created = modify(&state, &principal, |document| {
        let rules = &mut document.policy.rules;
        let id = rule
            .id
            .get_or_insert_with(|| format!("rule-{}", uuid::Uuid::new_v4().simple()))
            .clone();
        if rules.iter().any(|r| r.id.as_deref() == Some(id.as_str())) {
            return Err(ApiError::Conflict(format!("a rule `{id}` exists")));
        }
        let index = match position {
            None => rules.len(),
            Some(p) if (1..=rules.len() + 1).contains(&p) => p - 1,
            Some(p) => {
                return Err(ApiError::BadRequest(format!(
                    "position {p} is outside 1..={}",
                    rules.len() + 1
                )));
            }
        };
        rules.insert(index, rule.clone());
        Ok(rule)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(RuleDoc(created))))
}

/// Replaces a rule in place; its id may not change.
#[utoipa::path(
    put,
    path = "/access-rules/{id}",
    tag = "access-rules",
    summary = "Replace a rule in place (admins)",
    params(("id" = String, Path, description = "Rule id")),
    request_body = RuleDoc,
    responses((status = 200, description = "Done", body = RuleDoc), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn replace_rule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<String>,
    Body(RuleDoc(mut rule)): Body<RuleDoc>,
) -> Result<Json<RuleDoc>, ApiError> {
    if rule.id.as_deref().is_some_and(|given| given != id) {
        return Err(ApiError::BadRequest(
            "a rule's id cannot change; delete it and create another".to_owned(),
        ));
    }
    rule.id = Some(id.clone());
    let replaced = modify(&state, &principal, |document| {
        let position = position_of(document, &id)?;
        document.policy.rules[position] = rule.clone();
        Ok(rule)
    })
    .await?;
    Ok(Json(RuleDoc(replaced)))
}

#[utoipa::path(
    delete,
    path = "/access-rules/{id}",
    tag = "access-rules",
    summary = "Delete a rule (admins)",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 204, description = "Done, nothing to return"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn delete_rule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(id): Param<String>,
) -> Result<StatusCode, ApiError> {
    modify(&state, &principal, |document| {
        let position = position_of(document, &id)?;
        document.policy.rules.remove(position);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The rules' order (asked for, and answered once in force).
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Order {
    /// Every rule id, in the new order.
    ids: Vec<String>,
}

/// Puts the rules in the given order; `ids` must name every rule exactly once.
#[utoipa::path(
    put,
    path = "/access-rules/order",
    tag = "access-rules",
    summary = "Reorder the rules: `ids` names every rule once (admins)",
    request_body = Order,
    responses((status = 200, description = "Done", body = Order), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"))
)]
async fn reorder_rules(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(Order { ids }): Body<Order>,
) -> Result<Json<Order>, ApiError> {
    modify(&state, &principal, |document| {
        let mut remaining = std::mem::take(&mut document.policy.rules);
        for id in &ids {
            let position = remaining
                .iter()
                .position(|r| r.id.as_deref() == Some(id.as_str()))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("`{id}` is not a rule, or is listed twice"))
                })?;
            document.policy.rules.push(remaining.remove(position));
        }
        if let Some(missing) = remaining.first() {
            return Err(ApiError::BadRequest(format!(
                "the order must list every rule; `{}` is missing",
                missing.id.as_deref().unwrap_or_default()
            )));
        }
        Ok(())
    })
    .await?;
    Ok(Json(Order { ids }))
}

fn approval_policy_position(document: &GovernanceDocument, name: &str) -> Result<usize, ApiError> {
    document
        .approval_policies
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no approval policy `{name}`")))
}

#[utoipa::path(
    get,
    path = "/approval-policies",
    tag = "approval-policies",
    summary = "The approval policies",
    responses((status = 200, description = "Done", body = Items<ApprovalPolicyDoc>), (status = 401, description = "Missing or invalid credentials"))
)]
async fn list_approval_policies(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Items<ApprovalPolicyDoc>>, ApiError> {
    let document = load(&state, &principal).await?;
    Ok(Json(
        document
            .approval_policies
            .into_iter()
            .map(ApprovalPolicyDoc)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/approval-policies/{name}",
    tag = "approval-policies",
    summary = "One approval policy",
    params(("name" = String, Path, description = "Approval policy name")),
    responses((status = 200, description = "Done", body = ApprovalPolicyDoc), (status = 404, description = "Not found in the caller's organization"))
)]
async fn show_approval_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(name): Param<String>,
) -> Result<Json<ApprovalPolicyDoc>, ApiError> {
    let mut document = load(&state, &principal).await?;
    let position = approval_policy_position(&document, &name)?;
    Ok(Json(ApprovalPolicyDoc(
        document.approval_policies.swap_remove(position),
    )))
}

#[utoipa::path(
    post,
    path = "/approval-policies",
    tag = "approval-policies",
    summary = "Add an approval policy (admins)",
    request_body = ApprovalPolicyDoc,
    responses((status = 201, description = "Created", body = ApprovalPolicyDoc), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 409, description = "Conflicts with the current state"))
)]
async fn create_approval_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(ApprovalPolicyDoc(policy)): Body<ApprovalPolicyDoc>,
) -> Result<(StatusCode, Json<ApprovalPolicyDoc>), ApiError> {
    let created = modify(&state, &principal, |document| {
        if document
            .approval_policies
            .iter()
            .any(|p| p.name == policy.name)
        {
            return Err(ApiError::Conflict(format!(
                "an approval policy `{}` exists",
                policy.name
            )));
        }
        document.approval_policies.push(policy.clone());
        Ok(policy)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(ApprovalPolicyDoc(created))))
}

#[utoipa::path(
    put,
    path = "/approval-policies/{name}",
    tag = "approval-policies",
    summary = "Replace an approval policy (admins)",
    params(("name" = String, Path, description = "Approval policy name")),
    request_body = ApprovalPolicyDoc,
    responses((status = 200, description = "Done", body = ApprovalPolicyDoc), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn replace_approval_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(name): Param<String>,
    Body(ApprovalPolicyDoc(policy)): Body<ApprovalPolicyDoc>,
) -> Result<Json<ApprovalPolicyDoc>, ApiError> {
    if policy.name != name {
        return Err(ApiError::BadRequest(
            "an approval policy's name cannot change".to_owned(),
        ));
    }
    let replaced = modify(&state, &principal, |document| {
        let position = approval_policy_position(document, &name)?;
        document.approval_policies[position] = policy.clone();
        Ok(policy)
    })
    .await?;
    Ok(Json(ApprovalPolicyDoc(replaced)))
}

/// Deletes an approval policy; refused (400, naming the rules) while rules still use it.
#[utoipa::path(
    delete,
    path = "/approval-policies/{name}",
    tag = "approval-policies",
    summary = "Delete an approval policy no rule uses (admins)",
    params(("name" = String, Path, description = "Approval policy name")),
    responses((status = 204, description = "Done, nothing to return"), (status = 400, description = "Malformed request"), (status = 403, description = "Not allowed for this principal"), (status = 404, description = "Not found in the caller's organization"))
)]
async fn delete_approval_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Param(name): Param<String>,
) -> Result<StatusCode, ApiError> {
    modify(&state, &principal, |document| {
        let position = approval_policy_position(document, &name)?;
        document.approval_policies.remove(position);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A hypothetical call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TestBody {
    /// Exposed tool name.
    tool: String,
    /// The call's arguments.
    #[serde(default)]
    #[schema(value_type = Object)]
    arguments: Value,
    /// Roles of the hypothetical caller (default: the caller's own).
    roles: Option<Vec<String>>,
    /// E-mail of the hypothetical caller.
    email: Option<String>,
}

/// Explains the decision for a hypothetical call, made by the caller with the roles and
/// e-mail the body gives, if it does; nothing runs and nothing is recorded.
#[utoipa::path(
    post,
    path = "/access-rules/test",
    tag = "access-rules",
    summary = "Explain the decision for a hypothetical call; nothing runs",
    request_body = TestBody,
    responses((status = 200, description = "Done", body = Explanation), (status = 400, description = "Malformed request"))
)]
async fn test(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<TestBody>,
) -> Result<Json<Explanation>, ApiError> {
    require_role(&principal, "admin", "test the policy")?;
    let mut caller = principal;
    if let Some(roles) = body.roles {
        caller.roles = roles;
    }
    if body.email.is_some() {
        caller.email = body.email;
    }
    let decision = state
        .policies
        .explain(caller, body.tool, body.arguments)
        .await?;
    Ok(Json(Explanation::from(&decision)))
}
