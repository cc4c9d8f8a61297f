//! Multi-round requests (2026-07-28 `input_required`) as the gateway hands them to clients.
//!
//! A tool call, prompt get or resource read may come back from its upstream with questions for
//! the client and an opaque `requestState`; the client answers in a new request carrying its
//! `inputResponses` and the state, untouched. The gateway governs every round as a request of
//! its own, and never hands out the upstream's state bare: it is sealed (rmcp's
//! `RequestStateCodec`, HMAC-SHA256 under a key derived from `SECRET_KEY`, so any replica
//! opens it) and bound to the organization, the principal, the request's method and name and
//! a digest of its arguments, for [`STATE_TTL`]. So a client can neither change the state, nor
//! replay it on another request or as another principal; a state that does not open is
//! refused (-32602) before anything is decided or forwarded. A round whose upstream handed out
//! no state gets none from the gateway either.

use preloop_core::Principal;
use preloop_core::executor::InputAnswers;
use rmcp::ErrorData;
use rmcp::model::{InputRequiredResult, InputResponses, RequestStateCodec, SealOptions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a client has to answer a round's questions.
pub const STATE_TTL: Duration = Duration::from_secs(60 * 60);
/// What a sealed state holds: an upstream's own state, ...
const UPSTREAM_STATE: &str = "u";
/// ... or the id of a call parked here.
const PARKED_CALL: &str = "p";

/// What a later round continues.
#[derive(Debug, Clone, PartialEq)]
pub enum Continued {
    /// The upstream's request: its answers and its own state, for the upstream.
    Upstream(InputAnswers),
    /// A call parked here, waiting for these answers.
    Parked {
        /// The parked call's id.
        call: Uuid,
        /// The answers by question key.
        responses: Option<Value>,
    },
}

/// Seals and opens the state of multi-round requests.
#[derive(Clone)]
pub struct Continuations {
    codec: Arc<RequestStateCodec>,
}

impl std::fmt::Debug for Continuations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Continuations(<redacted>)")
    }
}

/// The request a round belongs to: what its state is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// `tools/call`, `prompts/get` or `resources/read`.
    pub method: &'a str,
    /// The tool's or prompt's name, or the resource's URI, as the client named it.
    pub name: &'a str,
    /// The request's arguments (a resource read's are none).
    pub arguments: &'a Value,
}

impl Round<'_> {
    /// What the state is sealed with: each part length-prefixed, so no two rounds share it.
    fn associated_data(&self) -> Vec<u8> {
        let arguments = Sha256::digest(self.arguments.to_string().as_bytes());
        let mut data = Vec::new();
        for part in [
            self.principal.organization_id.as_bytes(),
            self.principal.id.as_bytes(),
            self.method.as_bytes(),
            self.name.as_bytes(),
            &arguments[..],
        ] {
            data.extend_from_slice(&(part.len() as u64).to_be_bytes());
            data.extend_from_slice(part);
        }
        data
    }
}

/// What an upstream task's id is bound to: the organization and the principal.
fn task_binding(principal: &Principal) -> Vec<u8> {
    let mut binding = b"task\0".to_vec();
    for part in [&principal.organization_id, &principal.id] {
        binding.extend_from_slice(&(part.len() as u64).to_be_bytes());
        binding.extend_from_slice(part.as_bytes());
    }
    binding
}

impl Continuations {
    /// Sealing with `key` (at least 32 bytes: [`crate::auth::tokens::TokenKeys::state_key`]).
    pub fn new(key: &[u8]) -> Self {
        Self {
            codec: Arc::new(RequestStateCodec::new_unchecked(key.to_vec())),
        }
    }

    /// What a request carries for an earlier round of `round`: answers for the upstream (with
    /// its own state), or answers for a call parked here ([`crate::gateway::parked`]); `None`
    /// for a first round. A state that was not sealed for this round, or is older than
    /// [`STATE_TTL`], is refused.
    pub fn answers(
        &self,
        round: &Round<'_>,
        responses: Option<InputResponses>,
        state: Option<String>,
    ) -> Result<Option<Continued>, ErrorData> {
        if responses.is_none() && state.is_none() {
            return Ok(None);
        }
        let responses = responses.map(|responses| {
            Value::Object(responses.into_iter().collect::<serde_json::Map<_, _>>())
        });
        let Some(sealed) = state else {
            return Ok(Some(Continued::Upstream(InputAnswers {
                responses,
                state: None,
            })));
        };
        let opened = self
            .codec
            .open_with(&sealed, &round.associated_data())
            .ok()
            .and_then(|state| String::from_utf8(state).ok());
        let refused = || {
            ErrorData::invalid_params(
                "requestState is not one this server handed out for this request, or it has \
                 expired",
                None,
            )
        };
        match opened.as_deref().and_then(|state| state.split_once(':')) {
            Some((UPSTREAM_STATE, state)) => Ok(Some(Continued::Upstream(InputAnswers {
                responses,
                state: Some(state.to_owned()),
            }))),
            Some((PARKED_CALL, call)) => Ok(Some(Continued::Parked {
                call: Uuid::parse_str(call).map_err(|_| refused())?,
                responses,
            })),
            _ => Err(refused()),
        }
    }

    /// [`Self::answers`] for a request that is never parked (a prompt get, a resource read).
    pub fn upstream_answers(
        &self,
        round: &Round<'_>,
        responses: Option<InputResponses>,
        state: Option<String>,
    ) -> Result<Option<InputAnswers>, ErrorData> {
        match self.answers(round, responses, state)? {
            None => Ok(None),
            Some(Continued::Upstream(answers)) => Ok(Some(answers)),
            Some(Continued::Parked { .. }) => Err(ErrorData::invalid_params(
                "requestState is not one this server handed out for this request",
                None,
            )),
        }
    }

    /// The questions of a call parked here as `id` ([`crate::gateway::parked`]), for the
    /// client to answer in a round of `round`.
    pub fn parked(
        &self,
        round: &Round<'_>,
        id: Uuid,
        questions: Value,
    ) -> Result<InputRequiredResult, ErrorData> {
        let state = self.seal(round, &format!("{PARKED_CALL}:{id}"));
        serde_json::from_value(json!({
            "resultType": "input_required",
            "inputRequests": questions,
            "requestState": state,
        }))
        .map_err(|error| {
            ErrorData::internal_error(
                format!("an upstream's question is unreadable: {error}"),
                None,
            )
        })
    }

    /// `state` sealed for `round`.
    fn seal(&self, round: &Round<'_>, state: &str) -> String {
        let associated_data = round.associated_data();
        let options = SealOptions::new()
            .associated_data(&associated_data)
            .ttl(STATE_TTL);
        self.codec.seal_with(state.as_bytes(), &options)
    }

    /// The id a client follows an upstream's task by: the upstream server and its own task
    /// id, sealed for `principal` (no one else opens it, and it cannot be made up).
    pub fn seal_task(&self, principal: &Principal, server: Uuid, task_id: &str) -> String {
        let payload = format!("{server}/{task_id}");
        let binding = task_binding(principal);
        let options = SealOptions::new().associated_data(&binding);
        self.codec.seal_with(payload.as_bytes(), &options)
    }

    /// The upstream server and its own task id behind `sealed`, if it was sealed for
    /// `principal`.
    pub fn open_task(&self, principal: &Principal, sealed: &str) -> Option<(Uuid, String)> {
        let opened = self
            .codec
            .open_with(sealed, &task_binding(principal))
            .ok()?;
        let opened = String::from_utf8(opened).ok()?;
        let (server, task_id) = opened.split_once('/')?;
        Some((Uuid::parse_str(server).ok()?, task_id.to_owned()))
    }

    /// The upstream's `input_required` `result` for `round` as the client gets it: its state
    /// sealed.
    pub fn input_required(
        &self,
        round: &Round<'_>,
        result: Value,
    ) -> Result<InputRequiredResult, ErrorData> {
        let mut result: InputRequiredResult = serde_json::from_value(result).map_err(|error| {
            ErrorData::internal_error(
                format!("the upstream's input_required result is unreadable: {error}"),
                None,
            )
        })?;
        if let Some(state) = result.request_state.take() {
            result.request_state = Some(self.seal(round, &format!("{UPSTREAM_STATE}:{state}")));
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round<'a>(principal: &'a Principal, arguments: &'a Value) -> Round<'a> {
        Round {
            principal,
            method: "tools/call",
            name: "confirm",
            arguments,
        }
    }

    fn asked(continuations: &Continuations, round: &Round<'_>) -> String {
        let result = json!({"resultType": "input_required",
            "inputRequests": {"ok": {"method": "roots/list", "params": {}}},
            "requestState": "upstream-state-1"});
        let sealed = continuations.input_required(round, result).unwrap();
        sealed.request_state.unwrap()
    }

    #[test]
    fn the_upstreams_state_comes_back_only_for_the_round_it_was_sealed_for() {
        let continuations = Continuations::new(&[7; 32]);
        let ann = Principal::new("ann", "org-1");
        let bob = Principal::new("bob", "org-1");
        let arguments = json!({"item": 1});
        let sealed = asked(&continuations, &round(&ann, &arguments));
        assert_ne!(sealed, "upstream-state-1");
        let answers = continuations
            .answers(&round(&ann, &arguments), None, Some(sealed.clone()))
            .unwrap();
        let Some(Continued::Upstream(answers)) = answers else {
            panic!("the upstream's round continues");
        };
        assert_eq!(answers.state.as_deref(), Some("upstream-state-1"));

        let other_arguments = json!({"item": 2});
        for wrong in [
            round(&bob, &arguments),
            round(&ann, &other_arguments),
            Round {
                name: "other",
                ..round(&ann, &arguments)
            },
        ] {
            assert!(
                continuations
                    .answers(&wrong, None, Some(sealed.clone()))
                    .is_err()
            );
        }
        let tampered = format!("{sealed}-TAMPERED");
        assert!(
            continuations
                .answers(&round(&ann, &arguments), None, Some(tampered))
                .is_err()
        );
        let other_key = Continuations::new(&[8; 32]);
        assert!(
            other_key
                .answers(&round(&ann, &arguments), None, Some(sealed))
                .is_err()
        );
    }

    #[test]
    fn a_parked_calls_state_names_it_for_its_round_only() {
        let continuations = Continuations::new(&[7; 32]);
        let ann = Principal::new("ann", "org-1");
        let arguments = json!({});
        let id = Uuid::new_v4();
        let questions = json!({"q1": {"method": "roots/list", "params": {}}});
        let asked = continuations
            .parked(&round(&ann, &arguments), id, questions)
            .unwrap();
        let state = asked.request_state.unwrap();
        let responses: InputResponses = [("q1".to_owned(), json!({"roots": []}))].into();
        let continued = continuations
            .answers(
                &round(&ann, &arguments),
                Some(responses),
                Some(state.clone()),
            )
            .unwrap();
        assert_eq!(
            continued,
            Some(Continued::Parked {
                call: id,
                responses: Some(json!({"q1": {"roots": []}})),
            })
        );
        let bob = Principal::new("bob", "org-1");
        assert!(
            continuations
                .answers(&round(&bob, &arguments), None, Some(state))
                .is_err()
        );
    }

    #[test]
    fn answers_without_state_pass_and_no_state_is_invented() {
        let continuations = Continuations::new(&[7; 32]);
        let ann = Principal::new("ann", "org-1");
        let arguments = json!({});
        let round = round(&ann, &arguments);
        let responses: InputResponses = [("who".to_owned(), json!({"action": "accept"}))].into();
        let Some(Continued::Upstream(answers)) = continuations
            .answers(&round, Some(responses), None)
            .unwrap()
        else {
            panic!("answers without state go to the upstream");
        };
        assert_eq!(answers.state, None);
        assert_eq!(
            answers.responses,
            Some(json!({"who": {"action": "accept"}}))
        );
        assert_eq!(continuations.answers(&round, None, None).unwrap(), None);
        let stateless = json!({"resultType": "input_required",
            "inputRequests": {"who": {"method": "roots/list", "params": {}}}});
        let handed = continuations.input_required(&round, stateless).unwrap();
        assert_eq!(handed.request_state, None);
    }
}
