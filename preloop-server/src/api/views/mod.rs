//! What the REST API answers, as types `/openapi.json` describes. Each view is built field by
//! field from the core value it shows (an explicit constructor, never a serde round trip), so a
//! field added to a core type is not shown to callers until someone adds it here. The tests
//! beside each view check it against the JSON the API has always given.
//!
//! One deliberate exception: the governance document's parts (rules, approval policies, the
//! whole document) are the documented policy-file format, which users write and read back, so
//! [`policy`] shows them exactly as the core writes them (dropping a field there would lose it
//! on the next `PUT`), described in the schema as objects.

pub(super) mod approvals;
pub(super) mod audit;
pub(super) mod hitl;
pub(super) mod policy;
pub(super) mod trackers;

use serde::Serialize;
use utoipa::ToSchema;

/// A list: `{"items": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Items<T> {
    /// The entries, in order.
    items: Vec<T>,
}

impl<T> Items<T> {
    /// `items` as a list body.
    pub(super) fn new(items: Vec<T>) -> Self {
        Self { items }
    }
}

impl<T> FromIterator<T> for Items<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}
