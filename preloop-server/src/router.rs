//! The HTTP surface: layers and routes.
//!
//! Layer order, outermost first: request counting, the body size limit, then on `/mcp` the
//! `Host` check against DNS rebinding ([`crate::gateway::hosts`]), authentication, session ownership
//! ([`crate::gateway::sessions::bind`]), the fast path for `tools/call` on established sessions
//! ([`crate::gateway::fastpath`]), then the rmcp streamable HTTP service, run with the request's
//! principal in scope ([`crate::gateway::server::scope_principal`]: rmcp checks SEP-2243
//! `Mcp-Param-*` headers against a tool it asks the handler for without the request). `/health` and `/ready` need no
//! authentication; `/metrics` needs an operator's.

use crate::auth::AuthError;
use crate::gateway::calls::Calls;
use crate::gateway::continuations::Continuations;
use crate::gateway::fastpath::FastPath;
use crate::gateway::offered::Offered;
use crate::gateway::server::PreloopMcp;
use crate::gateway::sessions::Sessions;
use crate::gateway::sessions::listeners::ToolListeners;
use crate::gateway::sessions::owners::SessionOwners;
use crate::gateway::sessions::stored::StoredSessions;
use crate::http::bounds;
use crate::state::AppState;
use crate::wire::json_rpc_error;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use preloop_core::store::{AccountStore, ApprovalStore};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::OpenApiRouter;

/// The application router. `allowed_hosts` guards the MCP endpoint against DNS rebinding;
/// cancelling `shutdown` ends open MCP streams.
pub fn app(state: AppState, allowed_hosts: Vec<String>, shutdown: CancellationToken) -> Router {
    let governor = state.governor.clone();
    let sessions = Sessions::default();
    let continuations = Continuations::new(state.tokens.state_key());
    let calls = Calls {
        governor: governor.clone(),
        continuations: continuations.clone(),
        upstreams: state.upstreams.clone(),
        parked: crate::gateway::parked::Parked::default(),
    };
    let fast_path = FastPath {
        calls: calls.clone(),
        sessions: sessions.clone(),
        questions: crate::gateway::questions::Questions::default(),
        resumable: crate::gateway::streams::Resumable::default(),
        cancels: crate::gateway::cancels::Cancels::default(),
        shutdown: shutdown.clone(),
    };
    let hosts = crate::gateway::hosts::AllowedHosts::new(&allowed_hosts);
    let mut config = StreamableHttpServerConfig::default();
    config.allowed_hosts = allowed_hosts;
    config.cancellation_token = shutdown.clone();
    config.max_request_body_bytes = bounds::BODY;
    // 2026-07-28 requests whose first message is their answer get it as one JSON body, as
    // upstreams answer them; a request that streams notifications first gets SSE.
    config.json_response = true;
    config.session_store = Some(Arc::new(StoredSessions {
        store: state.store.clone(),
        sessions: sessions.clone(),
    }));

    let listeners = ToolListeners::new(sessions.clone());
    listeners.follow(governor.registry().clone(), shutdown.clone());
    listeners.follow_upstreams(state.upstreams.announcements(), shutdown.clone());
    let handler_sessions = sessions.clone();
    let offered = Offered::new(
        governor.clone(),
        state.upstreams.clone(),
        continuations.clone(),
    );
    let mcp = StreamableHttpService::new(
        move || {
            Ok(PreloopMcp::new(
                calls.clone(),
                offered.clone(),
                listeners.clone(),
                handler_sessions.clone(),
            ))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let authenticated_mcp = Router::new()
        .nest_service("/mcp/v1", mcp.clone())
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn(crate::gateway::server::scope_principal))
        .layer(middleware::from_fn_with_state(
            fast_path,
            crate::gateway::fastpath::serve,
        ))
        .layer(middleware::from_fn_with_state(
            SessionOwners::new(state.store.clone(), sessions),
            crate::gateway::sessions::owners::bind,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate_mcp,
        ))
        .layer(middleware::from_fn_with_state(
            hosts,
            crate::gateway::hosts::guard,
        ));
    let (authenticated_api, mut openapi) =
        OpenApiRouter::with_openapi(crate::api::ApiDoc::openapi())
            .nest("/api/v1", crate::api::routes())
            .merge(crate::api::hitl::routes())
            .split_for_parts();
    let (public_api, public_openapi) = OpenApiRouter::new()
        .nest("/api/v1", crate::api::public_routes())
        .split_for_parts();
    // Public operations need no credentials: an empty requirement overrides the global one.
    let mut public_openapi = public_openapi;
    for item in public_openapi.paths.paths.values_mut() {
        for operation in operations(item) {
            operation.security = Some(vec![SecurityRequirement::default()]);
        }
    }
    openapi.merge(public_openapi);
    let openapi = Arc::new(openapi);
    let authenticated_api =
        authenticated_api
            .route("/metrics", get(metrics))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                authenticate_api,
            ));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route(
            "/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi) }
            }),
        )
        .merge(authenticated_mcp)
        .merge(authenticated_api)
        .merge(public_api)
        .merge(crate::channels::routes(state.channel_callbacks()))
        .merge(crate::web::decision_page::routes())
        .merge(crate::web::console::routes())
        .merge(crate::web::ws::routes(crate::web::ws::Lifetime {
            heartbeat: state.websocket_heartbeat,
            shutdown,
        }))
        .layer(DefaultBodyLimit::max(bounds::BODY))
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

/// The operations of a path item, whichever methods it has.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The Prometheus metrics, for the operator: an admin of the default organization (the
/// metrics are the whole server's, every organization's together).
async fn metrics(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<preloop_core::Principal>,
) -> Response {
    let operator = crate::tenancy::is_operator(&principal.organization_id);
    if !operator || !principal.has_role("admin") {
        return crate::http::ApiError::Forbidden(
            "metrics are for the operator: an admin of the default organization".to_owned(),
        )
        .into_response();
    }
    match state.store.count_pending().await {
        Ok(count) => crate::metrics::pending_approvals(count),
        Err(error) => tracing::warn!(%error, "cannot count pending approvals for /metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}

/// Counts requests by route template (never the raw path, which would explode label cardinality)
/// and status.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(
            || mcp_or_other(request.uri().path()),
            |p| p.as_str().to_owned(),
        );
    let response = next.run(request).await;
    crate::metrics::http_request(&route, response.status().as_u16());
    response
}

/// Nested services have no matched route template; name the MCP ones, lump the rest.
fn mcp_or_other(path: &str) -> String {
    if path.starts_with("/mcp") {
        "/mcp".to_owned()
    } else {
        "other".to_owned()
    }
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready once the database answers and the operator's upstream servers have been scanned
/// (or [`crate::gateway::upstream::READY_WAIT`] has passed since start).
async fn ready(State(state): State<AppState>) -> Response {
    match state.store.count_users().await {
        Ok(_) => {
            let awaited = state.upstreams.awaited().await;
            if awaited.is_empty() {
                axum::Json(json!({"status": "ready"})).into_response()
            } else {
                // How many, not which: the servers' names are the operator's business.
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(
                        json!({"status": "starting", "waiting_for_upstreams": awaited.len()}),
                    ),
                )
                    .into_response()
            }
        }
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "unavailable", "reason": "database unreachable"})),
            )
                .into_response()
        }
    }
}

/// How an endpoint family shapes its error bodies.
#[derive(Debug, Clone, Copy)]
enum ErrorShape {
    /// A JSON-RPC error (the MCP endpoint).
    JsonRpc,
    /// The REST API's `{"error": {"code", "message"}}`.
    Api,
}

impl ErrorShape {
    fn body(self, code: &str, message: &str) -> serde_json::Value {
        match self {
            Self::JsonRpc => json_rpc_error(-32001, message),
            Self::Api => crate::http::error::body(code, message),
        }
    }
}

/// Authenticates a request and applies the principal's rate limit, putting the principal in
/// the request extensions; on failure answers in the endpoint's error shape (401 with
/// `WWW-Authenticate: Bearer`, 429 with `Retry-After`, 503 when the store is down).
async fn authenticate(
    state: &AppState,
    mut request: Request,
    next: Next,
    shape: ErrorShape,
) -> Response {
    let headers = request.headers();
    // Loopgate clients send `X-API-Key: <key>`; it means the same as a bearer key.
    let header_value = match headers.get(header::AUTHORIZATION) {
        Some(value) => value.to_str().ok().map(str::to_owned),
        None => headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|key| format!("Bearer {key}")),
    };
    let verified = match state.authenticator.verify(header_value.as_deref()).await {
        Ok(verified) => verified,
        Err(error) => {
            let (status, code) = match error {
                AuthError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                AuthError::Missing | AuthError::Invalid => {
                    (StatusCode::UNAUTHORIZED, "unauthorized")
                }
            };
            let mut response =
                (status, axum::Json(shape.body(code, &error.to_string()))).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    let principal = verified.principal;
    if let Err(wait) = state.limits.check(&principal) {
        let seconds = wait.as_secs() + 1;
        let message = format!("rate limit exceeded; retry in {seconds} s");
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(shape.body("rate_limited", &message)),
        )
            .into_response();
        crate::http::error::retry_after(&mut response, wait);
        return response;
    }
    request.extensions_mut().insert(principal);
    request.extensions_mut().insert(verified.credential);
    next.run(request).await
}

/// MCP requests: JSON-RPC-shaped errors.
async fn authenticate_mcp(State(state): State<AppState>, request: Request, next: Next) -> Response {
    authenticate(&state, request, next, ErrorShape::JsonRpc).await
}

/// REST requests: the API's error body.
async fn authenticate_api(State(state): State<AppState>, request: Request, next: Next) -> Response {
    authenticate(&state, request, next, ErrorShape::Api).await
}
