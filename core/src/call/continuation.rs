//! Continuing a cut chat stream on another server instead of failing it
//! ([`continue_cut_chats`](crate::client::ClientBuilder::continue_cut_chats), off by default).
//!
//! A replica that dies, restarts or stalls mid-answer takes its generation with it; nothing
//! on another server holds the rest. But a chat model continues a message it is given: vLLM's
//! `"continue_final_message": true` with `"add_generation_prompt": false` generates from the
//! end of the last (assistant) message. So when a chat stream that handed out text is cut,
//! the call sends the conversation again with that text as the start of the assistant's
//! message, and hands out only what follows:
//!
//! ```text
//!  Exchanging ── cut after text ──▶ text: every Content handed out, then the ones decoded
//!      ▲                                 and not yet read (carried, handed out first)
//!      │                              body: messages + {"role":"assistant","content":text},
//!      │                                    continue_final_message, max_tokens − chunks
//!      │                                 │ decide, as for a retry (budget, max_retries,
//!      │                                 ▼ deadline, backoff; fail-over to another endpoint)
//!      │                              Backoff ─▶ Admit (limits, breaker) ─▶ Route
//!      │                                                                      │
//!      └── Send(Resume): it holds the output at once; cut again, continued again ◀──┘
//! ```
//!
//! Only plain text continues: a stream that handed out reasoning, a tool call, another
//! choice's text, a finish reason or a raw chunk, or whose request asks for what a prefix
//! cannot carry (several choices, log probabilities, a response format, guided decoding, its
//! own `continue_final_message`), ends with the error that cut it, as without this. When the
//! continuation cannot be sent or is refused, the stream ends with the error of the first cut.

use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::contract::Purpose;
use super::resume::{by_deadline, is_cut};
use super::Call;
use crate::error::VllmError;
use crate::event::StreamEvent;
use crate::policy::Failure;
use crate::pool::EndpointId;

/// What a continuable chat stream keeps: the text it handed out, and a continuation between
/// a cut and its send.
#[derive(Debug, Default)]
pub(super) struct Continuing {
    /// The text handed out so far, across every exchange.
    text: String,
    /// Content events handed out (vLLM sends a token per chunk, usually).
    chunks: u64,
    /// The continuation's request body, from a cut until it is sent.
    pub(super) body: Option<Bytes>,
    /// The error of the first cut: the stream's last event if continuing fails.
    cut: Option<VllmError>,
    /// The endpoint of the last exchange that failed: not where its continuation goes.
    pub(super) avoid: Option<EndpointId>,
}

impl Continuing {
    /// Takes note of `ev` handed out; `false` once the stream can no longer be continued.
    fn note(&mut self, ev: &StreamEvent) -> bool {
        match ev {
            StreamEvent::Content(text) => {
                if !text.is_empty() {
                    self.text.push_str(text);
                    self.chunks += 1;
                }
                true
            }
            StreamEvent::Usage(_) | StreamEvent::Done | StreamEvent::Error(_) => true,
            _ => false,
        }
    }
}

/// Request fields a continuation cannot honour: what a prefix given as a message would break
/// (the grammar of guided decoding starts from the message's start), several choices, log
/// probabilities of tokens it would not generate, or a request continuing a message itself.
const NOT_CONTINUABLE: &[&str] = &[
    "continue_final_message",
    "logprobs",
    "top_logprobs",
    "prompt_logprobs",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "structured_outputs",
    "echo",
];

/// Whether a chat stream with request `body` may be continued after a cut.
pub(super) fn eligible(body: Option<&Value>) -> bool {
    let Some(b) = body.and_then(Value::as_object) else {
        return false;
    };
    let set = |k: &str| {
        b.get(k)
            .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
    };
    let text_format = match b.get("response_format") {
        None | Some(Value::Null) => true,
        Some(f) => f.get("type").and_then(Value::as_str) == Some("text"),
    };
    let one_choice = b
        .get("n")
        .is_none_or(|n| n.is_null() || n.as_u64() == Some(1));
    b.get("messages").is_some_and(Value::is_array)
        && one_choice
        && text_format
        && !NOT_CONTINUABLE.iter().any(|k| set(k))
}

/// The body of the continuation of `original` after `text` (`chunks` content events):
/// `None` when it has no room left for a token.
pub(super) fn continuation_body(original: &[u8], text: &str, chunks: u64) -> Option<Bytes> {
    let mut body: Map<String, Value> = serde_json::from_slice(original).ok()?;
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(max) = body.get(key).and_then(Value::as_u64) {
            let left = max.checked_sub(chunks).filter(|&l| l > 0)?;
            body.insert(key.to_owned(), json!(left));
        }
    }
    body.get_mut("messages")?
        .as_array_mut()?
        .push(json!({"role": "assistant", "content": text}));
    body.insert("continue_final_message".to_owned(), Value::Bool(true));
    body.insert("add_generation_prompt".to_owned(), Value::Bool(false));
    serde_json::to_vec(&body).ok().map(Bytes::from)
}

impl Call {
    /// `ev` goes to the caller: a continuable stream keeps its text.
    pub(super) fn note_continuable(&mut self, ev: &StreamEvent) {
        if let Some(c) = self.continuing.as_deref_mut() {
            if !c.note(ev) {
                self.continuing = None;
            }
        }
    }

    /// Exchange `i`, which holds the output of a chat stream, failed with `failure`: continue
    /// the stream when it can be (then the call decides as for a retry). Gives `error` back
    /// when it cannot.
    pub(super) fn try_continue(
        &mut self,
        i: usize,
        now: Instant,
        failure: &Failure,
        error: VllmError,
    ) -> Result<(), VllmError> {
        let (Some(c), Ok(template)) = (self.continuing.as_deref(), &self.request) else {
            return Err(error);
        };
        let ex = &self.exchanges[i];
        // A continuation that handed out nothing may fail any way (a 503 is retried, a 400
        // ends the stream); a stream that is flowing is continued after a cut only.
        let fresh = ex.purpose == Purpose::Resume && ex.first_data.is_none();
        if by_deadline(failure) || !(fresh || is_cut(failure)) {
            return Err(error);
        }
        // The text is what was handed out, then what was decoded and is not read yet (it is
        // handed out before the continuation's).
        let mut text = c.text.clone();
        let mut chunks = c.chunks;
        for ev in ex.events.iter() {
            match ev {
                StreamEvent::Content(t) if !t.is_empty() => {
                    text.push_str(t);
                    chunks += 1;
                }
                StreamEvent::Content(_) | StreamEvent::Usage(_) => {}
                _ => return Err(error),
            }
        }
        if text.is_empty() {
            return Err(error);
        }
        let Some(body) = continuation_body(template.body(), &text, chunks) else {
            return Err(error);
        };
        let endpoint = ex.endpoint;
        let Some(c) = self.continuing.as_deref_mut() else {
            return Err(error);
        };
        c.body = Some(body);
        c.avoid = Some(endpoint);
        let cut = c.cut.get_or_insert_with(|| error.clone()).clone();
        self.hand_cut_to_retry(i, now, failure, error, cut);
        Ok(())
    }

    /// The continuation to send, if a cut stream waits for one, and the endpoint it avoids.
    pub(super) fn take_continuation(&mut self) -> Option<(Bytes, Option<EndpointId>)> {
        let c = self.continuing.as_deref_mut()?;
        Some((c.body.take()?, c.avoid))
    }

    /// The call is over with an error after a cut stream handed out text: the stream ends
    /// with the error of the first cut, as its last event.
    pub(super) fn end_continued_stream(&mut self) -> bool {
        let Some(cut) = self.continuing.as_deref_mut().and_then(|c| c.cut.take()) else {
            return false;
        };
        self.continuing = None;
        self.carry.push_back(StreamEvent::Error(cut));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{content, head, host, ms, pool, sse, Wire, DONE};
    use super::super::{Action, AttemptId, Call, CallSpec, Event, Purpose, TransportErrorKind};
    use super::{continuation_body, eligible};
    use crate::config::ClientConfig;
    use crate::event::StreamEvent;
    use crate::policy::{Backoff, Jitter};
    use crate::request::Operation;
    use crate::stream::StreamKind;
    use serde_json::{json, Value};

    fn config(on: bool) -> ClientConfig {
        let mut c = pool(2);
        c.policy.continue_chats = on;
        c.policy.retry.backoff = Backoff {
            initial: ms(10),
            max: ms(10),
            multiplier: 1,
            jitter: Jitter::None,
        };
        c
    }

    fn spec() -> CallSpec {
        CallSpec::stream(
            Operation::ChatCompletions,
            StreamKind::Chat,
            Ok(
                json!({"model": "m", "messages": [{"role": "user", "content": "count"}], "max_tokens": 10}),
            ),
        )
    }

    fn reset(attempt: AttemptId) -> Event {
        Event::TransportError {
            attempt,
            kind: TransportErrorKind::Io,
            message: "connection reset".into(),
            source: None,
        }
    }

    fn texts(events: &[StreamEvent]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Content(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// A call whose stream handed out `chunks` on its first endpoint, then was cut at 5 ms:
    /// the call, that endpoint's host, and the next action that is not a wait (the backoff
    /// passed).
    fn cut_after(w: &mut Wire, chunks: &[&str]) -> (Call, String, Action, Vec<StreamEvent>) {
        let mut a = w.call(spec());
        let first = w.next(&mut a, 0);
        let Action::Send { attempt, .. } = first else {
            panic!("{first:?}")
        };
        let host1 = host(&first);
        let (events, _) = w.answer(&mut a, 0, attempt, sse(), chunks, false);
        w.handle(&mut a, 5, reset(attempt));
        let next = past_waits(w, &mut a, 5);
        (a, host1, next, events)
    }

    /// The next action from `t` on that is not a wait, each wait's timer fired at its time.
    fn past_waits(w: &mut Wire, a: &mut Call, mut t: u64) -> Action {
        loop {
            match w.next(a, t) {
                Action::Wait { until: Some(u), .. } => {
                    t = u.duration_since(w.at(0)).as_millis() as u64;
                    w.handle(a, t, Event::Timeout);
                }
                other => return other,
            }
        }
    }

    #[test]
    fn a_cut_chat_stream_goes_on_from_its_text_on_another_server() {
        let mut w = Wire::new(config(true));
        let (mut a, host1, next, events) = cut_after(&mut w, &[&content("1 "), &content("2 ")]);
        assert_eq!(texts(&events), ["1 ", "2 "]);
        let Action::Send {
            attempt,
            purpose,
            request,
            ..
        } = &next
        else {
            panic!("expected the continuation: {next:?}")
        };
        assert_eq!(*purpose, Purpose::Resume);
        assert_ne!(host(&next), host1, "the continuation fails over");
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": "1 2 "})
        );
        assert_eq!(body["continue_final_message"], json!(true));
        assert_eq!(body["max_tokens"], json!(8));
        let attempt = *attempt;
        let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        let (rest, end) = w.answer(
            &mut a,
            20,
            attempt,
            sse(),
            &[role, &content("3 "), &content("4"), DONE],
            true,
        );
        // Only the new text, then the end: nothing lost, nothing twice, no error.
        assert_eq!(texts(&rest), ["3 ", "4"]);
        assert!(matches!(rest.last(), Some(StreamEvent::Done)), "{rest:?}");
        assert!(matches!(end, Action::Done(Ok(_))), "{end:?}");
        assert_eq!(a.report().resumes, 1);
    }

    #[test]
    fn a_continuation_cut_again_goes_on_from_all_the_text() {
        let mut w = Wire::new(config(true));
        let (mut a, _, next, _) = cut_after(&mut w, &[&content("1 ")]);
        let Action::Send { attempt, .. } = next else {
            panic!("{next:?}")
        };
        let (events, _) = w.answer(&mut a, 20, attempt, sse(), &[&content("2 ")], false);
        assert_eq!(texts(&events), ["2 "]);
        w.handle(&mut a, 25, reset(attempt));
        let next = past_waits(&mut w, &mut a, 25);
        let Action::Send { request, .. } = &next else {
            panic!("{next:?}")
        };
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(body["messages"].as_array().unwrap().len(), 2);
        assert_eq!(body["messages"][1]["content"], json!("1 2 "));
        assert_eq!(body["max_tokens"], json!(8));
    }

    #[test]
    fn a_refused_continuation_ends_the_stream_with_the_first_cut() {
        let mut w = Wire::new(config(true));
        let (mut a, _, next, _) = cut_after(&mut w, &[&content("1 ")]);
        let Action::Send { attempt, .. } = next else {
            panic!("{next:?}")
        };
        let bad = head(400, "application/json", &[]);
        let (events, end) = w.answer(
            &mut a,
            20,
            attempt,
            bad,
            &[r#"{"error":{"message":"no","type":"BadRequestError","code":400}}"#],
            true,
        );
        assert!(
            matches!(events.as_slice(), [StreamEvent::Error(e)] if matches!(e, crate::error::VllmError::Truncated)),
            "{events:?}"
        );
        assert!(matches!(end, Action::Done(Ok(_))), "{end:?}");
    }

    #[test]
    fn without_the_knob_or_after_reasoning_a_cut_ends_the_stream() {
        let reasoning =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hm\"}}]}\n\n";
        for (on, chunks) in [
            (false, vec![content("1 ")]),
            (true, vec![reasoning.to_owned(), content("1 ")]),
        ] {
            let mut w = Wire::new(config(on));
            let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
            let (a, _, next, _) = cut_after(&mut w, &chunks);
            assert!(
                matches!(&next, Action::Emit(StreamEvent::Error(e)) if matches!(e, crate::error::VllmError::Truncated)),
                "{on}: {next:?}"
            );
            assert_eq!(a.report().resumes, 0);
        }
    }

    /// Runs from `t` until the next send, firing each wait's timer and keeping what is
    /// emitted on the way (carried events go out before the continuation is sent).
    fn until_send(w: &mut Wire, a: &mut Call, t: u64, got: &mut Vec<StreamEvent>) -> Action {
        let mut t = t;
        loop {
            match w.next(a, t) {
                Action::Wait { until: Some(u), .. } => {
                    t = u.duration_since(w.at(0)).as_millis() as u64;
                    w.handle(a, t, Event::Timeout);
                }
                Action::Emit(ev) => got.push(ev),
                other => return other,
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// However often a stream is cut — the connection reset, the body ended early, the
        /// idle timer fired — and after however many events, the caller reads the whole text
        /// once, then `Done`: each exchange's server generates from where its request's
        /// assistant message ends, as vLLM does.
        #[test]
        fn a_continued_stream_hands_out_its_whole_text_once(
            n in 2u32..14,
            cuts in proptest::collection::vec((0u32..5, 0u8..3), 1..4),
        ) {
            let mut c = config(true);
            c.policy.retry.max_retries = 10;
            c.policy.timeouts.idle = Some(ms(1000));
            let mut w = Wire::new(c);
            let full: String = (0..n).map(|k| format!("t{k} ")).collect();
            let mut a = w.call(CallSpec::stream(
                Operation::ChatCompletions,
                StreamKind::Chat,
                Ok(json!({"model": "m", "messages": [{"role": "user", "content": "go"}], "max_tokens": n})),
            ));
            let mut got = Vec::new();
            let mut t = 0;
            let mut action = until_send(&mut w, &mut a, t, &mut got);
            let mut cuts = cuts.into_iter();
            let token = |k: u32| content(&format!("t{k} "));
            loop {
                let Action::Send { attempt, request, .. } = action else {
                    panic!("expected a send, got {action:?} after {got:?}")
                };
                // The server: from the end of the assistant's message, up to max_tokens more.
                let body: Value = serde_json::from_slice(request.body()).unwrap();
                let left = body["max_tokens"].as_u64().unwrap() as u32;
                let start = n - left;
                let prefix = body["messages"].as_array().unwrap().get(1).map(|m| m["content"].clone());
                let have: String = (0..start).map(|k| format!("t{k} ")).collect();
                proptest::prop_assert_eq!(prefix.unwrap_or(json!("")), json!(have));
                w.handle(&mut a, t, Event::Response { attempt, head: sse() });
                match cuts.next() {
                    Some((handed, how)) if start + handed < n => {
                        let read: Vec<String> = (start..start + handed).map(token).collect();
                        let read: Vec<&str> = read.iter().map(String::as_str).collect();
                        let (events, waiting) = w.feed(&mut a, t, attempt, &read, false);
                        got.extend(events);
                        // Reading: the read asked for, or the wait that follows it.
                        let deadline = match waiting {
                            Action::ReadBody { deadline, .. } => deadline,
                            Action::Wait { until, .. } => until,
                            other => panic!("expected a read, got {other:?}"),
                        };
                        t += 5;
                        let cut = match how {
                            0 => reset(attempt),
                            1 => Event::BodyEnd { attempt },
                            _ => {
                                t = deadline.unwrap().duration_since(w.at(0)).as_millis() as u64;
                                Event::Timeout
                            }
                        };
                        w.handle(&mut a, t, cut);
                        action = until_send(&mut w, &mut a, t, &mut got);
                    }
                    _ => {
                        let rest: Vec<String> = (start..n).map(token).collect();
                        let mut rest: Vec<&str> = rest.iter().map(String::as_str).collect();
                        rest.push(DONE);
                        let (events, end) = w.feed(&mut a, t, attempt, &rest, true);
                        got.extend(events);
                        proptest::prop_assert!(matches!(end, Action::Done(Ok(_))), "{:?}", end);
                        break;
                    }
                }
            }
            let text: String = texts(&got).concat();
            proptest::prop_assert_eq!(text, full);
            let ends: Vec<&StreamEvent> = got.iter().filter(|e| e.is_terminal()).collect();
            proptest::prop_assert!(matches!(ends.as_slice(), [StreamEvent::Done]), "{:?}", got);
        }
    }

    #[test]
    fn plain_chat_requests_are_continuable_and_the_rest_are_not() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        assert!(eligible(Some(&base)));
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        assert!(eligible(Some(&with("n", json!(1)))));
        assert!(eligible(Some(&with("logprobs", json!(false)))));
        assert!(eligible(Some(&with(
            "response_format",
            json!({"type": "text"})
        ))));
        assert!(eligible(Some(&with("tools", json!([])))));
        for (k, v) in [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("top_logprobs", json!(3)),
            ("response_format", json!({"type": "json_object"})),
            ("guided_json", json!({})),
            ("guided_choice", json!(["a", "b"])),
            ("structured_outputs", json!({"regex": "a+"})),
            ("continue_final_message", json!(true)),
            ("messages", json!("hi")),
        ] {
            assert!(!eligible(Some(&with(k, v.clone()))), "{k}: {v}");
        }
        assert!(!eligible(None));
        assert!(!eligible(Some(&json!([1]))));
    }

    #[test]
    fn the_continuation_asks_for_the_rest_of_the_assistants_message() {
        let original = json!({
            "model": "m",
            "messages": [{"role": "user", "content": "count"}],
            "max_tokens": 10,
            "max_completion_tokens": 12,
            "stream": true,
        });
        let bytes = serde_json::to_vec(&original).unwrap();
        let body = continuation_body(&bytes, "1 2 3", 3).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["messages"],
            json!([
                {"role": "user", "content": "count"},
                {"role": "assistant", "content": "1 2 3"},
            ])
        );
        assert_eq!(v["continue_final_message"], json!(true));
        assert_eq!(v["add_generation_prompt"], json!(false));
        assert_eq!(v["max_tokens"], json!(7));
        assert_eq!(v["max_completion_tokens"], json!(9));
        assert_eq!(v["stream"], json!(true));
        // No room left for a token: nothing to continue.
        assert!(continuation_body(&bytes, "1 2 3", 10).is_none());
        assert!(continuation_body(b"not json", "x", 1).is_none());
    }
}
