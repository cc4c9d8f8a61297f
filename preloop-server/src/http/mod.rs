//! HTTP plumbing every surface shares: the REST error type and its JSON body, extractors whose
//! rejections are such errors, and the size bounds of what callers send.

pub mod bounds;
pub mod error;
pub mod extract;

pub use error::ApiError;
pub use extract::{Body, QueryParams};
