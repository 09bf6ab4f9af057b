//! The settle phase: how an exchange ends and what follows — for the breaker, the endpoint,
//! the adaptive limit (all from the failure table, in one place: [`Call::judge_failure`]),
//! then retry or give up, then the call's end.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::contract::{Purpose, TransportErrorKind};
use super::exchange::Io;
use super::observe::{ErrorType, Observation};
use super::owed::Owed;
use super::report::RetryRecord;
use super::{Call, Failed, Phase};
use crate::error::VllmError;
use crate::event::StreamEvent;
use crate::policy::{
    Failure, LimitSample, Outcome, RetryContext, RetryDecision, TimeoutKind, Verdict,
};
use crate::pool::{EndpointId, ProbeResult};

impl Call {
    // --- judging: once per exchange -------------------------------------------------------

    /// Exchange `i` succeeded (its first data event, or a whole JSON answer): the breaker and
    /// its endpoint hear so, once.
    pub(super) fn judge_success(
        &mut self,
        i: usize,
        now: Instant,
        ttfb: Duration,
        sample: Option<Duration>,
    ) {
        self.judge(i, now, Outcome::Success { ttfb }, Verdict::Success, sample);
    }

    /// Exchange `i` failed: everything that follows for the breaker, its endpoint and the
    /// adaptive limit comes from the failure's row of the table, here and nowhere else.
    pub(super) fn judge_failure(&mut self, i: usize, now: Instant, failure: &Failure) {
        let ex = &self.exchanges[i];
        if ex.judged {
            return;
        }
        let head = ex.head.is_some();
        let ttfb = head.then(|| ex.ttfb());
        let hint = self.server_hint(i, now);
        // A server that made the attempt wait for a timer is at least that slow.
        let sample = match failure {
            Failure::Timeout {
                kind: TimeoutKind::FirstToken | TimeoutKind::Attempt,
                ..
            } => Some(now.saturating_duration_since(ex.start)),
            _ => None,
        };
        if let Some((kind, hinted)) = failure.loss() {
            let endpoint = Some(ex.endpoint);
            self.limit_sample(now, endpoint, |_| LimitSample::Loss { kind, hinted });
        }
        let outcome = failure.breaker_outcome(ttfb);
        let verdict = failure.verdict(hint, head);
        self.judge(i, now, outcome, verdict, sample);
    }

    fn judge(
        &mut self,
        i: usize,
        now: Instant,
        outcome: Outcome,
        verdict: Verdict,
        sample: Option<Duration>,
    ) {
        let operation = self.operation;
        let ex = &mut self.exchanges[i];
        if ex.judged {
            return;
        }
        ex.judged = true;
        if let Some(permit) = ex.breaker.take() {
            self.owed.push(Owed::Breaker {
                at: now,
                operation,
                permit,
                outcome,
            });
        }
        if let Some(ticket) = ex.ticket {
            self.owed.push(Owed::Verdict {
                at: now,
                ticket,
                verdict,
                sample,
            });
        }
    }

    /// When the server of exchange `i` asked to be called again: its `Retry-After`, or the
    /// reset of a spent rate-limit quota.
    fn server_hint(&self, i: usize, now: Instant) -> Option<Instant> {
        let wait = self.exchanges[i].hint?;
        Some(crate::policy::clock::saturating_add(now, wait))
    }

    /// Queues a sample for the adaptive concurrency limit (when it is on); `sample` gets the
    /// request body's length, the prompt-size estimate.
    pub(super) fn limit_sample(
        &mut self,
        now: Instant,
        endpoint: Option<EndpointId>,
        sample: impl FnOnce(usize) -> LimitSample,
    ) {
        if self.policy.auto_concurrency.is_some() {
            let bytes = self.request.as_ref().map_or(0, |r| r.body().len());
            self.owed.push(Owed::LimitSample {
                at: now,
                sample: sample(bytes),
                endpoint,
            });
        }
    }

    // --- ending an exchange ---------------------------------------------------------------

    /// Exchange `i` is over for the transport: it is closed, its endpoint and slot are free,
    /// an unjudged exchange says nothing about its server. Its events (if any) stay queued.
    pub(super) fn end_exchange_io(&mut self, i: usize, now: Instant, error: Option<ErrorType>) {
        if !self.exchanges[i].judged {
            let failure = Failure::Cancelled;
            self.judge_failure(i, now, &failure);
        }
        let ex = &mut self.exchanges[i];
        if ex.io == Io::Ended {
            return;
        }
        ex.io = Io::Ended;
        ex.body = None;
        // A cancelled call's caller dropped everything already: nothing to close.
        if !self.cancelled {
            self.closes.push_back(ex.id);
        }
        if let Some(ticket) = ex.ticket.take() {
            self.owed.push(Owed::Release { ticket });
        }
        if let Some(permit) = ex.slot.take() {
            self.owed.push(Owed::ReleaseSlot { permit });
        }
        if ex.purpose != Purpose::HealthProbe {
            self.obs.end_attempt(ex.number, now, error);
        }
    }

    /// As [`end_exchange_io`](Self::end_exchange_io), and its events are dropped.
    pub(super) fn end_exchange(&mut self, i: usize, now: Instant, error: Option<ErrorType>) {
        self.end_exchange_io(i, now, error);
        self.exchanges.remove(i);
    }

    /// The health probe (exchange `i`) ended: what it says goes to its endpoint (judged by
    /// the failure table); the call carries on (the answer, if any, is dropped unread).
    pub(super) fn end_probe(&mut self, i: usize, now: Instant, result: ProbeResult) {
        let verdict = result.verdict(now);
        self.judge(i, now, Outcome::Ignored, verdict, None);
        self.end_exchange(i, now, None);
    }

    /// Gives back the breaker permit taken for an attempt that will not be sent.
    pub(super) fn return_breaker_permit(&mut self, now: Instant) {
        if let Some(permit) = self.breaker_permit.take() {
            self.owed.push(Owed::Breaker {
                at: now,
                operation: self.operation,
                permit,
                outcome: Outcome::Ignored,
            });
        }
    }

    // --- failures ---------------------------------------------------------------------------

    /// Exchange `i`'s transport failed.
    pub(super) fn on_transport_error(
        &mut self,
        i: usize,
        now: Instant,
        kind: TransportErrorKind,
        message: String,
        source: Option<crate::error::ErrorSource>,
    ) {
        let ex = &self.exchanges[i];
        if ex.purpose == Purpose::HealthProbe {
            self.end_probe(i, now, ProbeResult::Failed(kind));
            return;
        }
        if matches!(
            ex.body,
            Some(super::body::Body::Error(_) | super::body::Body::Foreign(..))
        ) {
            // The status already answered; a cut error body does not make a 400 retryable:
            // classify by the status with the part that arrived.
            self.on_body_end(i, now);
            return;
        }
        if kind == TransportErrorKind::Rejected {
            // Nothing reached the server: the caller's request is at fault.
            let e = VllmError::InvalidRequest(format!(
                "the HTTP client refused to send the request: {message}"
            ));
            self.fail_exchange(i, now, Failure::Rejected, e);
            return;
        }
        if kind == TransportErrorKind::ConnectTimeout && ex.io == Io::Sending {
            // An HTTP client's connect timer clamped to the head deadline fires with it: that
            // is the deadline's timeout (an overall deadline is not retried), however the
            // transport words it.
            if let Some((d, timer)) = self.exchange_deadline(i) {
                if now >= d {
                    self.time_out(i, now, timer);
                    return;
                }
            }
        }
        let no_head = ex.head.is_none();
        let output_started = self.is_committed(i);
        let (failure, error) = match kind {
            TransportErrorKind::Connect if no_head => {
                (Failure::Connect, VllmError::connect(message, source))
            }
            TransportErrorKind::ConnectTimeout if no_head => {
                self.report.timeout = Some(TimeoutKind::Connect);
                self.obs.push(Observation::TimerFired {
                    kind: TimeoutKind::Connect,
                });
                (
                    Failure::Timeout {
                        kind: TimeoutKind::Connect,
                        output_started: false,
                    },
                    VllmError::Timeout,
                )
            }
            // However the transport words it (a reset, an incomplete chunk), a stream whose
            // connection broke before `[DONE]` is a truncated stream.
            _ if matches!(ex.body, Some(super::body::Body::Stream(_))) => {
                (Failure::Truncated { output_started }, VllmError::Truncated)
            }
            _ => (
                Failure::Transport { output_started },
                VllmError::transport(message, source),
            ),
        };
        self.fail_exchange(i, now, failure, error);
    }

    /// The timer `kind` of exchange `i` fired.
    pub(super) fn time_out(&mut self, i: usize, now: Instant, kind: TimeoutKind) {
        if self.exchanges[i].purpose == Purpose::HealthProbe {
            // The probe's own timer: the endpoint did not answer in time.
            self.end_probe(i, now, ProbeResult::TimedOut);
            return;
        }
        self.report.timeout = Some(kind);
        self.obs.push(Observation::TimerFired { kind });
        if matches!(
            self.exchanges[i].body,
            Some(super::body::Body::Error(_) | super::body::Body::Foreign(..))
        ) {
            // As for a cut error body: the status decides, not the slow body.
            self.on_body_end(i, now);
            return;
        }
        let output_started = self.is_committed(i);
        let failure = Failure::Timeout {
            kind,
            output_started,
        };
        self.fail_exchange(i, now, failure, VllmError::Timeout);
    }

    /// Whether exchange `i` is the one whose events reached the caller.
    pub(super) fn is_committed(&self, i: usize) -> bool {
        self.output_started && self.committed == Some(self.exchanges[i].id)
    }

    /// Exchange `i` failed. After output, the error is the stream's last event. Before: it is
    /// settled and closed; the call carries on with another exchange in flight, or decides
    /// whether to retry (that needs the shared state: the budget).
    pub(super) fn fail_exchange(
        &mut self,
        i: usize,
        now: Instant,
        failure: Failure,
        error: VllmError,
    ) {
        self.judge_failure(i, now, &failure);
        let error_type = Some(failure.error_type());
        if self.is_committed(i) {
            let Err(error) = self.try_resume(i, now, &failure, error) else {
                return;
            };
            let ex = &mut self.exchanges[i];
            ex.events.push_back(StreamEvent::Error(error));
            self.end_exchange_io(i, now, error_type);
            return;
        }
        let received_at = self.exchanges[i]
            .head
            .as_ref()
            .map_or(SystemTime::UNIX_EPOCH, |h| h.received_at);
        self.end_exchange(i, now, error_type);
        if self
            .exchanges
            .iter()
            .any(|e| e.is_user() && (e.io != Io::Ended || !e.events.is_empty()))
        {
            // A hedge (or the attempt it hedged) still runs: it carries the call.
            self.last_error = Some(error);
            return;
        }
        self.phase = Phase::Failed(Box::new(Failed {
            failure,
            error,
            at: now,
            received_at,
        }));
    }

    /// Retry or give up, after a failed attempt.
    pub(super) fn decide(
        &mut self,
        at: Instant,
        failure: Failure,
        error: VllmError,
        received_at: SystemTime,
        shared: &mut super::Shared,
    ) {
        let ctx = RetryContext::new(self.attempts, at, received_at)
            .with_deadline(self.deadline)
            .with_previous_delay(self.previous_delay);
        // A resume goes back to the endpoint that holds the stream: no fail-over.
        let tried = self.resume.is_none().then_some(&self.report.endpoints[..]);
        let decision = shared.decide_retry(&self.policy.retry, &failure, ctx, tried, &mut self.rng);
        match decision {
            RetryDecision::Retry { delay, hinted } => {
                self.obs.push(Observation::Retry {
                    attempt: self.attempts,
                    cause: failure.error_type(),
                    delay,
                    hinted,
                });
                self.report.retries.push(RetryRecord {
                    attempt: self.attempts,
                    delay,
                    hinted,
                    cause: error.to_string(),
                });
                self.previous_delay = delay;
                self.last_error = Some(error);
                // Saturate: an accepted huge hint must not wrap to "now" (a hot retry loop).
                self.phase = Phase::Backoff {
                    until: crate::policy::clock::saturating_add(at, delay),
                };
            }
            RetryDecision::GiveUp(reason) => {
                self.report.gave_up = Some(reason);
                self.finish(at, Err(error));
            }
        }
    }

    // --- the end ----------------------------------------------------------------------------

    /// The call is over: whatever is still in flight is closed, the slot is freed, the token
    /// estimate corrected. Nothing is emitted after the end.
    pub(super) fn finish(&mut self, now: Instant, result: Result<Bytes, VllmError>) {
        if matches!(self.phase, Phase::Finished) {
            return;
        }
        // A stream's error event already finished the observations, with its error.
        let error = result.as_ref().err().map(ErrorType::of);
        // A resumed stream that cannot go on ends with the error that cut it, as its last
        // event (not a bare `Done(Err)` after its events).
        let result = match result {
            Err(e)
                if !matches!(e, VllmError::Cancelled)
                    && (self.end_resumed_stream() || self.end_continued_stream()) =>
            {
                Ok(Bytes::new())
            }
            r => r,
        };
        for i in (0..self.exchanges.len()).rev() {
            self.end_exchange(i, now, error);
        }
        self.return_breaker_permit(now);
        self.obs.finished(now, error, self.attempts);
        // The token estimate, corrected by what the server says the call used.
        if let (Some(charged), Some(usage)) = (self.tokens_charged, &self.obs.response.usage) {
            let used = usage.prompt_tokens.saturating_add(usage.completion_tokens);
            let delta = i128::from(used) - i128::from(charged);
            let delta = i64::try_from(delta).unwrap_or(if delta > 0 { i64::MAX } else { i64::MIN });
            if delta != 0 {
                self.owed.push(Owed::Tokens { at: now, delta });
            }
            self.tokens_charged = None;
        }
        if let Phase::WaitPermit {
            waiter: Some(waiter),
        } = self.phase
        {
            // Out of the queue; a slot already handed to this call passes on.
            self.owed.push(Owed::LeaveQueue { waiter });
        }
        if let Some(permit) = self.slot.take() {
            self.owed.push(Owed::ReleaseSlot { permit });
        }
        self.result = Some(result);
        self.phase = Phase::Finished;
    }

    /// The `until` of a `Wait` passed: every timer due fires.
    pub(super) fn on_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::WaitPermit { .. } if self.past_deadline(now) => {
                self.report.timeout = Some(crate::policy::TimeoutKind::Deadline);
                self.finish(now, Err(VllmError::Timeout));
            }
            Phase::Exchanging => {
                // Timers of exchanges whose deadline passed; a timer may end the call, so the
                // list is re-read after each.
                while let Some((i, kind)) = (0..self.exchanges.len()).find_map(|i| {
                    self.exchange_deadline(i)
                        .filter(|(d, _)| now >= *d)
                        .map(|(_, k)| (i, k))
                }) {
                    self.time_out(i, now, kind);
                    if matches!(self.phase, Phase::Finished) {
                        break;
                    }
                }
            }
            // Sleeps end in poll (hedges too); an early wake is a no-op.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{chat_json, chat_stream, content, head, ms, pool, sse, Wire, DONE};
    use super::super::{Action, Event, TransportErrorKind, WaitReason};
    use crate::config::ClientConfig;
    use crate::error::VllmError;
    use crate::event::StreamEvent;
    use crate::policy::{Backoff, BreakerConfig, GiveUpReason, HedgeConfig, Jitter, TimeoutKind};

    #[test]
    fn every_attempt_is_closed_once_and_before_the_terminal_event() {
        let mut w = Wire::new(ClientConfig::default());
        let mut a = w.call(chat_stream());
        let attempt = w.stream_started(&mut a, 0);
        let body = [content("hi"), DONE.to_owned()].concat();
        w.handle(
            &mut a,
            1,
            Event::Chunk {
                attempt,
                bytes: body.into(),
            },
        );
        // The close comes before the events of the chunk that ended the stream.
        assert!(matches!(
            a.poll(w.at(1), &mut w.shared),
            Action::Close { .. }
        ));
        assert!(matches!(
            w.next(&mut a, 1),
            Action::Emit(StreamEvent::Content(_))
        ));
        assert!(matches!(w.next(&mut a, 1), Action::Emit(StreamEvent::Done)));
        assert!(matches!(w.next(&mut a, 1), Action::Done(Ok(_))));
        assert!(
            w.closed.is_empty(),
            "closed exactly once (taken by hand above)"
        );
    }

    #[test]
    fn a_failure_is_retried_after_its_backoff_and_reported() {
        let mut c = ClientConfig::default();
        c.policy.retry.backoff = Backoff {
            initial: ms(100),
            max: ms(100),
            multiplier: 1,
            jitter: Jitter::None,
        };
        let mut w = Wire::new(c);
        let mut a = w.call(chat_json());
        let attempt = w.send(&mut a, 0);
        let boom = head(500, "application/json", &[]);
        let (_, wait) = w.answer(&mut a, 0, attempt, boom, &[], true);
        let Action::Wait {
            until: Some(until),
            reason: WaitReason::Backoff(record),
            ..
        } = wait
        else {
            panic!("a backoff, got {wait:?}")
        };
        assert_eq!(until, w.at(100));
        assert_eq!((record.attempt, record.delay), (1, ms(100)));
        assert!(w.closed.contains(&attempt), "the failed attempt was closed");
        w.handle(&mut a, 100, Event::Timeout);
        assert!(matches!(w.next(&mut a, 100), Action::Send { .. }));
    }

    #[test]
    fn a_stall_mid_stream_ends_it_with_its_error_and_is_never_retried() {
        let mut c = ClientConfig::default();
        c.policy.timeouts.idle = Some(ms(50));
        let mut w = Wire::new(c);
        let mut a = w.call(chat_stream());
        let attempt = w.send(&mut a, 0);
        let (events, _) = w.answer(&mut a, 0, attempt, sse(), &[&content("a")], false);
        assert_eq!(events.len(), 1);
        assert!(matches!(w.next(&mut a, 0), Action::Wait { .. }));
        w.handle(&mut a, 50, Event::Timeout);
        let last = w.next(&mut a, 50);
        assert!(
            matches!(last, Action::Emit(StreamEvent::Error(VllmError::Timeout))),
            "{last:?}"
        );
        assert!(matches!(w.next(&mut a, 50), Action::Done(Ok(_))));
        assert_eq!(a.report().timeout, Some(TimeoutKind::Idle));
        assert_eq!(w.closed, [attempt]);
    }

    #[test]
    fn a_failed_attempt_leaves_a_racing_hedge_to_carry_the_call() {
        let mut c = pool(2);
        c.policy.pool.hedge = Some(HedgeConfig::after(ms(100)).max_extra_percent(100));
        let mut w = Wire::new(c);
        let mut a = w.call(chat_stream());
        let first = w.send(&mut a, 0);
        assert!(matches!(w.next(&mut a, 0), Action::Wait { .. }));
        w.handle(&mut a, 100, Event::Timeout);
        let hedge = w.send(&mut a, 100);
        let reset = Event::TransportError {
            attempt: first,
            kind: TransportErrorKind::Io,
            message: "reset".into(),
            source: None,
        };
        w.handle(&mut a, 150, reset);
        // No retry while the hedge runs: the call waits for it.
        assert!(matches!(w.next(&mut a, 150), Action::Wait { .. }));
        assert!(a.report().retries.is_empty());
        let body = [content("ok"), DONE.to_owned()].concat();
        let (events, end) = w.answer(&mut a, 200, hedge, sse(), &[&body], true);
        assert!(matches!(events.last(), Some(StreamEvent::Done)));
        assert!(matches!(end, Action::Done(Ok(_))));
    }

    #[test]
    fn a_retry_refused_by_the_breaker_ends_with_the_last_error() {
        let mut c = ClientConfig::default();
        c.policy.breaker = Some(BreakerConfig::default());
        c.policy.retry.backoff = Backoff {
            initial: ms(10),
            max: ms(10),
            multiplier: 1,
            jitter: Jitter::None,
        };
        let mut w = Wire::new(c);
        let mut a = w.call(chat_json());
        let attempt = w.send(&mut a, 0);
        let (_, _) = w.answer(
            &mut a,
            0,
            attempt,
            head(503, "application/json", &[]),
            &[],
            true,
        );
        let t = w.t0;
        if let Some(b) = w.shared.breaker_mut() {
            b.force_open(t);
        }
        w.handle(&mut a, 10, Event::Timeout);
        let end = w.next(&mut a, 10);
        assert!(
            matches!(&end, Action::Done(Err(VllmError::Api(e))) if e.status.map(|s| s.as_u16()) == Some(503)),
            "{end:?}"
        );
        assert_eq!(a.report().gave_up, Some(GiveUpReason::CircuitOpen));
    }

    #[test]
    fn cancel_releases_the_slot_and_closes_nothing_twice() {
        let mut c = ClientConfig::default();
        c.policy.max_concurrency = Some(1);
        let mut w = Wire::new(c);
        let mut a = w.call(chat_stream());
        w.send(&mut a, 0);
        assert_eq!(w.shared.in_flight(), Some(1));
        let now = w.at(5);
        a.cancel(now, &mut w.shared);
        a.cancel(now, &mut w.shared);
        assert_eq!(w.shared.in_flight(), Some(0));
        assert!(matches!(
            w.next(&mut a, 5),
            Action::Done(Err(VllmError::Cancelled))
        ));
    }
}
