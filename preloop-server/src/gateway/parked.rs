//! A session upstream's questions to a 2026-07-28 client.
//!
//! An upstream of the earlier generation asks its questions (sampling, elicitation, roots)
//! during the call, and waits for the answers; a 2026-07-28 client takes questions only as an
//! `input_required` result, and answers them in a new request. So the call of such a client
//! runs in a task of its own ([`RunningCall`]): when its upstream asks, the client's request
//! is answered with the questions, and the call waits, parked here ([`Parked`]), for the
//! request that carries the answers, which is not governed again (it continues the same call,
//! whose decision and audit record stand). A parked call nobody continues within
//! [`PARKED_FOR`] is cancelled (its upstream told). Parked calls live on this replica: the
//! answering request must reach it (sticky routing, or one replica).

use crate::gateway::relay::{Notify, NotifyError};
use preloop_core::executor::AskError;
use preloop_core::governor::{GovernorError, Outcome};
use rmcp::model::{ServerNotification, ServerRequest};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a parked call waits for its client's answers.
pub const PARKED_FOR: Duration = Duration::from_secs(10 * 60);
/// Most calls parked at once; past it the oldest is cancelled.
const MAX_PARKED: usize = 10_000;

/// A question of the call's upstream, and where its answer goes.
#[derive(Debug)]
pub struct Question {
    request: ServerRequest,
    answer: oneshot::Sender<Result<Value, AskError>>,
}

/// Where a running call's notifications and questions go: notifications to the client's
/// request (while one waits), questions to the [`RunningCall`].
pub struct Deferring {
    inner: Arc<dyn Notify>,
    questions: mpsc::UnboundedSender<Question>,
}

#[async_trait::async_trait]
impl Notify for Deferring {
    async fn send(&self, notification: ServerNotification) -> Result<(), NotifyError> {
        self.inner.send(notification).await
    }

    async fn ask(&self, request: ServerRequest) -> Result<Value, AskError> {
        let (answer, answered) = oneshot::channel();
        self.questions
            .send(Question { request, answer })
            .map_err(|_| AskError::Unanswered("the call has ended".to_owned()))?;
        answered
            .await
            .unwrap_or_else(|_| Err(AskError::Unanswered("the client went away".to_owned())))
    }
}

/// The notifications of a call that goes to `inner`, its questions to the returned
/// receiver (for [`RunningCall::start`]).
pub fn deferring(inner: Arc<dyn Notify>) -> (Arc<dyn Notify>, mpsc::UnboundedReceiver<Question>) {
    let (questions, asked) = mpsc::unbounded_channel();
    (Arc::new(Deferring { inner, questions }), asked)
}

/// What a running call did next.
#[derive(Debug)]
pub enum Step {
    /// It ended.
    Done(Result<Outcome, GovernorError>),
    /// Its upstream asks the client these questions (`inputRequests`, keyed).
    Asked(Value),
}

/// A call running in a task of its own, whose client answers its questions in later
/// requests.
#[derive(Debug)]
pub struct RunningCall {
    outcome: JoinHandle<Result<Outcome, GovernorError>>,
    questions: mpsc::UnboundedReceiver<Question>,
    /// The questions asked and not yet answered, by key: each as an `inputRequests` entry,
    /// and where its answer goes.
    waiting: BTreeMap<String, (Value, oneshot::Sender<Result<Value, AskError>>)>,
    cancel: CancellationToken,
    next_key: u32,
}

impl RunningCall {
    /// Runs `call` (whose questions arrive on `questions`, and which stops when `cancel` is
    /// cancelled) in a task of its own.
    pub fn start(
        call: impl Future<Output = Result<Outcome, GovernorError>> + Send + 'static,
        questions: mpsc::UnboundedReceiver<Question>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            outcome: tokio::spawn(call),
            questions,
            waiting: BTreeMap::new(),
            cancel,
            next_key: 1,
        }
    }

    /// Gives up the call (its upstream is told).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the call's outcome, or for its upstream's questions (those asked at once
    /// come together).
    pub async fn step(&mut self) -> Step {
        let first = tokio::select! {
            outcome = &mut self.outcome => return Step::Done(outcome.unwrap_or_else(|error| {
                Err(GovernorError::Forbidden(format!("the call stopped: {error}")))
            })),
            question = self.questions.recv() => question,
        };
        let Some(first) = first else {
            let outcome = (&mut self.outcome).await;
            return Step::Done(outcome.unwrap_or_else(|error| {
                Err(GovernorError::Forbidden(format!(
                    "the call stopped: {error}"
                )))
            }));
        };
        let mut asked = vec![first];
        while let Ok(more) = self.questions.try_recv() {
            asked.push(more);
        }
        for question in asked {
            let key = format!("q{}", self.next_key);
            self.next_key += 1;
            self.waiting
                .insert(key, (input_request(&question.request), question.answer));
        }
        Step::Asked(self.pending())
    }

    /// Every question still waiting for its answer, as `inputRequests`.
    pub fn pending(&self) -> Value {
        Value::Object(
            self.waiting
                .iter()
                .map(|(key, (request, _))| (key.clone(), request.clone()))
                .collect::<Map<String, Value>>(),
        )
    }

    /// Whether questions still wait for answers.
    pub fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Gives the call the client's `responses` (by question key); questions it did not
    /// answer keep waiting.
    pub fn answer(&mut self, responses: Option<&Value>) {
        let Some(responses) = responses.and_then(Value::as_object) else {
            return;
        };
        for (key, response) in responses {
            if let Some((_, waiting)) = self.waiting.remove(key) {
                let _ = waiting.send(Ok(response.clone()));
            }
        }
    }
}

/// The calls of this replica waiting for their clients' answers; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Parked(Arc<Mutex<HashMap<Uuid, (RunningCall, Instant)>>>);

impl Parked {
    /// Parks `call`; its id.
    pub fn park(&self, call: RunningCall) -> Uuid {
        let id = Uuid::new_v4();
        let mut parked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        parked.retain(|_, (call, since)| {
            let keep = since.elapsed() < PARKED_FOR;
            if !keep {
                call.cancel();
            }
            keep
        });
        if parked.len() >= MAX_PARKED
            && let Some(oldest) = parked
                .iter()
                .min_by_key(|(_, (_, since))| *since)
                .map(|(id, _)| *id)
            && let Some((call, _)) = parked.remove(&oldest)
        {
            call.cancel();
        }
        parked.insert(id, (call, Instant::now()));
        id
    }

    /// The parked call `id`, taken out to be continued.
    pub fn take(&self, id: Uuid) -> Option<RunningCall> {
        let mut parked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        parked
            .remove(&id)
            .filter(|(_, since)| since.elapsed() < PARKED_FOR)
            .map(|(call, _)| call)
    }
}

/// A question as an entry of `inputRequests`: its method and parameters.
fn input_request(request: &ServerRequest) -> Value {
    let mut request = serde_json::to_value(request).unwrap_or_else(|_| json!({}));
    json!({
        "method": request.get_mut("method").map(Value::take).unwrap_or_default(),
        "params": request.get_mut("params").map(Value::take).unwrap_or_else(|| json!({})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use preloop_core::executor::ToolOutput;

    /// Nowhere for notifications to go.
    struct Nowhere;

    #[async_trait::async_trait]
    impl Notify for Nowhere {
        async fn send(&self, _notification: ServerNotification) -> Result<(), NotifyError> {
            Err(NotifyError::Closed)
        }

        async fn ask(&self, _request: ServerRequest) -> Result<Value, AskError> {
            Err(AskError::Unanswered("nobody".into()))
        }
    }

    fn roots() -> ServerRequest {
        serde_json::from_value(json!({"method": "roots/list", "params": {}})).unwrap()
    }

    #[tokio::test]
    async fn a_call_parks_at_its_questions_and_goes_on_with_all_their_answers() {
        let (notify, questions) = deferring(Arc::new(Nowhere));
        let call = async move {
            let (first, second) = tokio::join!(notify.ask(roots()), notify.ask(roots()));
            let text = format!("{} {}", first.unwrap(), second.unwrap());
            Ok(Outcome::Executed {
                call_id: Uuid::new_v4(),
                request_id: None,
                output: ToolOutput::text(text),
            })
        };
        let mut running = RunningCall::start(call, questions, CancellationToken::new());
        let Step::Asked(asked) = running.step().await else {
            panic!("the call asks");
        };
        // Both questions come, at once or one after the other.
        let mut keys: Vec<String> = asked.as_object().unwrap().keys().cloned().collect();
        if keys.len() == 1 {
            let Step::Asked(more) = running.step().await else {
                panic!("the call asks again");
            };
            keys = more.as_object().unwrap().keys().cloned().collect();
        }
        assert_eq!(keys, ["q1", "q2"]);
        assert_eq!(running.pending()["q1"]["method"], "roots/list");

        let parked = Parked::default();
        let id = parked.park(running);
        let mut running = parked.take(id).unwrap();
        assert!(parked.take(id).is_none(), "taken once");
        running.answer(Some(&json!({"q2": 2, "unknown": 9})));
        assert!(running.is_waiting(), "q1 is still unanswered");
        assert_eq!(running.pending().as_object().unwrap().len(), 1);
        running.answer(Some(&json!({"q1": 1})));
        let Step::Done(Ok(Outcome::Executed { output, .. })) = running.step().await else {
            panic!("the call finishes");
        };
        assert_eq!(output.joined_text(), "1 2");
    }
}
