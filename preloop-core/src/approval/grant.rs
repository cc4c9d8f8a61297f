//! Standing grants: "allow this tool for this principal for N minutes", given with an approval.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A time-limited permission for one principal to call one tool without a new approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Grant id.
    pub id: Uuid,
    /// Organization.
    pub organization_id: String,
    /// The principal it is for.
    pub principal_id: String,
    /// The tool's exposed name.
    pub tool: String,
    /// Who granted it.
    pub granted_by: String,
    /// The approval request it was given with.
    pub request_id: Uuid,
    /// When it was given.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Revoked grants never match.
    pub revoked: bool,
}

impl Grant {
    /// Whether the grant lets `principal_id` call `tool` in `organization_id` at `now`.
    pub fn covers(
        &self,
        organization_id: &str,
        principal_id: &str,
        tool: &str,
        now: DateTime<Utc>,
    ) -> bool {
        !self.revoked
            && now < self.expires_at
            && self.organization_id == organization_id
            && self.principal_id == principal_id
            && self.tool == tool
    }
}
