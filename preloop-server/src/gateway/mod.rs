//! The MCP gateway, both edges. Inbound: the rmcp handler ([`server`]) and the fast path for
//! `tools/call` on established sessions ([`fastpath`], its SSE answers resumable:
//! [`streams`], its calls cancellable: [`cancels`]), which share one call's path ([`calls`]), the one registry of the sessions they
//! share, their owners and the list-changed notifications ([`sessions`]), the `Host` guard
//! ([`hosts`]), and what a call relays to its client while it runs ([`relay`], the questions
//! its upstream asks governed: [`asking`],
//! [`elicitation`], and on the fast path the questions an upstream asks it, [`questions`]). Between them and the
//! governor: the built-in tools ([`builtins`]), the upstreams' prompts and resources
//! ([`offered`]), the sealed state of multi-round requests ([`continuations`]), calls
//! waiting for a 2026-07-28 client's answers ([`parked`]), held calls as tasks ([`tasks`]), and where costly decisions run ([`decisions`]).
//! Outbound: the upstream servers ([`upstream`]).

pub mod asking;
pub mod builtins;
pub mod calls;
pub mod cancels;
pub mod continuations;
pub mod decisions;
pub mod elicitation;
pub mod fastpath;
pub mod hosts;
pub mod offered;
pub mod parked;
pub mod questions;
pub mod relay;
pub mod server;
pub mod sessions;
pub mod streams;
pub mod tasks;
pub mod upstream;
