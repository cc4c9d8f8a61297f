//! The upstream's notifications shown to the calls in flight as they are read.

use super::connection::RmcpConnection;
use rmcp::model::JsonRpcMessage;
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use std::sync::Weak;

/// A transport that shows the upstream's progress and log notifications to the observers of
/// calls in flight as they are read, in stream order. (rmcp hands notifications to the client
/// handler on separate tasks, which may run after the response they preceded has been
/// returned, when the call's result has already gone to its client.)
pub(super) struct Observed<T> {
    inner: T,
    connection: Weak<RmcpConnection>,
}

impl<T> Observed<T> {
    pub(super) fn new(inner: T, connection: Weak<RmcpConnection>) -> Self {
        Self { inner, connection }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Observed<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        let connection = self.connection.clone();
        let received = self.inner.receive();
        async move {
            let message = received.await?;
            if let (JsonRpcMessage::Notification(notification), Some(connection)) =
                (&message, connection.upgrade())
            {
                connection.observe(&notification.notification).await;
            }
            Some(message)
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
