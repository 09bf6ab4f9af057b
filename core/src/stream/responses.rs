//! The Responses half of [`StreamDecoder`](super::StreamDecoder): the typed, numbered events of
//! `POST /v1/responses` with `"stream": true`. What it reads and hands out is documented on
//! the public module, [`crate::responses_stream`].

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::Value;

use super::record::{self, Record};
use super::report::PushReport;
use crate::api::{OutputItem, Response, ResponseStreamEvent};
use crate::error::{ApiError, VllmError};
use crate::event::StreamEvent;
use crate::sse::Raw;

/// Where a Responses stream is: the response's id (from its first lifecycle event) and the
/// `sequence_number` of the last event handed out — what a resumed stream
/// (`GET /v1/responses/{id}?stream=true&starting_after=N`) starts after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseCursor {
    /// The response's id, once an event named it.
    pub response_id: Option<String>,
    /// The last `sequence_number` handed out, if any event carried one.
    pub last_sequence_number: Option<u64>,
    /// Events dropped because their number was not above the last one handed out.
    pub replayed: u64,
}

/// The Responses half of [`StreamDecoder`](crate::stream::StreamDecoder).
#[derive(Debug, Default)]
pub(crate) struct ResponsesState {
    pub(crate) out: VecDeque<StreamEvent>,
    pub(crate) terminated: bool,
    pub(crate) cursor: ResponseCursor,
    pub(crate) model: Option<String>,
}

/// An event as far as the decoder reads it; the payloads it hands out as they are stay
/// `Value`s.
#[derive(Deserialize)]
struct Wire {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(default)]
    item_id: Option<String>,
    #[serde(default)]
    output_index: Option<u32>,
    #[serde(default)]
    content_index: Option<u32>,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    logprobs: Option<Value>,
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    item: Option<Value>,
    // `error` events.
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    param: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

impl ResponsesState {
    pub(crate) fn terminate(&mut self, ev: StreamEvent) {
        self.out.push_back(ev);
        self.terminated = true;
    }

    fn fail(&mut self, e: VllmError) {
        self.terminate(StreamEvent::Error(e));
    }

    /// One finding of the SSE parser; `false` stops parsing (a terminal event was produced).
    pub(crate) fn handle(&mut self, raw: Raw<'_>, report: &mut PushReport) -> bool {
        record::read(raw, report, true, |r| match r {
            Record::Nothing => {}
            // A gateway's chat-style end marker: without a terminal event before it, the
            // response is incomplete.
            Record::Done => self.fail(VllmError::Truncated),
            Record::Payload { name, text } => self.event(&crate::sse::lossy(name), text),
        });
        !self.terminated
    }

    fn event(&mut self, sse_name: &str, text: &str) {
        let wire = match serde_json::from_str::<Wire>(text) {
            Ok(w) => w,
            Err(e) => {
                let what = match serde_json::from_str::<Value>(text) {
                    Ok(_) => "has an unexpected shape",
                    Err(_) => "is not JSON",
                };
                return self.fail(VllmError::decode(
                    format!("Responses stream event {what}: {e}"),
                    text.as_bytes(),
                ));
            }
        };
        let kind = match (&wire.kind, sse_name) {
            (Some(k), _) => k.clone(),
            (None, n) if !n.is_empty() && n != "message" => n.to_owned(),
            (None, _) if wire.error.is_some() => "error".to_owned(),
            (None, _) => {
                return self.fail(VllmError::decode(
                    "Responses stream event without a type",
                    text.as_bytes(),
                ))
            }
        };
        if let (Some(n), Some(last)) = (wire.sequence_number, self.cursor.last_sequence_number) {
            if n <= last {
                self.cursor.replayed += 1;
                return;
            }
        }
        self.typed(kind, wire, text);
    }

    fn typed(&mut self, kind: String, w: Wire, text: &str) {
        let seq = w.sequence_number;
        let item_id = || w.item_id.clone().unwrap_or_default();
        let output_index = w.output_index.unwrap_or(0);
        let ev = match kind.as_str() {
            "response.created"
            | "response.in_progress"
            | "response.queued"
            | "response.completed"
            | "response.incomplete" => {
                let Some(raw) = w.response else {
                    return self.fail(VllmError::decode(
                        format!("{kind} without its response"),
                        text.as_bytes(),
                    ));
                };
                let response = match Response::from_json(raw) {
                    Ok(r) => Box::new(r),
                    Err(e) => return self.fail(e),
                };
                self.note_response(&response);
                match kind.as_str() {
                    "response.created" => ResponseStreamEvent::Created {
                        sequence_number: seq,
                        response,
                    },
                    "response.completed" => ResponseStreamEvent::Completed {
                        sequence_number: seq,
                        response,
                    },
                    "response.incomplete" => ResponseStreamEvent::Incomplete {
                        sequence_number: seq,
                        response,
                    },
                    _ => ResponseStreamEvent::InProgress {
                        sequence_number: seq,
                        response,
                    },
                }
            }
            "response.failed" => {
                let error = w.response.as_ref().and_then(|r| r.get("error"));
                let mut api = match error {
                    Some(e @ Value::Object(_)) => {
                        ApiError::from_stream_event(&serde_json::json!({ "error": e }))
                            .unwrap_or_else(|| ApiError::in_stream("the response failed"))
                    }
                    _ => ApiError::in_stream("the response failed"),
                };
                if api.kind.is_none() {
                    api.kind = Some("response.failed".to_owned());
                }
                return self.fail(VllmError::from(api));
            }
            "error" => {
                let api = match &w.error {
                    Some(Value::Object(_)) => {
                        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                        ApiError::from_stream_event(&v)
                    }
                    _ => None,
                };
                let api = api.unwrap_or_else(|| {
                    let mut api = ApiError::in_stream(
                        w.message
                            .clone()
                            .unwrap_or_else(|| crate::error::snippet(text.as_bytes())),
                    );
                    api.code = w.code.as_ref().and_then(value_text);
                    api.param = w.param.as_ref().and_then(value_text);
                    api
                });
                return self.fail(VllmError::from(api));
            }
            "response.output_item.added" | "response.output_item.done" => {
                let item = Box::new(OutputItem::from_json(
                    w.item.as_ref().unwrap_or(&Value::Null),
                ));
                if kind.ends_with("added") {
                    ResponseStreamEvent::OutputItemAdded {
                        sequence_number: seq,
                        output_index,
                        item,
                    }
                } else {
                    ResponseStreamEvent::OutputItemDone {
                        sequence_number: seq,
                        output_index,
                        item,
                    }
                }
            }
            "response.output_text.delta" => ResponseStreamEvent::OutputTextDelta {
                sequence_number: seq,
                item_id: item_id(),
                output_index,
                content_index: w.content_index.unwrap_or(0),
                delta: w.delta.unwrap_or_default(),
                logprobs: w.logprobs.filter(|l| !l.is_null()),
            },
            "response.output_text.done" => ResponseStreamEvent::OutputTextDone {
                sequence_number: seq,
                item_id: item_id(),
                output_index,
                content_index: w.content_index.unwrap_or(0),
                text: w.text.unwrap_or_default(),
            },
            "response.reasoning_text.delta" | "response.reasoning_summary_text.delta" => {
                ResponseStreamEvent::ReasoningTextDelta {
                    sequence_number: seq,
                    item_id: item_id(),
                    output_index,
                    delta: w.delta.unwrap_or_default(),
                }
            }
            "response.reasoning_text.done" | "response.reasoning_summary_text.done" => {
                ResponseStreamEvent::ReasoningTextDone {
                    sequence_number: seq,
                    item_id: item_id(),
                    output_index,
                    text: w.text.unwrap_or_default(),
                }
            }
            "response.function_call_arguments.delta" => {
                ResponseStreamEvent::FunctionCallArgumentsDelta {
                    sequence_number: seq,
                    item_id: item_id(),
                    output_index,
                    delta: w.delta.unwrap_or_default(),
                }
            }
            "response.function_call_arguments.done" => {
                ResponseStreamEvent::FunctionCallArgumentsDone {
                    sequence_number: seq,
                    item_id: item_id(),
                    output_index,
                    name: w.name,
                    arguments: w.arguments.unwrap_or_default(),
                }
            }
            _ => ResponseStreamEvent::Other {
                sequence_number: seq,
                data: serde_json::from_str(text).unwrap_or(Value::Null),
                kind,
            },
        };
        if seq.is_some() {
            self.cursor.last_sequence_number = seq;
        }
        let terminal = ev.is_terminal();
        self.out.push_back(StreamEvent::Response(Box::new(ev)));
        if terminal {
            self.terminate(StreamEvent::Done);
        }
    }

    fn note_response(&mut self, r: &Response) {
        if self.cursor.response_id.is_none() && !r.id.is_empty() {
            self.cursor.response_id = Some(r.id.clone());
        }
        if self.model.is_none() && !r.model.is_empty() {
            self.model = Some(r.model.clone());
        }
    }

    /// The server ignored `"stream": true` and answered with the whole response object: the
    /// events its stream would have ended with — `Created`, each output text as one
    /// `OutputTextDelta`, then `Completed` or `Incomplete` and `Done`; an error document or a
    /// failed response gives [`VllmError::Api`]; a response not done yet, or anything else, a
    /// [`VllmError::Decode`].
    pub(crate) fn document(&mut self, body: &[u8]) {
        let doc = match serde_json::from_slice::<Value>(body) {
            Ok(v) => v,
            Err(e) => {
                return self.fail(VllmError::decode(
                    format!("the JSON answer to a stream request is not JSON: {e}"),
                    body,
                ))
            }
        };
        if let Some(api) = ApiError::from_stream_event(&doc) {
            return self.fail(VllmError::from(api));
        }
        let response = match Response::from_json(doc) {
            Ok(r) => r,
            Err(e) => return self.fail(e),
        };
        self.note_response(&response);
        let terminal = match response.status.as_str() {
            "completed" => true,
            "incomplete" => false,
            "failed" => {
                let api = response
                    .error
                    .as_ref()
                    .and_then(|e| ApiError::from_stream_event(&serde_json::json!({ "error": e })))
                    .unwrap_or_else(|| ApiError::in_stream("the response failed"));
                return self.fail(VllmError::from(api));
            }
            other => {
                return self.fail(VllmError::decode(
                    format!("the JSON answer to a stream request is a response with status {other:?}, not done"),
                    body,
                ))
            }
        };
        let mut created = response.clone();
        created.output.clear();
        self.out.push_back(StreamEvent::Response(Box::new(
            ResponseStreamEvent::Created {
                sequence_number: None,
                response: Box::new(created),
            },
        )));
        for (i, item) in response.output.iter().enumerate() {
            if let OutputItem::Message { id, content, .. } = item {
                for (j, part) in content.iter().enumerate() {
                    if let crate::api::OutputContent::Text { text, .. } = part {
                        let ev = ResponseStreamEvent::OutputTextDelta {
                            sequence_number: None,
                            item_id: id.clone(),
                            output_index: u32::try_from(i).unwrap_or(u32::MAX),
                            content_index: u32::try_from(j).unwrap_or(u32::MAX),
                            delta: text.clone(),
                            logprobs: None,
                        };
                        self.out.push_back(StreamEvent::Response(Box::new(ev)));
                    }
                }
            }
        }
        let response = Box::new(response);
        let last = if terminal {
            ResponseStreamEvent::Completed {
                sequence_number: None,
                response,
            }
        } else {
            ResponseStreamEvent::Incomplete {
                sequence_number: None,
                response,
            }
        };
        self.out.push_back(StreamEvent::Response(Box::new(last)));
        self.terminate(StreamEvent::Done);
    }
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
