//! Where the SQLite connection's work runs.
//!
//! diesel's SQLite connection is synchronous; diesel-async runs each piece of work on tokio's
//! blocking pool. For most work that is right (a long query must not stall the async
//! workers), but for a short write on every tool call, the two thread hand-offs cost several
//! times SQLite's own work (about 140 µs against 20 µs per audit append, measured with
//! `cargo bench -p preloop-store --bench store_load`). Work started inside [`inline`] runs at
//! once on the calling thread instead.
//!
//! Inline work must be short and must not wait on locks: the audit append is one small
//! transaction on the only pooled connection (which the caller already holds, so nothing else
//! in this process is using it), and [`Checkpointer`] keeps WAL checkpoints, SQLite's one slow
//! step on commit, off that connection.

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures::future::{BoxFuture, FutureExt, TryFutureExt};
use std::cell::Cell;
use std::error::Error;
use std::time::Duration;

thread_local! {
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `start` with SQLite work it starts executed on this thread, before `start` returns.
pub(crate) fn inline<R>(start: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            INLINE.with(|inline| inline.set(self.0));
        }
    }
    let _reset = Reset(INLINE.with(|inline| inline.replace(true)));
    start()
}

/// The SQLite connection's runtime: tokio's blocking pool, or the calling thread inside
/// [`inline`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SqliteRuntime;

impl SpawnBlocking for SqliteRuntime {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        if INLINE.with(Cell::get) {
            return futures::future::ready(Ok(task())).boxed();
        }
        tokio::task::spawn_blocking(task)
            .map_err(|error| Box::new(error) as Box<dyn Error + Send + Sync + 'static>)
            .boxed()
    }

    fn get_runtime() -> Self {
        Self
    }
}

/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Checkpoints a SQLite file's WAL from its own thread and connection, so commits on the pooled
/// connection (which has automatic checkpoints turned off) never do it. A passive checkpoint
/// takes no write lock: writers go on meanwhile. The thread ends when the database is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database file at `path`.
    pub(crate) fn start(path: &str) -> std::io::Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                let mut connection = None;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_INTERVAL)
                {
                    checkpoint(&path, &mut connection);
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

/// One passive checkpoint, (re)opening the connection when needed; failures are logged and
/// retried at the next interval.
fn checkpoint(path: &str, connection: &mut Option<SqliteConnection>) {
    if connection.is_none() {
        match SqliteConnection::establish(path) {
            Ok(opened) => *connection = Some(opened),
            Err(error) => {
                tracing::warn!(%error, "cannot open the database to checkpoint its WAL");
                return;
            }
        }
    }
    if let Some(open) = connection
        && let Err(error) =
            open.batch_execute("PRAGMA busy_timeout = 1000; PRAGMA wal_checkpoint(PASSIVE);")
    {
        tracing::warn!(%error, "WAL checkpoint failed");
        *connection = None;
    }
}
