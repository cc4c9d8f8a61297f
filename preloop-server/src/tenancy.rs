//! Organizations: the operator's own (the default organization) and everyone else's.

/// The organization the first start creates: the operator's. Its administrators may start
/// programs and reach any address; other organizations are tenants.
pub const DEFAULT_ORGANIZATION: &str = "default";

/// Whether `organization_id` is the operator's organization.
pub fn is_operator(organization_id: &str) -> bool {
    organization_id == DEFAULT_ORGANIZATION
}
