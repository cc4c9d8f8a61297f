//! Storage for Preloop: SQLite (embedded default) and PostgreSQL with pgvector, implementing the
//! store traits of `preloop-core` on diesel + diesel-async.
//!
//! Not built yet: until it is, `preloop_core::store::MemoryStore` is the only store.
//! This crate exists so the workspace has its final shape; it exports nothing.

#![deny(missing_docs)]
