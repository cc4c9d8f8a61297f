//! Cross-replica wake-ups: every approval update on PostgreSQL sends `NOTIFY` in its own
//! transaction, so it is delivered exactly when the change commits; [`ApprovalChanges`] is the
//! listening side. SQLite serves one process, where the governor's in-process wake-up suffices.

use crate::connect::{Database, Pools, SqliteConn};
use crate::error::{backend, redact, unavailable};
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures::StreamExt;
use preloop_core::store::StoreError;
use std::future::Future;
use uuid::Uuid;

/// The PostgreSQL channel approval changes are announced on.
pub const APPROVAL_CHANNEL: &str = "preloop_approval_changes";

/// Announces that a request changed, inside the caller's transaction.
pub(crate) trait AnnounceChange {
    fn announce_change(
        &mut self,
        request_id: &str,
    ) -> impl Future<Output = diesel::QueryResult<()>> + Send;
}

impl AnnounceChange for AsyncPgConnection {
    fn announce_change(
        &mut self,
        request_id: &str,
    ) -> impl Future<Output = diesel::QueryResult<()>> + Send {
        let query = diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(APPROVAL_CHANNEL)
            .bind::<Text, _>(request_id.to_owned());
        async move { query.execute(self).await.map(drop) }
    }
}

impl AnnounceChange for SqliteConn {
    fn announce_change(
        &mut self,
        _request_id: &str,
    ) -> impl Future<Output = diesel::QueryResult<()>> + Send {
        std::future::ready(Ok(()))
    }
}

/// The PostgreSQL channel configuration changes are announced on (the payload is the
/// organization whose policy, tools or servers changed).
pub const CONFIG_CHANNEL: &str = "preloop_config_changes";

/// A subscription to a notification channel, on its own connection.
pub struct Subscription {
    connection: AsyncPgConnection,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

impl Subscription {
    /// The next payload. `None` when the connection is lost: subscribe again (and re-read what
    /// you depend on, as changes in between were not seen).
    pub async fn next(&mut self) -> Option<Result<String, StoreError>> {
        let mut stream = std::pin::pin!(self.connection.notifications_stream());
        let notification = stream.next().await?;
        Some(notification.map(|n| n.payload).map_err(backend))
    }
}

/// A subscription to approval-request changes committed by any process sharing the database.
#[derive(Debug)]
pub struct ApprovalChanges(Subscription);

impl ApprovalChanges {
    /// The id of the next request that changed. `None` when the connection is lost: subscribe
    /// again (and re-read what you wait for, as changes in between were not seen).
    pub async fn next(&mut self) -> Option<Result<Uuid, StoreError>> {
        let payload = self.0.next().await?;
        Some(payload.and_then(|p| {
            Uuid::parse_str(&p)
                .map_err(|e| StoreError::Backend(format!("bad notification payload: {e}")))
        }))
    }
}

impl Database {
    /// Subscribes to a notification channel ([`APPROVAL_CHANNEL`], [`CONFIG_CHANNEL`]) on a
    /// dedicated connection. `None` on SQLite, which serves one process.
    pub async fn subscribe(&self, channel: &str) -> Result<Option<Subscription>, StoreError> {
        if let Pools::Sqlite(_) = &*self.pools {
            return Ok(None);
        }
        let mut connection = AsyncPgConnection::establish(self.url())
            .await
            .map_err(|e| unavailable(format!("{}: {e}", redact(self.url()))))?;
        connection
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(backend)?;
        Ok(Some(Subscription { connection }))
    }

    /// Subscribes to approval changes on a dedicated connection. `None` on SQLite, whose single
    /// process is woken in-process by the governor.
    pub async fn approval_changes(&self) -> Result<Option<ApprovalChanges>, StoreError> {
        Ok(self.subscribe(APPROVAL_CHANNEL).await?.map(ApprovalChanges))
    }

    /// Subscribes to configuration changes (payload: the organization). `None` on SQLite, which
    /// serves one process.
    pub async fn config_changes(&self) -> Result<Option<Subscription>, StoreError> {
        self.subscribe(CONFIG_CHANNEL).await
    }

    /// Tells every replica that `organization_id`'s policy, tools or servers changed (after the
    /// change committed). Nothing to do on SQLite.
    pub async fn announce_config_change(&self, organization_id: &str) -> Result<(), StoreError> {
        let Pools::Postgres(pool) = &*self.pools else {
            return Ok(());
        };
        let mut connection = pool.get().await.map_err(unavailable)?;
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(CONFIG_CHANNEL)
            .bind::<Text, _>(organization_id.to_owned())
            .execute(&mut connection)
            .await
            .map(drop)
            .map_err(backend)
    }
}
