//! Issue-tracker adapters for Preloop (GitHub, GitLab, Jira) implementing
//! `preloop_core::tracker::Tracker`, with webhook verification and sync.
//!
//! Not built yet: this crate exists so the workspace has its final shape; it exports nothing.

#![deny(missing_docs)]
