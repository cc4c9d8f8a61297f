//! A 2026-07-28 upstream's questions, answered for a client of the earlier generation.
//!
//! Such a client takes an upstream's questions during the call (sampling, elicitation and
//! roots requests on the call's stream) and does not know `input_required` results. When a
//! request of its goes to a 2026-07-28 upstream (one that offers the tool only there), the
//! gateway plays the part of the new client, as rmcp's client does: it asks the calling
//! client each question of an `input_required` result through the call's observer, then
//! repeats the request with the answers and the untouched `requestState`, until the upstream
//! finishes, at most [`MAX_ROUNDS`] times.

use super::caller::asks_for_input;
use super::error::UpstreamError;
use preloop_core::executor::{ExecutionObserver, InputAnswers};
use serde_json::{Map, Value};
use std::future::Future;

/// Most rounds of questions one request may take (rmcp's clients stop at the same number).
pub const MAX_ROUNDS: usize = 10;

/// The finished result of a request whose first answer was `result`: while the upstream asks
/// for input, its questions are put to the calling client through `observer` and the request
/// is made `again` with the answers.
pub async fn answered_during_the_call<F, Fut>(
    observer: &dyn ExecutionObserver,
    mut result: Value,
    mut again: F,
) -> Result<Value, UpstreamError>
where
    F: FnMut(InputAnswers) -> Fut,
    Fut: Future<Output = Result<Value, UpstreamError>>,
{
    for _ in 0..MAX_ROUNDS {
        if !asks_for_input(&result) {
            return Ok(result);
        }
        let answers = ask_all(observer, &result).await?;
        result = again(answers).await?;
    }
    if asks_for_input(&result) {
        return Err(UpstreamError::TooManyRounds { rounds: MAX_ROUNDS });
    }
    Ok(result)
}

/// Each question of `result` asked of the client, in order; the answers with the result's
/// state.
async fn ask_all(
    observer: &dyn ExecutionObserver,
    result: &Value,
) -> Result<InputAnswers, UpstreamError> {
    let mut responses = Map::new();
    if let Some(questions) = result.get("inputRequests").and_then(Value::as_object) {
        for (key, question) in questions {
            let method = question
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let params = question.get("params").cloned().unwrap_or_default();
            let answer =
                observer
                    .ask(method, params)
                    .await
                    .map_err(|source| UpstreamError::Unasked {
                        method: method.to_owned(),
                        source,
                    })?;
            responses.insert(key.clone(), answer);
        }
    }
    Ok(InputAnswers {
        responses: (!responses.is_empty()).then_some(Value::Object(responses)),
        state: result
            .get("requestState")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use preloop_core::executor::{Answer, AskError};
    use serde_json::json;
    use std::sync::Mutex;

    /// A client that answers elicitations with a name and refuses everything else.
    #[derive(Default)]
    struct Client {
        asked: Mutex<Vec<String>>,
    }

    impl ExecutionObserver for Client {
        fn progress(&self, _: f64, _: Option<f64>, _: Option<&str>) {}
        fn log(&self, _: &str, _: Option<&str>, _: &Value) {}
        fn ask(&self, method: &str, _params: Value) -> Answer {
            self.asked.lock().unwrap().push(method.to_owned());
            let method = method.to_owned();
            Box::pin(async move {
                if method == "elicitation/create" {
                    Ok(json!({"action": "accept", "content": {"name": "Ann"}}))
                } else {
                    Err(AskError::Unsupported { method })
                }
            })
        }
    }

    fn asks(key: &str, method: &str, state: Option<&str>) -> Value {
        let mut result = json!({"resultType": "input_required",
            "inputRequests": {key: {"method": method, "params": {"message": "?"}}}});
        if let Some(state) = state {
            result["requestState"] = json!(state);
        }
        result
    }

    #[tokio::test]
    async fn questions_are_asked_and_the_request_repeated_with_answers_and_state() {
        let client = Client::default();
        let sent = Mutex::new(Vec::new());
        let first = asks("who", "elicitation/create", Some("round-1"));
        let finished = answered_during_the_call(&client, first, |answers| {
            sent.lock().unwrap().push(answers.clone());
            let round = sent.lock().unwrap().len();
            async move {
                Ok(if round == 1 {
                    asks("again", "elicitation/create", Some("round-2"))
                } else {
                    json!({"content": [{"type": "text", "text": "done"}]})
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(finished["content"][0]["text"], "done");
        let sent = sent.into_inner().unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].state.as_deref(), Some("round-1"));
        assert_eq!(
            sent[0].responses,
            Some(json!({"who": {"action": "accept", "content": {"name": "Ann"}}}))
        );
        assert_eq!(sent[1].state.as_deref(), Some("round-2"));
    }

    #[tokio::test]
    async fn a_question_the_client_cannot_be_asked_ends_the_request() {
        let client = Client::default();
        let first = asks("sample", "sampling/createMessage", None);
        let error =
            answered_during_the_call(&client, first, |_| async { Ok(json!({"content": []})) })
                .await
                .unwrap_err();
        assert!(
            matches!(error, UpstreamError::Unasked { ref method, .. } if method == "sampling/createMessage")
        );
    }

    #[tokio::test]
    async fn an_upstream_that_never_finishes_is_stopped() {
        let client = Client::default();
        let first = asks("who", "elicitation/create", None);
        let error = answered_during_the_call(&client, first, |_| async {
            Ok(asks("who", "elicitation/create", None))
        })
        .await
        .unwrap_err();
        assert!(matches!(
            error,
            UpstreamError::TooManyRounds { rounds: MAX_ROUNDS }
        ));
        assert_eq!(client.asked.lock().unwrap().len(), MAX_ROUNDS);
    }
}
