//! The public decision page behind e-mailed links: `GET /approval/{id}?token=` shows the request
//! (the token is the credential: a personal link, whose votes are its approver's under the
//! policy's rules — quorum, self-approval — or the request's own link, one vote for whoever
//! holds it) and, while it is pending, a form;
//! only the form's `POST` votes, so mail scanners and link previews that follow the link cannot.
//! Argument values under secret-looking keys are hidden, as in every channel (the link travels
//! by e-mail). The page sends no referrer (the token is in its URL), cannot be framed, and is
//! never cached.

use crate::channels::Redactor;
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use preloop_core::Principal;
use preloop_core::approval::{ApprovalRequest, ApprovalState, VoteCast, VoteDecision};
use preloop_core::governor::GovernorError;
use preloop_core::store::AccountStore;
use serde::Deserialize;
use uuid::Uuid;

/// The page's routes (public: the token is the credential).
pub fn routes() -> Router<AppState> {
    Router::new().route("/approval/{id}", get(show).post(decide))
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    #[serde(default)]
    token: String,
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    decision: VoteDecision,
    #[serde(default)]
    comment: String,
}

/// Who a link speaks for.
enum Credential {
    /// A personal link (e-mailed to one approver): votes are that user's, under the policy's rules.
    Approver(Principal),
    /// The request's own link (sent to systems such as a webhook receiver): one vote, the link's.
    Link,
}

impl Credential {
    /// Whether the page shows the request's details: to an approver always (the console would
    /// too); through the request's own link only while it waits for a decision.
    fn sees(&self, request: &ApprovalRequest) -> bool {
        matches!(self, Self::Approver(_)) || request.state == ApprovalState::Pending
    }
}

/// The credential `token` is for request `id`: a valid personal link names an enabled user;
/// anything else is tried as the request's own link.
async fn credential(state: &AppState, id: Uuid, token: &str) -> Result<Credential, Response> {
    let Some(claims) = state.tokens.verify_approver(token, id) else {
        return Ok(Credential::Link);
    };
    match state.store.get_user(&claims.org, &claims.sub).await {
        Ok(Some(user)) if !user.disabled => Ok(Credential::Approver(user.principal())),
        Ok(_) => Err(not_found()),
        Err(error) => Err(unavailable(&error.into())),
    }
}

/// The request as the credential may see it.
async fn read(
    state: &AppState,
    id: Uuid,
    token: &str,
    credential: &Credential,
) -> Result<ApprovalRequest, GovernorError> {
    match credential {
        Credential::Approver(principal) => state.governor.request(principal, id).await,
        Credential::Link => state.governor.request_by_link(id, token).await,
    }
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LinkQuery>,
) -> Response {
    let Ok(id) = id.parse() else {
        return not_found();
    };
    let credential = match credential(&state, id, &query.token).await {
        Ok(credential) => credential,
        Err(response) => return response,
    };
    match read(&state, id, &query.token, &credential).await {
        Ok(request) => page(
            StatusCode::OK,
            &request,
            state.channels.redactor(),
            &query.token,
            credential.sees(&request),
            None,
        ),
        Err(GovernorError::RequestNotFound) => not_found(),
        Err(error) => unavailable(&error),
    }
}

async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LinkQuery>,
    body: Bytes,
) -> Response {
    let Ok(id) = id.parse() else {
        return not_found();
    };
    let Ok(form) = serde_urlencoded::from_bytes::<DecisionForm>(&body) else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "That did not work",
            "The form was incomplete: choose Approve or Decline.",
        );
    };
    let credential = match credential(&state, id, &query.token).await {
        Ok(credential) => credential,
        Err(response) => return response,
    };
    let comment = Some(form.comment.trim().to_owned()).filter(|c| !c.is_empty());
    let redactor = state.channels.redactor();
    let decided = match &credential {
        Credential::Approver(approver) => {
            let vote = VoteCast {
                comment,
                ..VoteCast::new(approver.clone(), form.decision)
            };
            state.approvals.vote(approver, id, vote).await
        }
        Credential::Link => {
            state
                .approvals
                .vote_by_link(id, &query.token, form.decision, comment)
                .await
        }
    };
    match decided {
        Ok(request) => page(
            StatusCode::OK,
            &request,
            redactor,
            &query.token,
            credential.sees(&request),
            Some("Your decision is recorded."),
        ),
        Err(GovernorError::RequestNotFound) => not_found(),
        Err(error @ (GovernorError::Transition(_) | GovernorError::Forbidden(_))) => {
            match read(&state, id, &query.token, &credential).await {
                Ok(request) => page(
                    StatusCode::CONFLICT,
                    &request,
                    redactor,
                    &query.token,
                    credential.sees(&request),
                    Some(&format!("Not recorded: {error}.")),
                ),
                Err(_) => not_found(),
            }
        }
        Err(error) => unavailable(&error),
    }
}

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · Preloop" }
                style { (STYLE) }
            }
            body { main { (body) } }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f6f8fa;color:#1f2328}\
main{max-width:46rem;margin:0 auto;padding:1rem}\
h1{font-size:1.3rem}table{border-collapse:collapse;width:100%}\
th{text-align:left;padding:.3rem .8rem .3rem 0;vertical-align:top;white-space:nowrap}\
td{padding:.3rem 0;word-break:break-word;white-space:pre-wrap}\
pre{background:#fff;border:1px solid #d0d7de;padding:.8rem;overflow-x:auto}\
textarea{width:100%;box-sizing:border-box;min-height:4rem;font:inherit}\
.buttons{display:flex;gap:.8rem;margin-top:.8rem}\
button{flex:1;font-size:1.05rem;padding:.8rem;border:0;border-radius:6px;color:#fff;cursor:pointer}\
.approve{background:#1a7f37}.decline{background:#cf222e}\
.notice{background:#ddf4ff;border:1px solid #54aeff;padding:.6rem;border-radius:6px}\
.state{font-weight:600}";

fn page(
    status: StatusCode,
    request: &ApprovalRequest,
    redactor: &Redactor,
    token: &str,
    details: bool,
    notice: Option<&str>,
) -> Response {
    let arguments = serde_json::to_string_pretty(&redactor.redact(request.effective_arguments()))
        .unwrap_or_default();
    let body = html! {
        h1 { "Approval request: " code { (request.tool.exposed_name) } }
        @if let Some(notice) = notice {
            p.notice role="status" { (notice) }
        }
        @if !details {
            p.state id="state" { (crate::channels::outcome_text(request)) }
        } @else {
        table {
            tr { th { "State" } td.state id="state" { (crate::channels::outcome_text(request)) } }
            tr { th { "Server" } td { (request.tool.server) } }
            tr { th { "Requested by" } td { (request.requester.display_name()) } }
            @if let Some(rule) = &request.matched_rule { tr { th { "Rule" } td { (rule) } } }
            @if let Some(operation) = &request.context.operation { tr { th { "Operation" } td { (operation) } } }
            @if let Some(context) = &request.context.context { tr { th { "Context" } td { (context) } } }
            @if let Some(reasoning) = &request.context.reasoning { tr { th { "Reasoning" } td { (reasoning) } } }
            tr { th { "Expires" } td { (request.expires_at.format("%Y-%m-%d %H:%M:%S UTC")) } }
        }
        h2 { "Arguments" }
        pre id="arguments" { (arguments) }
        @if request.state == ApprovalState::Pending {
            form method="post" action={ "/approval/" (request.id) "?token=" (token) } {
                label for="comment" { "Comment" @if request.policy.require_reason { " (required)" } }
                textarea id="comment" name="comment" required[request.policy.require_reason] {}
                div.buttons {
                    button.approve type="submit" name="decision" value="approve" { "Approve" }
                    button.decline type="submit" name="decision" value="decline" { "Decline" }
                }
            }
        }
        }
    };
    respond(status, layout("Approval request", body))
}

fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    respond(status, layout(title, html! { h1 { (title) } p { (text) } }))
}

fn not_found() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        "This link does not work",
        "It may have expired, or been cut or mistyped. Ask for the request to be sent again, or sign in to Preloop.",
    )
}

fn unavailable(error: &GovernorError) -> Response {
    tracing::error!(%error, "the decision page cannot read the request");
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "Preloop cannot reach its database right now.",
    )
}

fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
