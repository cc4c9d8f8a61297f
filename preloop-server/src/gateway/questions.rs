//! Questions the fast path asks a client on a call's response stream (an upstream's sampling,
//! elicitation or roots request during the call, [`crate::gateway::relay`]), and the answers
//! the client POSTs back: a JSON-RPC response whose id is one of these questions' goes to the
//! call that asked, and only when it comes on the session that was asked.
//!
//! The questions are kept on this replica: behind a load balancer, the answer must reach the
//! replica that serves the call (sessions are sticky, or there is one replica).

use crate::gateway::relay::{Notify, NotifyError};
use crate::gateway::streams::Outgoing;
use preloop_core::executor::AskError;
use rmcp::model::{RequestId, ServerJsonRpcMessage, ServerNotification, ServerRequest};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// How the ids of these questions start (rmcp's own requests have numeric ids).
const ID_PREFIX: &str = "preloop-";
/// Most questions waiting at once; past it new questions are refused.
const MAX_OPEN: usize = 10_000;

/// A question waiting for its answer.
#[derive(Debug)]
struct Question {
    session: String,
    answer: oneshot::Sender<Result<Value, AskError>>,
}

/// The questions waiting for answers on this replica; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Questions(Arc<Mutex<HashMap<String, Question>>>);

/// A POSTed JSON-RPC response, its result still JSON.
#[derive(Debug, Deserialize)]
pub struct Reply {
    id: RequestId,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

impl Reply {
    /// `body` as the answer to one of these questions, if it looks like one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let reply: Self = serde_json::from_slice(body).ok()?;
        let is_ours = matches!(&reply.id, RequestId::String(id) if id.starts_with(ID_PREFIX));
        (is_ours && (reply.result.is_some() || reply.error.is_some())).then_some(reply)
    }
}

impl Questions {
    /// Gives `reply` to the question of `session` it answers; whether there was one.
    pub fn answer(&self, session: &str, reply: Reply) -> bool {
        let RequestId::String(id) = &reply.id else {
            return false;
        };
        let question = {
            let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            match open.entry(id.to_string()) {
                Entry::Occupied(question) if question.get().session == session => question.remove(),
                _ => return false,
            }
        };
        let answer = match (reply.result, reply.error) {
            (Some(result), _) => Ok(result),
            (None, error) => Err(AskError::Refused(error.unwrap_or_default())),
        };
        let _ = question.answer.send(answer);
        true
    }

    /// Opens a question of `session`: its id, and where its answer will come.
    fn open(&self, session: &str) -> Option<(Opened, oneshot::Receiver<Result<Value, AskError>>)> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= MAX_OPEN {
            return None;
        }
        let id = format!("{ID_PREFIX}{}", uuid::Uuid::new_v4());
        let (answer, answered) = oneshot::channel();
        open.insert(
            id.clone(),
            Question {
                session: session.to_owned(),
                answer,
            },
        );
        Some((
            Opened {
                questions: self.clone(),
                id,
            },
            answered,
        ))
    }
}

/// An open question, forgotten when its asker stops waiting.
struct Opened {
    questions: Questions,
    id: String,
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.questions
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// A call's response stream on the fast path, as where its notifications and questions go.
#[derive(Debug)]
pub struct ResponseStream {
    /// The stream's messages.
    pub messages: mpsc::UnboundedSender<Outgoing>,
    /// Where questions wait for their answers.
    pub questions: Questions,
    /// The session the call came on.
    pub session: String,
    /// Whether its client can resume a stream that ends before the answer (SEP-1699,
    /// 2025-11-25 on); the stream of one that cannot is not paused.
    pub resumes: bool,
}

#[async_trait::async_trait]
impl Notify for ResponseStream {
    async fn send(&self, notification: ServerNotification) -> Result<(), NotifyError> {
        self.messages
            .send(Outgoing::Message(ServerJsonRpcMessage::notification(
                notification,
            )))
            .map_err(|_| NotifyError::Closed)
    }

    fn pause(&self, retry: std::time::Duration) {
        if self.resumes {
            let _ = self.messages.send(Outgoing::Pause(retry));
        }
    }

    async fn ask(&self, request: ServerRequest) -> Result<Value, AskError> {
        let (opened, answered) = self
            .questions
            .open(&self.session)
            .ok_or_else(|| AskError::Unanswered("too many questions are waiting".to_owned()))?;
        let id = RequestId::String(opened.id.as_str().into());
        self.messages
            .send(Outgoing::Message(ServerJsonRpcMessage::request(
                request, id,
            )))
            .map_err(|_| AskError::Unanswered("the client's response stream is closed".into()))?;
        let answer = answered
            .await
            .unwrap_or_else(|_| Err(AskError::Unanswered("the question was dropped".into())));
        drop(opened);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Asking = tokio::task::JoinHandle<Result<Value, AskError>>;

    /// A `roots/list` question of session `s1`, being asked, and what its stream sends.
    fn ask_roots(questions: &Questions) -> (Asking, mpsc::UnboundedReceiver<Outgoing>) {
        let (messages, sent) = mpsc::unbounded_channel();
        let stream = ResponseStream {
            messages,
            questions: questions.clone(),
            session: "s1".into(),
            resumes: true,
        };
        let request: ServerRequest =
            serde_json::from_value(json!({"method": "roots/list", "params": {}})).unwrap();
        (tokio::spawn(async move { stream.ask(request).await }), sent)
    }

    #[tokio::test]
    async fn an_answer_reaches_its_question_only_from_the_session_asked() {
        let questions = Questions::default();
        let (asking, mut sent) = ask_roots(&questions);
        let Some(Outgoing::Message(ServerJsonRpcMessage::Request(request))) = sent.recv().await
        else {
            panic!("no question was sent");
        };
        let body = |id: &RequestId| {
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "result": {"roots": []}}))
                .unwrap()
        };
        assert!(Reply::parse(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#).is_none());
        let reply = Reply::parse(&body(&request.id)).unwrap();
        assert!(!questions.answer("s2", reply), "another session's answer");
        let reply = Reply::parse(&body(&request.id)).unwrap();
        assert!(questions.answer("s1", reply));
        assert_eq!(asking.await.unwrap(), Ok(json!({"roots": []})));
        let reply = Reply::parse(&body(&request.id)).unwrap();
        assert!(!questions.answer("s1", reply), "answered twice");
        assert!(questions.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_question_nobody_waits_for_any_more_is_forgotten() {
        let questions = Questions::default();
        let (asking, mut sent) = ask_roots(&questions);
        assert!(sent.recv().await.is_some());
        assert_eq!(questions.0.lock().unwrap().len(), 1);
        asking.abort();
        let _ = asking.await;
        assert!(questions.0.lock().unwrap().is_empty());
    }
}
