//! The SSE answers of the fast path ([`crate::gateway::fastpath`]), resumable (SEP-1699).
//!
//! Each answer opens with a priming event (an event id, no data, and a `retry` delay) and
//! numbers its events (`{stream}/{n}`). When its connection ends before the call does (the
//! client went away, or the call's upstream paused its own stream and the gateway mirrors it,
//! [`Outgoing::Pause`]), the call goes on and its messages wait here, for the same session to
//! come back with a GET carrying `Last-Event-ID`, which continues the stream where it ended.
//! A parked stream nobody resumes is dropped after [`PARKED_FOR`].

use crate::wire::sse;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use rmcp::model::ServerJsonRpcMessage;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often an SSE answer with nothing to say sends a comment, so idle-connection timeouts of
/// proxies in between do not cut it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a client waits before reconnecting to a stream that ended (the priming event's
/// `retry`).
const RETRY: Duration = Duration::from_secs(1);
/// How long a stream whose connection ended waits to be resumed.
pub const PARKED_FOR: Duration = Duration::from_secs(10 * 60);
/// Most streams parked at once; past it the oldest go.
const MAX_PARKED: usize = 10_000;

/// What a call sends its client.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "messages are nearly all of it: boxing them would allocate once more per message"
)]
pub enum Outgoing {
    /// A JSON-RPC message.
    Message(ServerJsonRpcMessage),
    /// End this connection and let the client come back after the delay (mirroring an
    /// upstream that paused its own stream).
    Pause(Duration),
}

impl Outgoing {
    /// Whether this is the call's answer (its last message).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Message(ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_))
        )
    }
}

/// A call's stream of messages, and where its numbering is.
#[derive(Debug)]
pub struct CallStream {
    id: String,
    session: String,
    next: u64,
    messages: mpsc::UnboundedReceiver<Outgoing>,
}

impl CallStream {
    /// A new stream of `messages`, for session `session`.
    pub fn new(session: String, messages: mpsc::UnboundedReceiver<Outgoing>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            session,
            next: 1,
            messages,
        }
    }
}

/// A stream waiting to be resumed.
#[derive(Debug)]
struct Parked {
    stream: CallStream,
    since: Instant,
}

/// The streams of this replica waiting to be resumed; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Resumable(Arc<Mutex<HashMap<String, Parked>>>);

impl Resumable {
    fn park(&self, stream: CallStream) {
        tracing::debug!(stream = %stream.id, "an answer's connection ended before the answer; parked");
        let mut parked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        parked.retain(|_, p| p.since.elapsed() < PARKED_FOR);
        if parked.len() >= MAX_PARKED
            && let Some(oldest) = parked
                .iter()
                .min_by_key(|(_, p)| p.since)
                .map(|(id, _)| id.clone())
        {
            parked.remove(&oldest);
        }
        parked.insert(
            stream.id.clone(),
            Parked {
                stream,
                since: Instant::now(),
            },
        );
    }

    /// The stream `last_event_id` (an id this module gave) belongs to, taken out to be
    /// resumed by `session`; none if it is not parked, or is another session's.
    pub fn resume(&self, session: &str, last_event_id: &str) -> Option<CallStream> {
        let (stream, _) = last_event_id.split_once('/')?;
        let mut parked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match parked.get(stream) {
            Some(p) if p.stream.session == session && p.since.elapsed() < PARKED_FOR => {
                parked.remove(stream).map(|p| p.stream)
            }
            _ => None,
        }
    }
}

/// An SSE answer carrying `stream` (and `first`, already taken from it), opened with a priming
/// event when `priming` (a new stream, not a resumed one).
pub fn response(
    first: Option<Outgoing>,
    stream: CallStream,
    priming: bool,
    resumable: Resumable,
    shutdown: CancellationToken,
) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(events(first, stream, priming, resumable, shutdown)),
    )
        .into_response()
}

/// What the SSE answer is doing. Dropped before the call's answer was sent (the connection
/// ended, or the stream paused), it parks the stream to be resumed.
struct Sending {
    first: Option<Outgoing>,
    priming: bool,
    /// The connection ends at the next poll.
    ended: bool,
    stream: Option<CallStream>,
    resumable: Resumable,
    keep_alive: tokio::time::Interval,
    shutdown: CancellationToken,
}

impl Drop for Sending {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.resumable.park(stream);
        }
    }
}

/// The call's messages as numbered SSE events, ending after the final one, at a pause (or at
/// shutdown), with a comment whenever nothing was sent for [`KEEP_ALIVE`].
fn events(
    first: Option<Outgoing>,
    stream: CallStream,
    priming: bool,
    resumable: Resumable,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.reset();
    let state = Sending {
        first,
        priming,
        ended: false,
        stream: Some(stream),
        resumable,
        keep_alive,
        shutdown,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.ended {
            return None;
        }
        let stream = state.stream.as_mut()?;
        if std::mem::take(&mut state.priming) {
            let priming = format!(
                "id: {}/0\nretry: {}\ndata: \n\n",
                stream.id,
                RETRY.as_millis()
            );
            return Some((Ok(Bytes::from(priming)), state));
        }
        let outgoing = match state.first.take() {
            Some(outgoing) => outgoing,
            None => tokio::select! {
                outgoing = stream.messages.recv() => outgoing?,
                _ = state.keep_alive.tick() => return Some((Ok(sse::KEEP_ALIVE), state)),
                () = state.shutdown.cancelled() => return None,
            },
        };
        state.keep_alive.reset();
        let answered = outgoing.is_final();
        let bytes = match outgoing {
            Outgoing::Pause(retry) => {
                // Ends this connection; the stream parks when the state is dropped.
                state.ended = true;
                format!("retry: {}\n\n", retry.as_millis()).into()
            }
            Outgoing::Message(message) => {
                let id = format!("{}/{}", stream.id, stream.next);
                stream.next += 1;
                sse::event_with_id(&id, &message)
            }
        };
        if answered {
            // Nothing to park.
            state.stream = None;
            state.ended = true;
        }
        Some((Ok(bytes), state))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use rmcp::model::{NumberOrString, RequestId};
    use rmcp::model::{ProgressNotificationParam, ProgressToken, ServerNotification, ServerResult};

    fn progress() -> Outgoing {
        let param = ProgressNotificationParam::new(ProgressToken(NumberOrString::Number(1)), 1.0);
        Outgoing::Message(ServerJsonRpcMessage::notification(
            ServerNotification::ProgressNotification(rmcp::model::ProgressNotification::new(param)),
        ))
    }

    fn answer() -> Outgoing {
        Outgoing::Message(ServerJsonRpcMessage::response(
            ServerResult::empty(()),
            RequestId::Number(7),
        ))
    }

    async fn texts(stream: impl Stream<Item = Result<Bytes, Infallible>>) -> Vec<String> {
        stream
            .map(|bytes| String::from_utf8(bytes.unwrap().to_vec()).unwrap())
            .collect()
            .await
    }

    #[tokio::test]
    async fn an_answer_is_primed_and_numbered_and_leaves_nothing_parked() {
        let (sender, messages) = mpsc::unbounded_channel();
        let stream = CallStream::new("s1".into(), messages);
        let id = stream.id.clone();
        sender.send(progress()).unwrap();
        sender.send(answer()).unwrap();
        let resumable = Resumable::default();
        let sent = texts(events(
            None,
            stream,
            true,
            resumable.clone(),
            CancellationToken::new(),
        ))
        .await;
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert_eq!(sent[0], format!("id: {id}/0\nretry: 1000\ndata: \n\n"));
        assert!(
            sent[1].starts_with(&format!("id: {id}/1\ndata: {{")),
            "{sent:?}"
        );
        assert!(
            sent[2].starts_with(&format!("id: {id}/2\ndata: {{")),
            "{sent:?}"
        );
        assert!(resumable.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_paused_stream_goes_on_for_its_own_session_only() {
        let (sender, messages) = mpsc::unbounded_channel();
        let stream = CallStream::new("s1".into(), messages);
        let id = stream.id.clone();
        sender.send(progress()).unwrap();
        sender
            .send(Outgoing::Pause(Duration::from_millis(250)))
            .unwrap();
        sender.send(answer()).unwrap();
        let resumable = Resumable::default();
        let first = texts(events(
            None,
            stream,
            true,
            resumable.clone(),
            CancellationToken::new(),
        ))
        .await;
        assert_eq!(first.len(), 3, "{first:?}");
        assert_eq!(first[2], "retry: 250\n\n");
        let last = format!("{id}/1");
        assert!(resumable.resume("s2", &last).is_none(), "another session's");
        assert!(resumable.resume("s1", "unknown/1").is_none());
        let resumed = resumable.resume("s1", &last).unwrap();
        let rest = texts(events(
            None,
            resumed,
            false,
            resumable.clone(),
            CancellationToken::new(),
        ))
        .await;
        assert_eq!(rest.len(), 1, "{rest:?}");
        assert!(
            rest[0].starts_with(&format!("id: {id}/2\ndata: {{")),
            "{rest:?}"
        );
        assert!(resumable.resume("s1", &last).is_none(), "resumed once");
    }

    #[tokio::test]
    async fn a_connection_that_ends_early_parks_its_stream() {
        let (_sender, messages) = mpsc::unbounded_channel();
        let stream = CallStream::new("s1".into(), messages);
        let id = stream.id.clone();
        let resumable = Resumable::default();
        let mut sending = Box::pin(events(
            None,
            stream,
            true,
            resumable.clone(),
            CancellationToken::new(),
        ));
        assert!(sending.next().await.is_some(), "the priming event");
        drop(sending);
        assert!(resumable.resume("s1", &format!("{id}/0")).is_some());
    }
}
