//! Extractors and checks shared by the API modules.

use super::ApiError;
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use preloop_core::Principal;
use serde::de::DeserializeOwned;

/// A JSON body whose rejection is an [`ApiError`] (400 with the parser's message).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// Admits principals holding `role` (admins hold every right); `action` completes the sentence
/// "only ... can ...".
pub fn require_role(principal: &Principal, role: &str, action: &str) -> Result<(), ApiError> {
    if principal.has_role(role) || principal.has_role("admin") {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("only {role}s can {action}")))
    }
}

/// A path parameter whose rejection is an [`ApiError`] (400 naming the bad segment).
#[derive(Debug)]
pub struct Param<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Param<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// A query string whose rejection is an [`ApiError`].
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The address of the connecting client (the unspecified address when the server was not
/// started with connection information, as in tests that call the router directly).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(
                std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                |info| info.0.ip(),
            );
        Ok(Self(address))
    }
}
