//! The MCP gateway, both edges. Inbound: the rmcp handler ([`server`]) and the fast path for
//! `tools/call` on established sessions ([`fastpath`]), the sessions they share ([`sessions`]),
//! the `Host` guard ([`hosts`]), what a call relays to its client while it runs ([`relay`],
//! [`elicitation`]) and the list-changed notifications ([`listeners`]). Between them and the
//! governor: the built-in tools ([`builtins`]) and where costly decisions run ([`decisions`]).
//! Outbound: the upstream servers ([`upstream`]).

pub mod builtins;
pub mod decisions;
pub mod elicitation;
pub mod fastpath;
pub mod hosts;
pub mod listeners;
pub mod relay;
pub mod server;
pub mod sessions;
pub mod upstream;
