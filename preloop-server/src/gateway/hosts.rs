//! DNS-rebinding protection for the MCP endpoint: the `Host` a request names must be one of
//! `[server] allowed_hosts`. rmcp checks the same for what it serves; this layer checks every
//! MCP request before anything else runs, the fast path's included.

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// A host (lower case, without brackets) and, optionally, the one port it is allowed with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    host: String,
    port: Option<u16>,
}

impl HostPort {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        Some(match text.parse::<Authority>() {
            Ok(authority) => Self::new(authority.host(), authority.port_u16()),
            Err(_) => Self::new(text, None),
        })
    }

    fn new(host: &str, port: Option<u16>) -> Self {
        Self {
            host: host.trim_matches(['[', ']']).to_ascii_lowercase(),
            port,
        }
    }
}

/// The hosts the MCP endpoint answers to; none listed: any (not recommended).
#[derive(Debug, Clone)]
pub struct AllowedHosts(std::sync::Arc<[HostPort]>);

impl AllowedHosts {
    /// The hosts of `[server] allowed_hosts` (`name` or `name:port`).
    pub fn new(hosts: &[String]) -> Self {
        Self(hosts.iter().filter_map(|h| HostPort::parse(h)).collect())
    }

    fn allows(&self, host: &HostPort) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|allowed| {
                allowed.host == host.host && allowed.port.is_none_or(|p| host.port == Some(p))
            })
    }
}

/// Middleware: 403 for a request whose `Host` is not allowed, 400 for one without a usable
/// `Host` (HTTP/2 requests name it in the URI's authority).
pub async fn guard(State(hosts): State<AllowedHosts>, request: Request, next: Next) -> Response {
    let named = match request.headers().get(header::HOST) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.parse::<Authority>().ok()),
        None => request.uri().authority().cloned(),
    };
    let Some(authority) = named else {
        return refuse(StatusCode::BAD_REQUEST, "missing or malformed Host header");
    };
    if hosts.allows(&HostPort::new(authority.host(), authority.port_u16())) {
        next.run(request).await
    } else {
        tracing::warn!(host = %authority, "refused an MCP request naming a host that is not allowed (possible DNS rebinding)");
        refuse(StatusCode::FORBIDDEN, "Host header is not allowed")
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(crate::wire::json_rpc_error(-32001, message)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_name_and_optional_port() {
        let hosts = AllowedHosts::new(&[
            "localhost".into(),
            "127.0.0.1".into(),
            "[::1]".into(),
            "mcp.example.com:8443".into(),
        ]);
        for (host, port, allowed) in [
            ("localhost", Some(8000), true),
            ("LOCALHOST", None, true),
            ("127.0.0.1", Some(1), true),
            ("::1", Some(80), true),
            ("mcp.example.com", Some(8443), true),
            ("mcp.example.com", Some(443), false),
            ("attacker.example", Some(8000), false),
        ] {
            assert_eq!(
                hosts.allows(&HostPort::new(host, port)),
                allowed,
                "{host}:{port:?}"
            );
        }
        assert!(AllowedHosts::new(&[]).allows(&HostPort::new("anything", None)));
    }
}
