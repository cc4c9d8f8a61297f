//! API errors: each maps to a status and a JSON body; internals are logged, not returned.

use crate::app::trackers::webhooks::WebhookRefusal;
use crate::app::{AccountError, PolicyChangeError, ServerError, TrackerChangeError};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use preloop_core::approval::TransitionError;
use preloop_core::governor::GovernorError;
use preloop_core::store::StoreError;
use preloop_core::tracker::TrackerError;
use preloop_trackers::webhook::WebhookError;
use serde_json::json;

/// An error answered to an API caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// Not authenticated (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there for this caller (404).
    #[error("{0}")]
    NotFound(String),
    /// The state does not allow it (409).
    #[error("{0}")]
    Conflict(String),
    /// The arguments or policy do not validate (422).
    #[error("{0}")]
    Unprocessable(String),
    /// Too many attempts; retry after this long (429 with `Retry-After`).
    #[error("too many attempts; retry in {} s", .0.as_secs() + 1)]
    TooManyRequests(std::time::Duration),
    /// An upstream server failed to answer (502).
    #[error("{0}")]
    BadGateway(String),
    /// The server cannot serve it now (503); details are logged.
    #[error("service unavailable")]
    Unavailable,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad_gateway"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

/// The REST API's error body: `{"error": {"code", "message"}}`.
pub fn body(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": message}})
}

/// Tells the caller to retry after `wait` (`Retry-After`, whole seconds, rounded up).
pub fn retry_after(response: &mut Response, wait: std::time::Duration) {
    if let Ok(value) = axum::http::HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let mut response = (status, axum::Json(body(code, &self.to_string()))).into_response();
        if let Self::TooManyRequests(wait) = self {
            retry_after(&mut response, wait);
        }
        response
    }
}

impl ApiError {
    /// Maps a store error, naming what already exists: a duplicate becomes a 409 with
    /// `message`, anything else maps as usual.
    pub fn exists(message: impl Into<String>) -> impl FnOnce(StoreError) -> Self {
        move |error| match error {
            StoreError::AlreadyExists => Self::Conflict(message.into()),
            other => other.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound("not found".to_owned()),
            StoreError::AlreadyExists => Self::Conflict("already exists".to_owned()),
            StoreError::Invalid(message) => Self::Unprocessable(message),
            other => {
                tracing::error!(error = %other, "store failure");
                Self::Unavailable
            }
        }
    }
}

impl From<PolicyChangeError<ApiError>> for ApiError {
    fn from(error: PolicyChangeError<ApiError>) -> Self {
        match error {
            PolicyChangeError::Edit(error) => error,
            PolicyChangeError::Invalid(error) => Self::BadRequest(error.to_string()),
            PolicyChangeError::Store(error) => error.into(),
            PolicyChangeError::Unavailable => Self::Unavailable,
            conflict @ PolicyChangeError::Conflict => Self::Conflict(conflict.to_string()),
        }
    }
}

impl From<ServerError> for ApiError {
    fn from(error: ServerError) -> Self {
        match error {
            ServerError::NoServer { .. } | ServerError::NoConfiguration { .. } => {
                Self::NotFound(error.to_string())
            }
            invalid @ ServerError::Invalid { .. } => Self::Unprocessable(invalid.to_string()),
            ServerError::CredentialsNeeded
            | ServerError::Selector(_)
            | ServerError::UnknownApprovalPolicy { .. } => Self::Unprocessable(error.to_string()),
            ServerError::Refused { .. } => Self::Forbidden(error.to_string()),
            ServerError::TooMany { .. }
            | ServerError::Exists { .. }
            | ServerError::Disabled { .. } => Self::Conflict(error.to_string()),
            unreachable @ ServerError::Unreachable { .. } => {
                Self::BadGateway(unreachable.to_string())
            }
            ServerError::Store(error) => error.into(),
        }
    }
}

impl From<TrackerError> for ApiError {
    fn from(error: TrackerError) -> Self {
        match error {
            TrackerError::NotFound(_) => Self::NotFound(error.to_string()),
            TrackerError::Invalid(_) => Self::Unprocessable(error.to_string()),
            // The tracker refusing Preloop's credentials, limiting or failing is not the
            // caller's mistake: a gateway error with the tracker's words.
            _ => Self::BadGateway(error.to_string()),
        }
    }
}

impl From<TrackerChangeError> for ApiError {
    fn from(error: TrackerChangeError) -> Self {
        match error {
            TrackerChangeError::NoTracker { .. }
            | TrackerChangeError::NoProject { .. }
            | TrackerChangeError::NoIssue { .. } => Self::NotFound(error.to_string()),
            TrackerChangeError::Invalid(_) | TrackerChangeError::CredentialsNeeded => {
                Self::Unprocessable(error.to_string())
            }
            TrackerChangeError::Refused { .. } => Self::Forbidden(error.to_string()),
            TrackerChangeError::Exists { .. } | TrackerChangeError::TooMany => {
                Self::Conflict(error.to_string())
            }
            TrackerChangeError::Tracker(error) => error.into(),
            TrackerChangeError::Store(error) => error.into(),
        }
    }
}

impl From<WebhookRefusal> for ApiError {
    fn from(refusal: WebhookRefusal) -> Self {
        match refusal {
            WebhookRefusal::NoTracker(_) => Self::NotFound(refusal.to_string()),
            WebhookRefusal::Webhook(WebhookError::Malformed(_)) => {
                Self::BadRequest(refusal.to_string())
            }
            WebhookRefusal::Webhook(_) => Self::Unauthorized(refusal.to_string()),
            WebhookRefusal::Store(error) => error.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::AdminsOnly { .. }
            | AccountError::NotOwn
            | AccountError::NotInteractive
            | AccountError::WrongCurrentPassword
            | AccountError::NothingToGrant
            | AccountError::OperatorOnly { .. } => Self::Forbidden(error.to_string()),
            AccountError::NoUser { .. }
            | AccountError::NoKey { .. }
            | AccountError::NoOrganization { .. } => Self::NotFound(error.to_string()),
            AccountError::NotAnEmail { .. }
            | AccountError::UnknownRole { .. }
            | AccountError::ShortPassword
            | AccountError::Password(_)
            | AccountError::ScopeNotGrantable { .. }
            | AccountError::ExpiryPassed
            | AccountError::Unnamed
            | AccountError::OrganizationName => Self::Unprocessable(error.to_string()),
            AccountError::EmailTaken
            | AccountError::OwnAdminRole
            | AccountError::DisablingSelf
            | AccountError::OperatorOrganization => Self::Conflict(error.to_string()),
            AccountError::WrongCredentials => Self::Unauthorized(error.to_string()),
            AccountError::Throttled { wait } => Self::TooManyRequests(wait),
            AccountError::Governor(error) => error.into(),
            AccountError::Store(error) => error.into(),
        }
    }
}

impl From<GovernorError> for ApiError {
    fn from(error: GovernorError) -> Self {
        match error {
            GovernorError::RequestNotFound => Self::NotFound(error.to_string()),
            GovernorError::UnknownTool(_) => Self::NotFound(error.to_string()),
            GovernorError::InvalidArguments(message) => Self::BadRequest(message),
            GovernorError::Forbidden(message) => Self::Forbidden(message),
            GovernorError::Governance(error) => Self::BadRequest(error.to_string()),
            GovernorError::Contended => Self::Conflict(error.to_string()),
            GovernorError::Transition(error) => error.into(),
            GovernorError::Store(error) => error.into(),
            other => {
                tracing::error!(error = %other, "governor failure");
                Self::Unavailable
            }
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(error: TransitionError) -> Self {
        match error {
            TransitionError::NotAnApprover { .. } | TransitionError::SelfApproval => {
                Self::Forbidden(error.to_string())
            }
            TransitionError::NotPending { .. }
            | TransitionError::Illegal { .. }
            | TransitionError::ConflictingVote { .. } => Self::Conflict(error.to_string()),
            other => Self::Unprocessable(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}
