//! The Preloop server: MCP gateway (rmcp streamable HTTP), upstream MCP clients, REST API, auth,
//! approval channels, web console and the `preloop` CLI. It assembles the other crates and holds
//! as little logic as it can.
//!
//! Not built yet: this crate exists so the workspace has its final shape; it exports nothing and
//! has no binary until the server lands.

#![deny(missing_docs)]
