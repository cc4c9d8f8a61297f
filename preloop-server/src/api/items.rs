//! The shape of the REST API's lists: `{"items": [...]}`.

use serde::Serialize;

/// A list of `T`, answered as `{"items": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Items<T> {
    /// The entries.
    items: Vec<T>,
}

impl<T> FromIterator<T> for Items<T> {
    fn from_iter<I: IntoIterator<Item = T>>(entries: I) -> Self {
        Self {
            items: entries.into_iter().collect(),
        }
    }
}
