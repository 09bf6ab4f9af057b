//! A hand-driven transport for the phase tests: the contract's loop, with the answers given
//! inline and every taking of the shared state counted.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::{Action, AttemptId, Call, CallSpec, Event, ResponseHead, Shared};
use crate::config::ClientConfig;
use crate::event::StreamEvent;
use crate::request::Operation;
use crate::stream::StreamKind;

pub(super) struct Wire {
    pub(super) config: ClientConfig,
    pub(super) shared: Shared,
    pub(super) t0: Instant,
    /// How often a call took the shared state.
    pub(super) locks: usize,
    /// Attempts closed, in order.
    pub(super) closed: Vec<AttemptId>,
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Wire {
    pub(super) fn new(config: ClientConfig) -> Wire {
        let shared = Shared::new(&config, 1);
        Wire {
            config,
            shared,
            t0: Instant::now(),
            locks: 0,
            closed: Vec::new(),
        }
    }

    pub(super) fn at(&self, ms_: u64) -> Instant {
        self.t0 + ms(ms_)
    }

    pub(super) fn call(&mut self, spec: CallSpec) -> Call {
        Call::new(&self.config, spec, self.t0, &mut self.shared)
    }

    /// The next action at `t` ms, through `poll_with` (the production path); closes are
    /// recorded and skipped.
    pub(super) fn next(&mut self, call: &mut Call, t: u64) -> Action {
        let now = self.at(t);
        loop {
            let (locks, shared) = (&mut self.locks, &mut self.shared);
            match call.poll_with(now, || {
                *locks += 1;
                &mut *shared
            }) {
                Action::Close { attempt } => self.closed.push(attempt),
                other => return other,
            }
        }
    }

    /// The next action must be a send: its attempt.
    pub(super) fn send(&mut self, call: &mut Call, t: u64) -> AttemptId {
        match self.next(call, t) {
            Action::Send { attempt, .. } => attempt,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    /// Sends a stream's request at `t` ms and reports its head at once (vLLM does): the call
    /// asks for the body next. The attempt.
    pub(super) fn stream_started(&mut self, call: &mut Call, t: u64) -> AttemptId {
        let attempt = self.send(call, t);
        let head = sse();
        self.handle(call, t, Event::Response { attempt, head });
        let read = self.next(call, t);
        assert!(matches!(read, Action::ReadBody { .. }), "{read:?}");
        attempt
    }

    /// Reports `event` at `t` ms.
    pub(super) fn handle(&mut self, call: &mut Call, t: u64, event: Event) {
        call.handle(self.at(t), event);
    }

    /// Reports `head` for `attempt` at `t`, then answers each read with the next chunk and,
    /// once they are used up, the body's end when `end`. Returns the events emitted and the
    /// first action that is not a read, an emit or a close.
    pub(super) fn answer(
        &mut self,
        call: &mut Call,
        t: u64,
        attempt: AttemptId,
        head: ResponseHead,
        chunks: &[&str],
        end: bool,
    ) -> (Vec<StreamEvent>, Action) {
        self.handle(call, t, Event::Response { attempt, head });
        self.feed(call, t, attempt, chunks, end)
    }

    /// As [`answer`](Self::answer) after the head.
    pub(super) fn feed(
        &mut self,
        call: &mut Call,
        t: u64,
        attempt: AttemptId,
        chunks: &[&str],
        end: bool,
    ) -> (Vec<StreamEvent>, Action) {
        let mut chunks = chunks.iter();
        let mut events = Vec::new();
        loop {
            match self.next(call, t) {
                Action::ReadBody { attempt: a, .. } if a == attempt => match chunks.next() {
                    Some(c) => {
                        let bytes = Bytes::copy_from_slice(c.as_bytes());
                        self.handle(call, t, Event::Chunk { attempt, bytes })
                    }
                    None if end => self.handle(call, t, Event::BodyEnd { attempt }),
                    None => return (events, self.next(call, t)),
                },
                Action::Emit(ev) => events.push(ev),
                other => return (events, other),
            }
        }
    }
}

pub(super) fn head(
    status: u16,
    content_type: &'static str,
    extra: &[(&'static str, &str)],
) -> ResponseHead {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    for (k, v) in extra {
        h.insert(*k, HeaderValue::from_str(v).expect("a header"));
    }
    let status = StatusCode::from_u16(status).expect("a status");
    ResponseHead::new(status, h, SystemTime::UNIX_EPOCH)
}

pub(super) fn sse() -> ResponseHead {
    head(200, "text/event-stream", &[])
}

pub(super) fn content(text: &str) -> String {
    format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n")
}

pub(super) const DONE: &str = "data: [DONE]\n\n";

pub(super) fn chat_stream() -> CallSpec {
    CallSpec::stream(
        Operation::ChatCompletions,
        StreamKind::Chat,
        Ok(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})),
    )
}

pub(super) fn chat_json() -> CallSpec {
    CallSpec::json(
        Operation::ChatCompletions,
        Ok(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})),
    )
}

/// A config with `n` endpoints `http://10.0.0.<i>:8000/v1` and a fixed seed.
pub(super) fn pool(n: usize) -> ClientConfig {
    let mut c = ClientConfig::default();
    c.request.endpoints = (0..n)
        .map(|i| format!("http://10.0.0.{i}:8000/v1").into())
        .collect();
    c.policy.seed = Some(1);
    c
}

/// The host an action's request goes to.
pub(super) fn host(action: &Action) -> String {
    match action {
        Action::Send { request, .. } => request.uri().host().unwrap_or("").to_owned(),
        other => panic!("expected a send, got {other:?}"),
    }
}
