//! Resuming a cut Responses stream instead of failing it.
//!
//! A Responses stream numbers its events, and a server that keeps them (a background
//! response, see [`ResumeStreams`](crate::policy::ResumeStreams)) serves the rest of a stream
//! after any number: `GET /v1/responses/{id}?stream=true&starting_after=N`. So when a stream
//! that already handed out events is cut — the connection broke, the idle or attempt timer
//! fired, the body ended before its terminal event — the call does not end it with the error:
//!
//! ```text
//!  Exchanging ── cut after output ──▶ carry: its events not yet handed out (emitted first)
//!      ▲                              cursor: the response's id, the last sequence_number
//!      │                                 │ decide, as for a retry (budget, max_retries,
//!      │                                 ▼ deadline, backoff; no fail-over)
//!      │                              Backoff ─▶ Admit (rate limits, breaker) ─▶ Route
//!      │                                                                          │
//!      └── Send(Resume) to the same endpoint; it holds the output at once ◀───────┘
//!          its decoder drops every event numbered at or below the cursor
//! ```
//!
//! The resumed exchange holds the output from its `Send`: its in-band errors (a
//! `response.failed`) are the stream's answer and reach the caller; it may be cut and resumed
//! again. When the server cannot resume (a non-retryable status such as 404, an answer that is
//! not an event stream) or the policy gives up, the stream ends as it would have without
//! resuming: with the error that cut it as its last event.

use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Uri};

use super::body::Body;
use super::contract::Purpose;
use super::exchange::Io;
use super::{Call, Failed, Phase};
use crate::error::VllmError;
use crate::policy::{Failure, TimeoutKind};
use crate::pool::EndpointId;
use crate::request::{Operation, Route};
use crate::responses_stream::ResponseCursor;

/// A cut stream being resumed.
#[derive(Debug)]
pub(super) struct Resume {
    /// Where the stream is: what the next request starts after.
    pub(super) cursor: ResponseCursor,
    /// The endpoint that holds the response.
    pub(super) endpoint: EndpointId,
    /// The error of the first cut: the stream's last event if resuming fails.
    pub(super) cut: VllmError,
}

impl Call {
    /// Exchange `i`, which holds the output, failed with `failure`: resume the stream when it
    /// is resumable (then the call goes on to decide as for a retry). Gives `error` back when
    /// it is not.
    pub(super) fn try_resume(
        &mut self,
        i: usize,
        now: Instant,
        failure: &Failure,
        error: VllmError,
    ) -> Result<(), VllmError> {
        if !self.resumable {
            return self.try_continue(i, now, failure, error);
        }
        if by_deadline(failure) {
            return Err(error);
        }
        let ex = &self.exchanges[i];
        let cursor = match &ex.body {
            Some(Body::Stream(dec)) => dec.response_cursor().cloned(),
            _ => self.resume.as_ref().map(|r| r.cursor.clone()),
        };
        let Some(cursor) =
            cursor.filter(|c| c.response_id.is_some() && c.last_sequence_number.is_some())
        else {
            return Err(error);
        };
        // A resume request that handed out nothing new may fail any way (a 503 is retried, a
        // 404 ends the stream); a stream that is flowing is resumed after a cut only.
        let fresh = ex.purpose == Purpose::Resume
            && self.resume.as_ref().is_some_and(|r| r.cursor == cursor);
        if !(fresh || is_cut(failure)) {
            return Err(error);
        }
        let endpoint = ex.endpoint;
        let cut = match self.resume.take() {
            Some(r) => r.cut,
            None => error.clone(),
        };
        self.hand_cut_to_retry(i, now, failure, error, cut.clone());
        self.resume = Some(Box::new(Resume {
            cursor,
            endpoint,
            cut,
        }));
        Ok(())
    }

    /// Exchange `i`, cut, leaves its stream to the retry decision: judged, its events not yet
    /// handed out carried (they go first), closed. The call then decides as after a failure
    /// before output — nothing will be handed out twice — and `cut` is the stream's last event
    /// if it goes no further.
    pub(super) fn hand_cut_to_retry(
        &mut self,
        i: usize,
        now: Instant,
        failure: &Failure,
        error: VllmError,
        cut: VllmError,
    ) {
        let received_at = self.exchanges[i]
            .head
            .as_ref()
            .map_or(std::time::SystemTime::UNIX_EPOCH, |h| h.received_at);
        self.judge_failure(i, now, failure);
        self.carry.extend(self.exchanges[i].events.drain());
        self.end_exchange(i, now, Some(failure.error_type()));
        self.last_error = Some(cut);
        self.committed = None;
        self.phase = Phase::Failed(Box::new(Failed {
            failure: before_output(failure),
            error,
            at: now,
            received_at,
        }));
    }

    /// The request that asks the endpoint for the rest of the stream.
    pub(super) fn resume_request(&self) -> Result<(EndpointId, Request<Bytes>), VllmError> {
        let (Some(resume), Ok(template)) = (&self.resume, &self.request) else {
            return Err(VllmError::Misuse("no stream to resume".into()));
        };
        let (Some(id), Some(after)) = (
            &resume.cursor.response_id,
            resume.cursor.last_sequence_number,
        ) else {
            return Err(VllmError::Misuse("no cursor to resume from".into()));
        };
        Ok((
            resume.endpoint,
            resume_template(template.request(), template.headers(), id, after)?,
        ))
    }

    /// Whether exchange `i` is a resume that may not read an answer other than an event
    /// stream (a whole document would hand out the response's text again).
    pub(super) fn is_resume(&self, i: usize) -> bool {
        self.exchanges[i].purpose == Purpose::Resume
    }

    /// The call is over with `error` after its stream handed out events while a resume was
    /// pending: the stream ends with the error that cut it, as its last event.
    pub(super) fn end_resumed_stream(&mut self) -> bool {
        let Some(resume) = self.resume.take() else {
            return false;
        };
        self.carry
            .push_back(crate::event::StreamEvent::Error(resume.cut));
        // Nothing is in flight any more; the carried events end the call.
        debug_assert!(self.exchanges.iter().all(|e| e.io == Io::Ended));
        true
    }
}

/// Whether the call's own deadline passed (nothing goes on after it).
pub(super) fn by_deadline(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::Timeout {
            kind: TimeoutKind::Deadline,
            ..
        }
    )
}

/// Whether `failure` cut a flowing stream (rather than the server answering with an error,
/// or the call's own deadline passing).
pub(super) fn is_cut(failure: &Failure) -> bool {
    match failure {
        Failure::Truncated { .. } | Failure::Transport { .. } => true,
        Failure::Timeout { kind, .. } => matches!(
            kind,
            TimeoutKind::Idle | TimeoutKind::Attempt | TimeoutKind::FirstToken
        ),
        _ => false,
    }
}

/// `failure` as the retry policy weighs it for a resume: nothing will be handed out twice, so
/// it is a failure before output.
fn before_output(failure: &Failure) -> Failure {
    match failure.clone() {
        Failure::Transport { .. } => Failure::Transport {
            output_started: false,
        },
        Failure::Truncated { .. } => Failure::Truncated {
            output_started: false,
        },
        Failure::Timeout { kind, .. } => Failure::Timeout {
            kind,
            output_started: false,
        },
        Failure::StreamError { code, .. } => Failure::StreamError {
            code,
            output_started: false,
        },
        Failure::Decode { .. } => Failure::Decode {
            output_started: false,
        },
        other => other,
    }
}

/// `GET {responses URL}/{id}?stream=true&starting_after={after}` with the template's
/// `headers` (its body's own dropped), for the client's first endpoint; a pool re-targets it
/// with the route it carries.
fn resume_template(
    template: &Request<Bytes>,
    headers: http::HeaderMap,
    id: &str,
    after: u64,
) -> Result<Request<Bytes>, VllmError> {
    let suffix = format!(
        "/{}?stream=true&starting_after={after}",
        crate::request::encode_path_segment(id)
    );
    let uri = template.uri();
    let base = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{}", uri.path()),
        _ => uri.path().to_owned(),
    };
    let uri: Uri = format!("{base}{suffix}")
        .parse()
        .map_err(|e| VllmError::InvalidRequest(format!("cannot build the resume URL: {e}")))?;
    let route_path = match template.extensions().get::<Route>() {
        Some(route) => route.path().to_owned(),
        None => format!("/v1{}", Operation::Responses.path()),
    };
    let mut req = Request::new(Bytes::new());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = uri;
    *req.version_mut() = template.version();
    *req.headers_mut() = headers;
    let headers = req.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    req.extensions_mut()
        .insert(Route::new(Method::GET, format!("{route_path}{suffix}")));
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::super::wire::{head, ms, sse, Wire};
    use super::super::{Action, AttemptId, Call, CallSpec, Event, Purpose, TransportErrorKind};
    use super::resume_template;
    use crate::api::ResponseStreamEvent;
    use crate::config::ClientConfig;
    use crate::error::VllmError;
    use crate::event::StreamEvent;
    use crate::policy::{Backoff, GiveUpReason, Jitter, ResumeStreams};
    use crate::request::Operation;
    use crate::stream::StreamKind;
    use bytes::Bytes;
    use http::Request;

    fn spec(background: bool) -> CallSpec {
        CallSpec::stream(
            Operation::Responses,
            StreamKind::Responses,
            Ok(
                serde_json::json!({"model": "m", "input": "hi", "background": background, "store": true}),
            ),
        )
    }

    fn config() -> ClientConfig {
        let mut c = ClientConfig::default();
        c.policy.retry.backoff = Backoff {
            initial: ms(10),
            max: ms(10),
            multiplier: 1,
            jitter: Jitter::None,
        };
        c
    }

    fn lifecycle(seq: u64, kind: &str, status: &str) -> String {
        format!(
            "data: {{\"type\":\"response.{kind}\",\"sequence_number\":{seq},\"response\":{{\"id\":\"resp_1\",\"status\":\"{status}\"}}}}\n\n"
        )
    }

    fn delta(seq: u64, text: &str) -> String {
        format!(
            "data: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{seq},\"item_id\":\"m\",\"delta\":\"{text}\"}}\n\n"
        )
    }

    /// Events 0‥=n: created, then one delta per letter of `text`, then completed.
    fn whole(text: &str) -> Vec<String> {
        let mut v = vec![lifecycle(0, "created", "in_progress")];
        for (i, c) in text.chars().enumerate() {
            v.push(delta(i as u64 + 1, &c.to_string()));
        }
        v.push(lifecycle(text.len() as u64 + 1, "completed", "completed"));
        v
    }

    fn text(events: &[StreamEvent]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Response(r) => match &**r {
                    ResponseStreamEvent::OutputTextDelta { delta, .. } => Some(delta.as_str()),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    fn reset(attempt: AttemptId) -> Event {
        Event::TransportError {
            attempt,
            kind: TransportErrorKind::Io,
            message: "connection reset".into(),
            source: None,
        }
    }

    /// After `reset` at `t`: the stream ends with the cut, as a stream that is not resumed.
    fn ends_with_the_cut(w: &mut Wire, a: &mut Call, t: u64, attempt: AttemptId) {
        w.handle(a, t, reset(attempt));
        let next = w.next(a, t);
        assert!(
            matches!(next, Action::Emit(StreamEvent::Error(VllmError::Truncated))),
            "{next:?}"
        );
        assert!(matches!(w.next(a, t), Action::Done(Ok(_))));
    }

    /// A call with `c` whose stream handed out `created` and `"a"` (of `whole("ab…")`) and
    /// stays open.
    fn flowing(c: ClientConfig, background: bool) -> (Wire, Call, AttemptId) {
        let mut w = Wire::new(c);
        let mut a = w.call(spec(background));
        let all = whole("ab");
        let (attempt, events) = started(&mut w, &mut a, &[&all[0], &all[1]]);
        assert_eq!(text(&events), "a");
        (w, a, attempt)
    }

    /// Sends the first attempt and answers `chunks` (the body stays open).
    fn started(w: &mut Wire, a: &mut Call, chunks: &[&str]) -> (AttemptId, Vec<StreamEvent>) {
        let attempt = w.send(a, 0);
        let (events, next) = w.answer(a, 0, attempt, sse(), chunks, false);
        assert!(matches!(next, Action::Wait { .. }), "{next:?}");
        (attempt, events)
    }

    /// After a cut: the backoff, then the resume's `Send`: its attempt and URL.
    fn resumed(w: &mut Wire, a: &mut Call, t: u64) -> (AttemptId, String) {
        let wait = w.next(a, t);
        assert!(matches!(wait, Action::Wait { .. }), "{wait:?}");
        w.handle(a, t + 10, Event::Timeout);
        match w.next(a, t + 10) {
            Action::Send {
                attempt,
                purpose: Purpose::Resume,
                request,
                ..
            } => (attempt, request.uri().to_string()),
            other => panic!("expected the resume, got {other:?}"),
        }
    }

    #[test]
    fn a_cut_background_stream_resumes_after_its_last_event() {
        let mut w = Wire::new(config());
        let mut a = w.call(spec(true));
        let all = whole("abcd");
        // Cut inside event 3 (its first half arrived).
        let half = &all[3][..all[3].len() / 2];
        let first: Vec<&str> = vec![&all[0], &all[1], &all[2], half];
        let (attempt, mut events) = started(&mut w, &mut a, &first);
        w.handle(&mut a, 5, reset(attempt));
        let (again, url) = resumed(&mut w, &mut a, 5);
        assert_eq!(
            url,
            "http://localhost:8000/v1/responses/resp_1?stream=true&starting_after=2"
        );
        assert!(w.closed.contains(&attempt));
        // The server replays from where it was asked (and one event too many: dropped).
        let rest: Vec<&str> = all[2..].iter().map(String::as_str).collect();
        let (more, end) = w.answer(&mut a, 20, again, sse(), &rest, true);
        events.extend(more);
        assert_eq!(text(&events), "abcd", "nothing lost, nothing twice");
        assert!(matches!(events.last(), Some(StreamEvent::Done)));
        assert!(matches!(end, Action::Done(Ok(_))), "{end:?}");
        let r = a.report();
        assert_eq!((r.attempts, r.resumes, r.retries.len()), (2, 1, 1));
    }

    #[test]
    fn a_stream_that_is_not_background_fails_as_before() {
        let (mut w, mut a, attempt) = flowing(config(), false);
        ends_with_the_cut(&mut w, &mut a, 5, attempt);
        assert_eq!(a.report().resumes, 0);

        // Unless every stream is resumed.
        let mut c = config();
        c.policy.resume = ResumeStreams::Always;
        let (mut w, mut a, attempt) = flowing(c, false);
        w.handle(&mut a, 5, reset(attempt));
        resumed(&mut w, &mut a, 5);
    }

    #[test]
    fn a_body_that_ends_before_its_terminal_event_is_resumed_too() {
        let mut w = Wire::new(config());
        let mut a = w.call(spec(true));
        let all = whole("xyz");
        let attempt = w.send(&mut a, 0);
        let (events, _) = w.answer(&mut a, 0, attempt, sse(), &[&all[0], &all[1]], true);
        assert_eq!(text(&events), "x");
        let (again, url) = resumed(&mut w, &mut a, 0);
        assert!(url.ends_with("starting_after=1"), "{url}");
        let rest: Vec<&str> = all[2..].iter().map(String::as_str).collect();
        let (more, end) = w.answer(&mut a, 20, again, sse(), &rest, true);
        assert_eq!(text(&more), "yz");
        assert!(matches!(end, Action::Done(Ok(_))));
    }

    #[test]
    fn a_server_that_cannot_resume_ends_the_stream_with_the_cut() {
        for answer in [
            head(404, "application/json", &[]),
            head(405, "application/json", &[]),
            // A whole response instead of the rest would repeat its text.
            head(200, "application/json", &[]),
        ] {
            let (mut w, mut a, attempt) = flowing(config(), true);
            w.handle(&mut a, 5, reset(attempt));
            let (again, _) = resumed(&mut w, &mut a, 5);
            let body = r#"{"id":"resp_1","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"ab"}]}]}"#;
            let status = answer.status;
            let (events, end) = w.answer(&mut a, 20, again, answer, &[body], true);
            assert!(
                matches!(&events[..], [StreamEvent::Error(VllmError::Truncated)]),
                "{status}: {events:?}"
            );
            assert!(matches!(end, Action::Done(Ok(_))), "{end:?}");
            assert_eq!(a.report().resumes, 1);
            assert!(a.report().gave_up.is_some(), "{status}");
        }
    }

    #[test]
    fn a_busy_server_is_asked_again_within_max_retries() {
        let mut c = config();
        c.policy.retry.max_retries = 2;
        let mut w = Wire::new(c);
        let mut a = w.call(spec(true));
        let all = whole("abc");
        let (attempt, _) = started(&mut w, &mut a, &[&all[0], &all[1]]);
        w.handle(&mut a, 5, reset(attempt));
        let (second, _) = resumed(&mut w, &mut a, 5);
        let busy = head(503, "application/json", &[]);
        let (events, _) = w.answer(&mut a, 20, second, busy, &[], true);
        assert!(events.is_empty());
        w.handle(&mut a, 30, Event::Timeout);
        let third = match w.next(&mut a, 30) {
            Action::Send {
                attempt,
                purpose: Purpose::Resume,
                ..
            } => attempt,
            other => panic!("{other:?}"),
        };
        // Cut again after one more event: no retry is left.
        let (more, _) = w.answer(&mut a, 40, third, sse(), &[&all[2]], false);
        assert_eq!(text(&more), "b");
        ends_with_the_cut(&mut w, &mut a, 45, third);
        assert_eq!(a.report().gave_up, Some(GiveUpReason::AttemptsExhausted));
        assert_eq!(a.report().attempts, 3);
    }

    #[test]
    fn a_response_that_failed_is_the_streams_answer() {
        let (mut w, mut a, attempt) = flowing(config(), true);
        w.handle(&mut a, 5, reset(attempt));
        let (again, _) = resumed(&mut w, &mut a, 5);
        let failed = "data: {\"type\":\"response.failed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"error\":{\"message\":\"out of memory\",\"code\":\"server_error\"}}}\n\n";
        let (events, end) = w.answer(&mut a, 20, again, sse(), &[failed], true);
        assert!(
            matches!(&events[..], [StreamEvent::Error(VllmError::Api(e))] if e.message.contains("memory")),
            "{events:?}"
        );
        assert!(matches!(end, Action::Done(Ok(_))));
    }

    #[test]
    fn the_deadline_is_not_resumed_and_a_cancel_ends_quietly() {
        let mut c = config();
        c.policy.timeouts.total = Some(ms(100));
        let (mut w, mut a, _) = flowing(c, true);
        w.handle(&mut a, 100, Event::Timeout);
        assert!(matches!(
            w.next(&mut a, 100),
            Action::Emit(StreamEvent::Error(VllmError::Timeout))
        ));

        let (mut w, mut a, attempt) = flowing(config(), true);
        w.handle(&mut a, 5, reset(attempt));
        let now = w.at(6);
        a.cancel(now, &mut w.shared);
        assert!(matches!(
            w.next(&mut a, 6),
            Action::Done(Err(VllmError::Cancelled))
        ));
    }

    #[test]
    fn a_stream_without_numbers_cannot_be_resumed() {
        let mut w = Wire::new(config());
        let mut a = w.call(spec(true));
        // llama.cpp's events carry no sequence_number.
        let created = "data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n";
        let d = "data: {\"type\":\"response.output_text.delta\",\"delta\":\"a\"}\n\n";
        let (attempt, _) = started(&mut w, &mut a, &[created, d]);
        ends_with_the_cut(&mut w, &mut a, 5, attempt);
    }

    #[test]
    fn the_resume_request_asks_for_the_rest_after_the_cursor() {
        let template = Request::post("http://h:8000/v1/responses")
            .header("content-type", "application/json")
            .header("authorization", "Bearer k")
            .header("accept", "application/json")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let r = resume_template(&template, template.headers().clone(), "resp_1", 7).unwrap();
        assert_eq!(r.method(), http::Method::GET);
        assert_eq!(
            r.uri(),
            "http://h:8000/v1/responses/resp_1?stream=true&starting_after=7"
        );
        assert!(r.body().is_empty());
        assert_eq!(r.headers()["authorization"], "Bearer k");
        assert_eq!(r.headers()["accept"], "text/event-stream");
        assert!(r.headers().get("content-type").is_none());
        let route = r.extensions().get::<crate::request::Route>().unwrap();
        assert_eq!(
            route.path(),
            "/v1/responses/resp_1?stream=true&starting_after=7"
        );
    }
}
