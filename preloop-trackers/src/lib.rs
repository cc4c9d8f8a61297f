//! Issue-tracker adapters for Preloop (GitHub, GitLab, Jira) implementing
//! `preloop_core::tracker::Tracker`, with webhook verification and sync.
//!
//! Not built yet: this crate exists so the workspace has its final shape. It holds no modules
//! and exports nothing; the interface the adapters will implement, the `Tracker` trait with its
//! typed issues, updates and `TrackerError`, and the stored `TrackerConfig` documents are in
//! `preloop-core` (`tracker`, `documents`); only the `preloop` facade crate re-exports this one.

#![deny(missing_docs)]
