//! Telling approvers: the [`Notifier`] trait the server's channels implement.

use crate::approval::ApprovalRequest;
use async_trait::async_trait;

/// Something approvers should hear about.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Notification<'a> {
    /// A request was opened. `token` is the decision-link secret, present only here: it is stored
    /// hashed and cannot be recovered later.
    Created {
        /// The request.
        request: &'a ApprovalRequest,
        /// Decision-link secret.
        token: &'a str,
    },
    /// An escalation stage started; notify its approvers and channels.
    Escalated {
        /// The request.
        request: &'a ApprovalRequest,
        /// 0-based stage.
        stage: usize,
    },
    /// The request left `Pending` (so channels can update their messages).
    Decided {
        /// The request.
        request: &'a ApprovalRequest,
    },
}

/// A channel failed. Failures are logged and never block or lose a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notification failed: {0}")]
pub struct NotifyError(pub String);

/// Delivers notifications to approvers.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers one notification.
    async fn notify(&self, notification: Notification<'_>) -> Result<(), NotifyError>;
}

/// A notifier that tells nobody (approvers look at the inbox or the API).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNotifier;

#[async_trait]
impl Notifier for NoNotifier {
    async fn notify(&self, _notification: Notification<'_>) -> Result<(), NotifyError> {
        Ok(())
    }
}
