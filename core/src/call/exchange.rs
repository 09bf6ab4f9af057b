//! The exchange phase: one request in flight and its answer — the head, the body, the decoder —
//! and the deadlines that bound them. A call holds one exchange at a time, or two while a
//! hedge races the first attempt, and a health probe beside them.
//!
//! ```text
//!  Send ──▶ Sending ──Response──▶ Idle ──ReadBody──▶ Reading ──Chunk──▶ Idle ─┐
//!              │                    ▲                   │                      │ (decode)
//!              │                    └───────────────────┴──────────────────────┘
//!              │ TransportError / timer           BodyEnd / terminal event
//!              ▼                                          ▼
//!           failed (settle)                    Ended (its events wait to be emitted)
//! ```

use crate::queue::InlineQueue;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::body::{Body, StreamBody, MAX_ERROR_BODY};
use super::contract::{Action, AttemptId, Purpose, ResponseHead};
use super::observe::{ErrorType, ResponseInfo};
use super::owed::Owed;
use super::Call;
use crate::error::{ApiError, VllmError};
use crate::event::StreamEvent;
use crate::policy::{
    parse_retry_after, BodyClock, BreakerPermit, ConcurrencyPermit, Failure, RateLimitSnapshot,
    TimeoutKind,
};
use crate::pool::{EndpointId, Ticket};
use crate::request::Operation;
use crate::stream::StreamDecoder;

/// What the transport is doing for an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Io {
    /// Its request is being sent; the head is awaited.
    Sending,
    /// Nothing: the call may ask for the next chunk.
    Idle,
    /// The next chunk is being read.
    Reading,
    /// The body is over (or the exchange failed after output): nothing more is read; events
    /// may still wait to be emitted.
    Ended,
}

/// One request of a call and its answer.
#[derive(Debug)]
// `repr(C)`: what a streamed chunk reads first (see `Call`'s layout).
#[repr(C)]
pub(super) struct Exchange {
    pub(super) id: AttemptId,
    pub(super) io: Io,
    pub(super) purpose: Purpose,
    /// Whether what it says about its endpoint and the breaker was recorded (once).
    pub(super) judged: bool,
    /// Decoded events not yet handed to the caller.
    pub(super) events: InlineQueue<StreamEvent>,
    pub(super) last_activity: Instant,
    pub(super) first_data: Option<Instant>,
    pub(super) start: Instant,
    /// A health probe's own deadline.
    pub(super) probe_deadline: Option<Instant>,
    /// Last of what a chunk reads: a stream's decoder is inline.
    pub(super) body: Option<Body>,
    /// The user-visible attempt number (1-based; hedges count); 0 for a health probe.
    pub(super) number: u32,
    pub(super) endpoint: EndpointId,
    /// Its hold on the endpoint, until the exchange ends.
    pub(super) ticket: Option<Ticket>,
    /// Its breaker permit, until its outcome is known.
    pub(super) breaker: Option<BreakerPermit>,
    /// A hedge's own concurrency slot.
    pub(super) slot: Option<ConcurrencyPermit>,
    /// Its head. A successful one keeps no headers: a stream would hold them for its whole
    /// life, and all that is read of them later is `hint`.
    pub(super) head: Option<ResponseHead>,
    pub(super) head_at: Option<Instant>,
    /// How long its server asked to be left alone (its `Retry-After`, or the reset of a spent
    /// rate-limit quota), read from the head when it arrived.
    pub(super) hint: Option<Duration>,
}

impl Exchange {
    pub(super) fn new(
        id: AttemptId,
        purpose: Purpose,
        number: u32,
        endpoint: EndpointId,
        ticket: Ticket,
        now: Instant,
    ) -> Exchange {
        Exchange {
            id,
            purpose,
            number,
            endpoint,
            ticket: Some(ticket),
            breaker: None,
            slot: None,
            start: now,
            head: None,
            head_at: None,
            hint: None,
            body: None,
            first_data: None,
            last_activity: now,
            io: Io::Sending,
            events: InlineQueue::new(),
            judged: false,
            probe_deadline: None,
        }
    }

    /// A user request (an attempt or a hedge), as opposed to a health probe.
    pub(super) fn is_user(&self) -> bool {
        self.purpose != Purpose::HealthProbe
    }

    /// Whether the call may ask for the next chunk: the head arrived, nothing is being read,
    /// and the events already decoded were handed out (no read-ahead while they wait).
    pub(super) fn wants_read(&self) -> bool {
        self.io == Io::Idle && self.body.is_some() && self.events.is_empty()
    }

    /// Time to first byte: to the first data event, or to the last activity.
    pub(super) fn ttfb(&self) -> Duration {
        self.first_data
            .unwrap_or(self.last_activity)
            .saturating_duration_since(self.start)
    }
}

impl Call {
    /// The deadline of exchange `i`'s current operation, and the timer it is.
    pub(super) fn exchange_deadline(&self, i: usize) -> Option<(Instant, TimeoutKind)> {
        let ex = &self.exchanges[i];
        if let Some(d) = ex.probe_deadline {
            return matches!(ex.io, Io::Sending).then_some((d, TimeoutKind::Attempt));
        }
        let t = &self.policy.timeouts;
        match ex.io {
            Io::Sending => t.head_deadline(ex.start, self.stream.is_some(), self.deadline),
            Io::Reading => {
                // No body: nothing is read.
                let body = ex.body.as_ref()?;
                let clock = match (body, ex.first_data) {
                    (Body::Stream(_), None) => BodyClock::AwaitingFirstData,
                    _ => BodyClock::LastActivity(ex.last_activity),
                };
                t.body_deadline(ex.start, clock, self.deadline)
            }
            Io::Idle | Io::Ended => None,
        }
    }

    /// The response head of exchange `i` arrived.
    pub(super) fn on_head(&mut self, i: usize, now: Instant, head: ResponseHead) {
        if self.exchanges[i].purpose == Purpose::HealthProbe {
            self.end_probe(i, now, crate::pool::ProbeResult::answered(&head));
            return;
        }
        let number = self.exchanges[i].number;
        self.obs.head(number, head.status);
        let body = if !head.status.is_success() {
            Body::Error(Vec::new())
        } else if let Some(kind) = self.stream {
            let mut decoder = StreamDecoder::new(kind).with_limits(self.policy.sse_limits);
            if let (true, Some(r)) = (self.is_resume(i), &self.resume) {
                decoder = decoder.resuming(r.cursor.clone());
            }
            match StreamBody::of(&head.headers) {
                StreamBody::EventStream => Body::Stream(decoder),
                // A whole response instead of the rest of a resumed stream would hand out its
                // text again: a resume reads events only.
                StreamBody::Json if !self.is_resume(i) => {
                    Body::Document(Box::new(decoder), Vec::new())
                }
                StreamBody::Json => Body::Foreign("application/json".into(), Vec::new()),
                StreamBody::Other(content_type) => Body::Foreign(content_type, Vec::new()),
            }
        } else {
            Body::Json(Vec::new())
        };
        // What the server says about its limits: kept in the report (and in an error), and a
        // spent quota holds the next calls of the client until it refills.
        let rate_limit = RateLimitSnapshot::parse(&head.headers, head.received_at);
        if rate_limit.is_some() {
            self.report.rate_limit = rate_limit;
        }
        let reset = rate_limit.and_then(|r| r.wait());
        if let Some(wait) = reset {
            let until = crate::policy::clock::saturating_add(now, wait);
            self.owed.push(Owed::RateGate { until });
        }
        let retry_after = parse_retry_after(&head.headers, head.received_at).map(|h| h.delay);
        let mut head = head;
        if head.status.is_success() {
            head.headers = http::HeaderMap::new();
        }
        let ex = &mut self.exchanges[i];
        ex.hint = retry_after.max(reset);
        ex.body = Some(body);
        ex.head = Some(head);
        ex.head_at = Some(now);
        ex.last_activity = now;
        ex.io = Io::Idle;
    }

    /// A chunk of exchange `i`'s body.
    pub(super) fn on_chunk(&mut self, i: usize, now: Instant, bytes: &Bytes) {
        let max_body = self.policy.max_body_bytes;
        let ex = &mut self.exchanges[i];
        ex.io = Io::Idle;
        if bytes.is_empty() {
            return;
        }
        match ex.body.as_mut() {
            Some(Body::Json(buf) | Body::Document(_, buf)) => {
                ex.last_activity = now;
                if buf.len().saturating_add(bytes.len()) > max_body {
                    let e = VllmError::decode(
                        format!("the response body exceeds {max_body} bytes"),
                        buf,
                    );
                    let failure = Failure::Decode {
                        output_started: false,
                    };
                    self.fail_exchange(i, now, failure, e);
                    return;
                }
                buf.extend_from_slice(bytes);
            }
            Some(Body::Error(buf) | Body::Foreign(_, buf)) => {
                ex.last_activity = now;
                let room = MAX_ERROR_BODY.saturating_sub(buf.len());
                buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Some(Body::Stream(dec)) => {
                let report = dec.push(bytes);
                if !self.model_seen {
                    if self.obs.response.model.is_none() {
                        self.obs.response.model = dec.model().map(str::to_owned);
                    }
                    self.model_seen = self.obs.response.model.is_some();
                }
                if report.has_data() {
                    ex.last_activity = now;
                    if ex.first_data.is_none() {
                        ex.first_data = Some(now);
                        self.on_first_data(i, now);
                    }
                }
                self.drain_decoder(i, now);
            }
            None => {}
        }
    }

    /// The first data event of exchange `i` arrived (an in-band error counts: the idle timer
    /// runs from it).
    fn on_first_data(&mut self, i: usize, now: Instant) {
        let number = self.exchanges[i].number;
        self.obs.first_chunk(number, now);
    }

    /// Exchange `i` decoded its first event that is not an error: the server is generating.
    /// That is the breaker's and the endpoint's success signal, and the adaptive limit's and
    /// the hedge delay's sample (the time to its first data event).
    fn on_generating(&mut self, i: usize, now: Instant) {
        if self.exchanges[i].judged {
            return;
        }
        let ttfb = self.exchanges[i].ttfb();
        if self.is_resume(i) {
            // The rest of a stream says the server is up, not how fast it starts one.
            self.judge_success(i, now, ttfb, None);
            return;
        }
        self.judge_success(i, now, ttfb, Some(ttfb));
        if self.exchanges[i].purpose == Purpose::Attempt && self.policy.pool.hedge.is_some() {
            self.owed.push(Owed::FirstToken { ttft: ttfb });
        }
        let endpoint = self.exchanges[i].endpoint;
        self.limit_sample(now, Some(endpoint), |prompt_bytes| {
            crate::policy::LimitSample::FirstToken {
                ttft: ttfb,
                prompt_bytes,
            }
        });
    }

    /// Exchange `i`'s body ended cleanly.
    pub(super) fn on_body_end(&mut self, i: usize, now: Instant) {
        let Some(body) = self.exchanges[i].body.take() else {
            return;
        };
        let Some(head) = self.exchanges[i].head.clone() else {
            return;
        };
        self.exchanges[i].io = Io::Idle;
        match body {
            Body::Json(buf) => {
                self.obs.response = match self.operation {
                    Operation::Responses | Operation::RetrieveResponse => {
                        ResponseInfo::from_response_json(&buf)
                    }
                    op if op.counts_tokens() => ResponseInfo::from_json(&buf),
                    _ => ResponseInfo::default(),
                };
                let ex = &self.exchanges[i];
                // Time to the head: a non-streamed answer's head comes when it is done.
                let to_head = ex.head_at.map(|h| h.saturating_duration_since(ex.start));
                let ttfb = ex.ttfb();
                self.judge_success(i, now, ttfb, to_head);
                self.owed.push(Owed::BudgetReward { at: now });
                self.end_exchange(i, now, None);
                self.finish(now, Ok(Bytes::from(buf)));
            }
            Body::Error(buf) => {
                let hint = parse_retry_after(&head.headers, head.received_at).map(|h| h.delay);
                let api = ApiError::from_response(head.status, &buf)
                    .with_retry_after(hint)
                    .with_rate_limit(RateLimitSnapshot::parse(&head.headers, head.received_at));
                let failure = Failure::Status {
                    status: head.status,
                    headers: head.headers,
                };
                self.fail_exchange(i, now, failure, VllmError::from(api));
            }
            Body::Stream(mut dec) => {
                dec.finish();
                self.exchanges[i].body = Some(Body::Stream(dec));
                self.drain_decoder(i, now);
                // `finish` always ends with a terminal event: the exchange ended in it.
            }
            Body::Document(mut dec, buf) => {
                // The server ignored `stream: true`: its whole answer is one document, turned
                // into the events its stream would have carried, so the caller's loop works.
                dec.push_document(&buf);
                let ex = &mut self.exchanges[i];
                ex.first_data = Some(now);
                ex.body = Some(Body::Stream(*dec));
                self.on_first_data(i, now);
                self.drain_decoder(i, now);
            }
            Body::Foreign(content_type, buf) => {
                let e = VllmError::decode(
                    format!(
                        "a stream was asked for, but the server answered {} with Content-Type {content_type:?}",
                        head.status
                    ),
                    &buf,
                );
                let failure = Failure::Decode {
                    output_started: false,
                };
                self.fail_exchange(i, now, failure, e);
            }
        }
    }

    /// Moves exchange `i`'s decoded events to its queue. A terminal error before any of its
    /// events reached the caller is an attempt failure (it may be retried) instead: the events
    /// decoded with it are dropped, so a retry cannot duplicate them.
    fn drain_decoder(&mut self, i: usize, now: Instant) {
        loop {
            let ex = &mut self.exchanges[i];
            let Some(Body::Stream(dec)) = ex.body.as_mut() else {
                return;
            };
            let Some(ev) = dec.poll_event() else { return };
            let committed = self.committed == Some(ex.id) && self.output_started;
            match ev {
                StreamEvent::Error(e) if !committed => {
                    ex.events.clear();
                    ex.body = None;
                    let failure = match &e {
                        VllmError::Truncated => Failure::Truncated {
                            output_started: false,
                        },
                        VllmError::Api(api) => Failure::StreamError {
                            code: api.code.as_deref().and_then(|c| c.parse().ok()),
                            output_started: false,
                        },
                        _ => Failure::Decode {
                            output_started: false,
                        },
                    };
                    self.fail_exchange(i, now, failure, e);
                    return;
                }
                StreamEvent::Done => {
                    ex.events.push_back(StreamEvent::Done);
                    ex.body = None;
                    self.owed.push(Owed::BudgetReward { at: now });
                    self.on_generating(i, now);
                    self.end_exchange_io(i, now, None);
                    return;
                }
                StreamEvent::Error(e) => {
                    // A body that ended before its terminal event: a resumable stream goes on.
                    let e = match e {
                        VllmError::Truncated => {
                            let cut = Failure::Truncated {
                                output_started: true,
                            };
                            match self.try_resume(i, now, &cut, VllmError::Truncated) {
                                Ok(()) => return,
                                Err(e) => e,
                            }
                        }
                        e => e,
                    };
                    // Mid-stream: the caller gets the error as the stream's last event. (The
                    // exchange was judged at its first data event: a stream that fails after
                    // its first token is reported to the caller, not held against the server.)
                    let failure = Failure::StreamError {
                        code: None,
                        output_started: true,
                    };
                    let ex = &mut self.exchanges[i];
                    ex.events.push_back(StreamEvent::Error(e));
                    ex.body = None;
                    self.judge_failure(i, now, &failure);
                    let error = Some(failure.error_type());
                    self.end_exchange_io(i, now, error);
                    return;
                }
                other => {
                    ex.events.push_back(other);
                    self.on_generating(i, now);
                }
            }
        }
    }

    /// The next event for the caller, from the exchange that holds the output (the first one
    /// to have an event commits: the others are closed before any of their events is seen).
    pub(super) fn emit(&mut self, now: Instant) -> Option<Action> {
        if let Some(ev) = self.carry.pop_front() {
            return Some(self.hand_out(now, ev));
        }
        let i = match self.committed {
            Some(id) => self.exchanges.iter().position(|e| e.id == id)?,
            None => {
                let i = self.exchanges.iter().position(|e| !e.events.is_empty())?;
                self.commit(i, now);
                self.exchanges.iter().position(|e| !e.events.is_empty())?
            }
        };
        let id = self.exchanges[i].id;
        if self.exchanges[i]
            .events
            .front()
            .is_some_and(StreamEvent::is_terminal)
        {
            // Whatever else is still open (a health probe beside the attempt) is closed
            // before the terminal event.
            for j in (0..self.exchanges.len()).rev() {
                if self.exchanges[j].id != id && self.exchanges[j].io != Io::Ended {
                    self.end_exchange(j, now, None);
                }
            }
            if let Some(attempt) = self.closes.pop_front() {
                return Some(Action::Close { attempt });
            }
        }
        let i = self.exchanges.iter().position(|e| e.id == id)?;
        let ev = self.exchanges[i].events.pop_front()?;
        if self.exchanges[i].io == Io::Ended && self.exchanges[i].events.is_empty() {
            self.exchanges.remove(i);
        }
        Some(self.hand_out(now, ev))
    }

    /// `ev` goes to the caller.
    fn hand_out(&mut self, now: Instant, ev: StreamEvent) -> Action {
        self.output_started = true;
        self.note_continuable(&ev);
        self.obs.response.on_event(&ev);
        if let StreamEvent::Error(e) = &ev {
            self.obs
                .finished(now, Some(ErrorType::of(e)), self.attempts);
        }
        if ev.is_terminal() {
            self.terminal_emitted = true;
            self.finish(now, Ok(Bytes::new()));
        }
        Action::Emit(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{chat_json, chat_stream, content, head, ms, sse, Wire, DONE};
    use super::super::{Action, Event};
    use crate::config::ClientConfig;
    use crate::error::VllmError;
    use crate::event::StreamEvent;

    #[test]
    fn a_read_is_asked_only_after_the_head_and_never_ahead_of_the_events() {
        let mut w = Wire::new(ClientConfig::default());
        let mut a = w.call(chat_stream());
        let attempt = w.send(&mut a, 0);
        // A chunk before the head was asked for is ignored (a misbehaving transport).
        let early = Event::Chunk {
            attempt,
            bytes: content("early").into(),
        };
        w.handle(&mut a, 0, early);
        assert!(matches!(w.next(&mut a, 0), Action::Wait { .. }));
        w.handle(
            &mut a,
            0,
            Event::Response {
                attempt,
                head: sse(),
            },
        );
        assert!(matches!(w.next(&mut a, 0), Action::ReadBody { .. }));
        let two = [content("a"), content("b")].concat();
        w.handle(
            &mut a,
            1,
            Event::Chunk {
                attempt,
                bytes: two.into(),
            },
        );
        // Both events come out before the next read.
        assert!(matches!(w.next(&mut a, 1), Action::Emit(StreamEvent::Content(t)) if t == "a"));
        assert!(matches!(w.next(&mut a, 1), Action::Emit(StreamEvent::Content(t)) if t == "b"));
        assert!(matches!(w.next(&mut a, 1), Action::ReadBody { .. }));
    }

    #[test]
    fn an_empty_chunk_changes_nothing_and_keeps_no_timer_alive() {
        let mut c = ClientConfig::default();
        c.policy.timeouts.idle = Some(ms(100));
        let mut w = Wire::new(c);
        let mut a = w.call(chat_stream());
        let attempt = w.send(&mut a, 0);
        let (events, _) = w.answer(&mut a, 0, attempt, sse(), &[&content("a")], false);
        assert_eq!(events.len(), 1);
        // An empty chunk at 90 ms does not push the idle deadline (100 ms) forward.
        w.handle(
            &mut a,
            90,
            Event::Chunk {
                attempt,
                bytes: Default::default(),
            },
        );
        let Action::ReadBody { deadline, .. } = w.next(&mut a, 90) else {
            panic!("reads again")
        };
        assert_eq!(deadline, Some(w.at(100)));
    }

    #[test]
    fn a_json_answer_to_a_stream_request_is_turned_into_its_events() {
        let mut w = Wire::new(ClientConfig::default());
        let mut a = w.call(chat_stream());
        let attempt = w.send(&mut a, 0);
        let doc = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}]}"#;
        let json = head(200, "application/json", &[]);
        let (events, end) = w.answer(&mut a, 0, attempt, json, &[doc], true);
        assert!(events
            .iter()
            .any(|e| matches!(e, StreamEvent::Content(t) if t == "whole")));
        assert!(matches!(events.last(), Some(StreamEvent::Done)));
        assert!(matches!(end, Action::Done(Ok(_))));
    }

    #[test]
    fn a_body_over_its_limit_is_a_decode_error_not_retried() {
        let mut c = ClientConfig::default();
        c.policy.max_body_bytes = 10;
        let mut w = Wire::new(c);
        let mut a = w.call(chat_json());
        let attempt = w.send(&mut a, 0);
        let json = head(200, "application/json", &[]);
        let (_, end) = w.answer(&mut a, 0, attempt, json, &["0123456789abc"], true);
        assert!(
            matches!(end, Action::Done(Err(VllmError::Decode { .. }))),
            "{end:?}"
        );
        assert_eq!(a.report().attempts, 1);
    }

    #[test]
    fn an_error_event_decoded_with_unseen_text_is_a_failure_before_output() {
        let mut w = Wire::new(ClientConfig::default());
        let mut a = w.call(chat_stream());
        let attempt = w.send(&mut a, 0);
        let err = "data: {\"error\":{\"message\":\"boom\",\"code\":503}}\n\n";
        let both = [content("lost"), err.to_owned()].concat();
        let (events, next) = w.answer(&mut a, 0, attempt, sse(), &[&both], true);
        assert!(
            events.is_empty(),
            "the text never reached the caller: {events:?}"
        );
        // Retried (503 is retryable), so the text cannot be duplicated.
        assert!(matches!(next, Action::Wait { .. }), "{next:?}");
        assert_eq!(a.report().retries.len(), 1);
        let _ = DONE;
    }
}
