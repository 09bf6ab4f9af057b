//! Fuzzes the call driver with arbitrary events and clock steps (including time going
//! backwards, events for attempts that are not in flight or that do not match what was asked,
//! cancellation), all derived from the input — through `Call::poll_with`, the path production
//! takes, with a pool of two endpoints, a hedge and health probes when the input says so.
//!
//! Checks: no panic; once the input is used up, a well-behaved transport brings the call to
//! `Done` within a bound; never more than `1 + max_retries` attempts and one hedge; a read only
//! of an attempt whose head arrived and that is not being read; every attempt closed exactly
//! once, before `Done`; no deadline or wait handed out past the overall deadline; after
//! `Done`, `Done` stays; the concurrency permit comes back; the call's observations end with
//! exactly one `Finished`, each attempt starts once and ends once, and they agree with the
//! report.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use vllm_client_core::call::observe::MAX_QUEUED;
use vllm_client_core::call::{
    Action, AttemptId, Call, Event, Observation, Purpose, ResponseHead, Shared, TransportErrorKind,
};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::{ClientConfig, RateLimit};
use vllm_client_core::policy::{
    AdaptiveConfig, Backoff, BreakerConfig, EjectionConfig, HedgeConfig, Jitter, RetryBudgetConfig,
};
use vllm_client_core::request::Operation;
use vllm_client_core::StreamKind;

/// Steps driven by the input, then steps a well-behaved adapter gets to finish the call.
const INPUT_STEPS: usize = 4096;
const FINISH_STEPS: usize = 1024;

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(*b)
    }
    fn u8(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    fn opt_ms(&mut self, scale: u64) -> Option<Duration> {
        let b = self.u8();
        (b != 0).then(|| Duration::from_millis(u64::from(b) * scale))
    }
    fn bytes(&mut self, n: usize) -> Bytes {
        let n = n.min(self.data.len());
        let (a, rest) = self.data.split_at(n);
        self.data = rest;
        Bytes::copy_from_slice(a)
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

const PIECES: &[&[u8]] = &[
    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
    b"data: [DONE]\n\n",
    b": keep-alive\n\n",
    b"data: {\"error\":{\"message\":\"x\",\"code\":500}}\n\n",
    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xe4\xbd",
    b"\xa0\"}}]}\n\n",
    b"{\"id\":\"x\",\"choices\":[]}",
    b"data: {not json\n\n",
    // A background Responses stream (resumable), its events out of order and replayed.
    b"data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_f\"}}\n\n",
    b"data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"a\"}\n\n",
    b"data: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"delta\":\"b\"}\n\n",
    b"data: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_f\"}}\n\n",
    b"data: {\"type\":\"response.failed\",\"sequence_number\":3,\"response\":{\"error\":{\"message\":\"x\"}}}\n\n",
];

fn config(inp: &mut Input) -> ClientConfig {
    let mut c = ClientConfig::default();
    let p = &mut c.policy;
    p.retry.max_retries = u32::from(inp.u8() % 6);
    p.retry.backoff = Backoff {
        initial: Duration::from_millis(u64::from(inp.u16())),
        max: Duration::from_millis(u64::from(inp.u16()) * 4),
        multiplier: u32::from(inp.u8() % 5),
        jitter: [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ][usize::from(inp.u8() % 4)],
    };
    p.retry.max_retry_after = match inp.u8() {
        255 => Duration::MAX,
        b => Duration::from_secs(u64::from(b)),
    };
    p.retry.honor_retry_after = inp.u8() % 4 != 0;
    p.timeouts.connect = inp.opt_ms(50);
    p.timeouts.first_token = inp.opt_ms(100);
    p.timeouts.idle = inp.opt_ms(100);
    p.timeouts.attempt = inp.opt_ms(200);
    p.timeouts.total = inp.opt_ms(300);
    let flags = inp.u8();
    if flags & 1 != 0 {
        p.budget = Some(RetryBudgetConfig {
            capacity: u32::from(inp.u8()),
            retry_cost: u32::from(inp.u8() % 10),
            ..RetryBudgetConfig::default()
        });
    } else {
        p.budget = None;
    }
    if flags & 2 != 0 {
        p.breaker = Some(BreakerConfig {
            minimum_calls: u32::from(inp.u8() % 4),
            half_open_probes: u32::from(inp.u8() % 3),
            break_duration: Duration::from_millis(u64::from(inp.u16())),
            ..BreakerConfig::default()
        });
    }
    if flags & 4 != 0 {
        let n = inp.u8();
        if n & 0x80 != 0 {
            // The adaptive limit, with windows and probes short enough to move in a run.
            p.auto_concurrency = Some(AdaptiveConfig {
                window: Duration::from_millis(u64::from(n % 8)),
                window_samples: 1,
                probe_interval: Duration::from_millis(1 + u64::from(n % 16)),
                probe_timeout: Duration::from_millis(u64::from(n % 32)),
                ..AdaptiveConfig::bounded(1, 1 + u32::from(n % 3), 1 + u32::from(n % 2))
            });
        } else {
            p.max_concurrency = Some(1 + u32::from(n % 2));
        }
    }
    if flags & 8 != 0 {
        p.rate_limit = Some(RateLimit {
            requests: 1 + u32::from(inp.u8() % 8),
            per: Duration::from_millis(1 + u64::from(inp.u16())),
            burst: u32::from(inp.u8() % 4),
        });
    }
    if flags & 16 != 0 {
        p.token_rate_limit = Some(u32::from(inp.u16() % 4096));
    }
    if flags & 32 != 0 {
        // A pool of two: failover, ejection, and (streams) a hedge and health probes.
        c.request.endpoints = vec!["http://a:8000/v1".into(), "http://b:8000/v1".into()];
        let ms = |n: u8| Duration::from_millis(u64::from(n));
        p.pool.hedge = Some(HedgeConfig::after(ms(inp.u8())).max_extra_percent(100));
        p.pool.ejection = EjectionConfig::default()
            .consecutive_connect_failures(1)
            .consecutive_failures(1)
            .max_ejected_percent(50)
            .durations(ms(inp.u8()), ms(255))
            .health_probe(ms(inp.u8().saturating_add(1)));
    }
    c
}

/// A JSON call (0), a chat stream (1) or a background Responses stream (2, resumable).
fn spec(kind: u8, max_tokens: u32) -> CallSpec {
    let body = serde_json::json!({
        "model": "m", "messages": [], "stream": kind > 0, "max_tokens": max_tokens,
    });
    match kind {
        0 => CallSpec::json(Operation::ChatCompletions, Ok(body)),
        1 => CallSpec::stream(Operation::ChatCompletions, StreamKind::Chat, Ok(body)),
        _ => {
            let body = serde_json::json!({"model": "m", "input": "x", "background": true});
            CallSpec::stream(Operation::Responses, StreamKind::Responses, Ok(body))
        }
    }
}

fn head(inp: &mut Input) -> ResponseHead {
    let status = [
        200u16, 200, 400, 404, 408, 429, 500, 501, 503, 504, 302, 999,
    ][usize::from(inp.u8() % 12)];
    let mut headers = HeaderMap::new();
    let h = inp.u8();
    if h & 1 != 0 {
        let v = inp.u16().to_string();
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert("retry-after-ms", v);
        }
    }
    if h & 2 != 0 {
        headers.insert(
            "retry-after",
            HeaderValue::from_static("99999999999999999999999"),
        );
    }
    if h & 4 != 0 {
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:44 GMT"),
        );
        headers.insert(
            "date",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
    }
    if h & 8 != 0 {
        headers.insert(
            "x-should-retry",
            HeaderValue::from_static(if h & 16 != 0 { "true" } else { "false" }),
        );
    }
    ResponseHead::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        headers,
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(inp.u16())),
    )
}

/// What the transport is doing for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    Sending,
    Open,
    Reading,
}

/// An event derived from the input, for one of the attempts in flight (or none).
fn event(inp: &mut Input, open: &[(AttemptId, Io)]) -> Option<Event> {
    let pick = usize::from(inp.u8());
    let attempt = match open {
        [] => None,
        _ => Some(open[pick % open.len()].0),
    };
    let Some(attempt) = attempt else {
        return Some(match inp.u8() % 3 {
            0 | 1 => Event::Timeout,
            _ => Event::PermitReleased,
        });
    };
    Some(match inp.u8() % 10 {
        0 => Event::Response {
            attempt,
            head: head(inp),
        },
        1 => Event::TransportError {
            attempt,
            kind: [
                TransportErrorKind::Connect,
                TransportErrorKind::ConnectTimeout,
                TransportErrorKind::Io,
                TransportErrorKind::Rejected,
            ][usize::from(inp.u8() % 4)],
            message: "fuzz".into(),
            source: None,
        },
        2 | 3 => Event::Chunk {
            attempt,
            bytes: Bytes::from_static(PIECES[usize::from(inp.u8()) % PIECES.len()]),
        },
        4 => {
            let n = usize::from(inp.u8() % 32);
            Event::Chunk {
                attempt,
                bytes: inp.bytes(n),
            }
        }
        5 => Event::BodyEnd { attempt },
        6 | 7 => Event::Timeout,
        8 => Event::PermitReleased,
        _ => return None, // cancel
    })
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input { data };
    let cfg = config(&mut inp);
    let kind = inp.u8() % 3;
    let max_tokens = u32::from(inp.u8()) * 16;
    let t0 = Instant::now();
    let mut now = t0;
    let mut shared = Shared::new(&cfg, u64::from(inp.u16()));
    let mut call = Call::new(&cfg, spec(kind, max_tokens), now, &mut shared);
    // A resumed stream never hands out a numbered event twice, nor one out of order.
    let mut last_seq: Option<u64> = None;
    let overall = cfg.policy.timeouts.total.and_then(|t| t0.checked_add(t));
    let max_sends = cfg.policy.retry.max_retries as usize + 1;
    let (mut sends, mut hedges) = (0usize, 0usize);
    let mut open: Vec<(AttemptId, Io)> = Vec::new();
    let mut cancelled = false;
    let mut done = None;
    let mut steps = 0usize;

    let check = |d: Option<Instant>| {
        if let (Some(d), Some(o)) = (d, overall) {
            assert!(d <= o, "deadline {:?} past the overall deadline", d - t0);
        }
    };

    while steps < INPUT_STEPS + FINISH_STEPS {
        steps += 1;
        let driven = !inp.is_empty() && steps <= INPUT_STEPS;
        // The production path: the shared state only when the call needs it.
        let (until, waiter) = match call.poll_with(now, || &mut shared) {
            Action::Send {
                attempt,
                purpose,
                deadline,
                ..
            } => {
                match purpose {
                    Purpose::Hedge => hedges += 1,
                    Purpose::HealthProbe => {}
                    _ => sends += 1,
                }
                assert!(sends <= max_sends, "{sends} sends > {max_sends}");
                assert!(hedges <= 1, "{hedges} hedges");
                assert!(
                    open.iter().all(|(a, _)| *a != attempt),
                    "{attempt:?} sent twice"
                );
                check(deadline);
                open.push((attempt, Io::Sending));
                continue;
            }
            Action::ReadBody { attempt, deadline } => {
                let op = open.iter_mut().find(|(a, _)| *a == attempt);
                let Some((_, io)) = op else {
                    panic!("a read of {attempt:?}, which is not in flight")
                };
                assert_eq!(*io, Io::Open, "a read of {attempt:?} while {io:?}");
                *io = Io::Reading;
                check(deadline);
                continue;
            }
            Action::Close { attempt } => {
                let before = open.len();
                open.retain(|(a, _)| *a != attempt);
                assert_eq!(
                    open.len() + 1,
                    before,
                    "{attempt:?} closed but not in flight"
                );
                continue;
            }
            Action::Wait { until, waiter, .. } => {
                check(until);
                let busy = open.iter().any(|(_, io)| *io != Io::Open);
                assert!(
                    busy || until.is_some() || waiter.is_some(),
                    "a wait for nothing"
                );
                (until, waiter)
            }
            Action::Emit(ev) => {
                if let vllm_client_core::StreamEvent::Response(r) = &ev {
                    if let Some(n) = r.sequence_number() {
                        assert!(
                            last_seq.is_none_or(|l| n > l),
                            "event #{n} after #{last_seq:?}"
                        );
                        last_seq = Some(n);
                    }
                }
                continue;
            }
            Action::Done(r) => {
                assert!(
                    open.is_empty() || cancelled,
                    "done with {open:?} still open"
                );
                done = Some(r.as_ref().map(|b| b.len()).map_err(|e| e.to_string()));
                break;
            }
        };
        if driven {
            // Clock: forward, a jump to the wait's end, or backwards.
            now = match inp.u8() % 4 {
                0 => now,
                1 => now
                    .checked_add(Duration::from_millis(u64::from(inp.u16())))
                    .unwrap_or(now),
                2 => until.unwrap_or(now).max(now),
                _ => now
                    .checked_sub(Duration::from_millis(u64::from(inp.u8())))
                    .unwrap_or(now),
            };
            match event(&mut inp, &open) {
                Some(ev) => {
                    // What the transport believes about the attempt: the fuzzer may report
                    // things that were not asked for; the core ignores those.
                    let update = match &ev {
                        Event::Response { attempt, .. } => Some((*attempt, Some(Io::Sending))),
                        Event::Chunk { attempt, .. } | Event::BodyEnd { attempt } => {
                            Some((*attempt, Some(Io::Reading)))
                        }
                        // Ends whatever was in flight for the attempt.
                        Event::TransportError { attempt, .. } => Some((*attempt, None)),
                        _ => None,
                    };
                    if let Some((attempt, from)) = update {
                        for (a, io) in open.iter_mut() {
                            if *a == attempt && from.is_none_or(|f| *io == f) {
                                *io = Io::Open;
                            }
                        }
                    }
                    call.handle(now, ev);
                }
                None => {
                    cancelled = true;
                    call.cancel(now, &mut shared);
                }
            }
        } else {
            // A well-behaved transport: every send fails, every read ends the body, every
            // other wait ends at its `until`.
            let busy = open.iter().position(|(_, io)| *io != Io::Open);
            let ev = match busy.map(|i| open[i]) {
                Some((attempt, Io::Sending)) => Event::TransportError {
                    attempt,
                    kind: TransportErrorKind::Connect,
                    message: "down".into(),
                    source: None,
                },
                Some((attempt, _)) => {
                    open.iter_mut()
                        .filter(|(a, _)| *a == attempt)
                        .for_each(|(_, io)| *io = Io::Open);
                    Event::BodyEnd { attempt }
                }
                None if until.is_none() && waiter.is_some() => {
                    cancelled = true;
                    call.cancel(now, &mut shared);
                    continue;
                }
                None => {
                    now = until.unwrap_or(now).max(now);
                    Event::Timeout
                }
            };
            if let Event::TransportError { attempt, .. } = &ev {
                // The operation is over; the attempt stays open until the core closes it.
                open.iter_mut()
                    .filter(|(a, _)| a == attempt)
                    .for_each(|(_, io)| *io = Io::Open);
            }
            call.handle(now, ev);
        }
    }
    let done = done.expect("the call did not end within the step bound");
    // Done is sticky.
    let last = call.attempt();
    for _ in 0..3 {
        now = now.checked_add(Duration::from_secs(1)).unwrap_or(now);
        call.handle(
            now,
            Event::Chunk {
                attempt: last,
                bytes: Bytes::from_static(b"data: [DONE]\n\n"),
            },
        );
        call.handle(now, Event::Timeout);
        match call.poll_with(now, || &mut shared) {
            Action::Done(r) => {
                assert_eq!(r.map(|b| b.len()).map_err(|e| e.to_string()), done)
            }
            other => panic!("after Done: {other:?}"),
        }
    }
    assert_eq!(shared.in_flight().unwrap_or(0), 0, "a permit leaked");
    let endpoints = shared.endpoints(now);
    assert!(endpoints.iter().all(|e| e.in_flight == 0), "{endpoints:?}");

    // The observations: one `Finished`, last; each attempt started once and ended once,
    // agreeing with the report.
    let obs: Vec<Observation> = std::iter::from_fn(|| call.poll_observation()).collect();
    let finished = obs
        .iter()
        .filter(|o| matches!(o, Observation::Finished { .. }))
        .count();
    assert_eq!(finished, 1, "{obs:?}");
    assert!(matches!(obs.last(), Some(Observation::Finished { .. })));
    if obs.len() < MAX_QUEUED {
        let mut open: Vec<u32> = Vec::new();
        let mut started = 0u32;
        for o in &obs {
            match o {
                Observation::AttemptStarted { attempt, .. } => {
                    started += 1;
                    assert_eq!(*attempt, started, "{obs:?}");
                    open.push(*attempt);
                }
                Observation::AttemptEnded { attempt, .. } => {
                    let i = open.iter().position(|a| a == attempt);
                    assert!(i.is_some(), "{attempt} ended but not open: {obs:?}");
                    open.retain(|a| a != attempt);
                }
                _ => {}
            }
        }
        assert!(open.is_empty(), "{open:?} never ended: {obs:?}");
        let report = call.report();
        assert_eq!(started, report.attempts + report.hedges, "{obs:?}");
        assert_eq!(
            started as usize,
            sends + hedges,
            "one AttemptStarted per Send"
        );
    }
});
