//! Fuzzes the call driver with arbitrary events and clock steps (including time going
//! backwards, events that do not match the action, cancellation), all derived from the input.
//!
//! Checks: no panic; once the input is used up, a well-behaved adapter brings the call to
//! `Done` within a bound; never more than `1 + max_retries` sends; no deadline or sleep end
//! handed out past the overall deadline; after `Done`, `Done` stays; the concurrency permit
//! comes back; the call's observations end with exactly one `Finished`, its attempts open and
//! close in order and agree with the report.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use vllm_client_core::call::observe::MAX_QUEUED;
use vllm_client_core::call::{
    Action, Call, Event, Observation, ResponseHead, Shared, TransportErrorKind,
};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::{ClientConfig, RateLimit};
use vllm_client_core::policy::{
    AdaptiveConfig, Backoff, BreakerConfig, Jitter, RetryBudgetConfig,
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
    c
}

fn spec(stream: bool, max_tokens: u32) -> CallSpec {
    let body = serde_json::json!({
        "model": "m", "messages": [], "stream": stream, "max_tokens": max_tokens,
    });
    if stream {
        CallSpec::stream(Operation::ChatCompletions, StreamKind::Chat, Ok(body))
    } else {
        CallSpec::json(Operation::ChatCompletions, Ok(body))
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

fn event(inp: &mut Input) -> Option<Event> {
    Some(match inp.u8() % 10 {
        0 => Event::Response(head(inp)),
        1 => Event::TransportError {
            kind: [
                TransportErrorKind::Connect,
                TransportErrorKind::ConnectTimeout,
                TransportErrorKind::Io,
            ][usize::from(inp.u8() % 3)],
            message: "fuzz".into(),
        },
        2 | 3 => Event::Chunk(Bytes::from_static(
            PIECES[usize::from(inp.u8()) % PIECES.len()],
        )),
        4 => {
            let n = usize::from(inp.u8() % 32);
            Event::Chunk(inp.bytes(n))
        }
        5 => Event::BodyEnd,
        6 | 7 => Event::Timeout,
        8 => Event::PermitReleased,
        _ => return None, // cancel
    })
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input { data };
    let cfg = config(&mut inp);
    let stream = inp.u8() & 1 == 1;
    let max_tokens = u32::from(inp.u8()) * 16;
    let t0 = Instant::now();
    let mut now = t0;
    let mut shared = Shared::new(&cfg.policy, u64::from(inp.u16()));
    let mut call = Call::new(&cfg, spec(stream, max_tokens), now, &mut shared);
    let overall = cfg.policy.timeouts.total.and_then(|t| t0.checked_add(t));
    let max_sends = cfg.policy.retry.max_retries as usize + 1;
    let mut sends = 0usize;
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
        // Clock: forward, a jump to the last deadline, or backwards.
        let action = call.poll(now, &mut shared);
        let deadline = match &action {
            Action::Send { deadline: d, .. } => {
                sends += 1;
                assert!(sends <= max_sends, "{sends} sends > {max_sends}");
                check(*d);
                *d
            }
            Action::ReadBody { deadline: d, .. } | Action::WaitForPermit { deadline: d, .. } => {
                check(*d);
                *d
            }
            Action::Sleep { until, .. } => {
                check(Some(*until));
                Some(*until)
            }
            Action::Emit(_) => continue,
            Action::Done(r) => {
                done = Some(r.as_ref().map(|b| b.len()).map_err(|e| e.to_string()));
                break;
            }
        };
        if driven {
            now = match inp.u8() % 4 {
                0 => now,
                1 => now
                    .checked_add(Duration::from_millis(u64::from(inp.u16())))
                    .unwrap_or(now),
                2 => deadline.unwrap_or(now).max(now),
                _ => now
                    .checked_sub(Duration::from_millis(u64::from(inp.u8())))
                    .unwrap_or(now),
            };
            match event(&mut inp) {
                Some(ev) => call.handle(now, ev, &mut shared),
                None => call.cancel(now, &mut shared),
            }
        } else {
            // A well-behaved adapter: every wait ends at its deadline, every send fails.
            now = deadline.unwrap_or(now).max(now);
            let ev = match action {
                Action::Send { .. } => Event::TransportError {
                    kind: TransportErrorKind::Connect,
                    message: "down".into(),
                },
                Action::ReadBody { .. } => Event::BodyEnd,
                Action::WaitForPermit { deadline: None, .. } => {
                    call.cancel(now, &mut shared);
                    continue;
                }
                _ => Event::Timeout,
            };
            call.handle(now, ev, &mut shared);
        }
    }
    let done = done.expect("the call did not end within the step bound");
    // Done is sticky.
    for _ in 0..3 {
        now = now.checked_add(Duration::from_secs(1)).unwrap_or(now);
        call.handle(
            now,
            Event::Chunk(Bytes::from_static(b"data: [DONE]\n\n")),
            &mut shared,
        );
        call.handle(now, Event::Timeout, &mut shared);
        match call.poll(now, &mut shared) {
            Action::Done(r) => {
                assert_eq!(r.map(|b| b.len()).map_err(|e| e.to_string()), done)
            }
            other => panic!("after Done: {other:?}"),
        }
    }
    assert_eq!(shared.in_flight().unwrap_or(0), 0, "a permit leaked");

    // The observations: one `Finished`, last; attempts in order, agreeing with the report.
    let obs: Vec<Observation> = std::iter::from_fn(|| call.poll_observation()).collect();
    let finished = obs
        .iter()
        .filter(|o| matches!(o, Observation::Finished { .. }))
        .count();
    assert_eq!(finished, 1, "{obs:?}");
    assert!(matches!(obs.last(), Some(Observation::Finished { .. })));
    if obs.len() < MAX_QUEUED {
        let mut open = None;
        let mut started = 0u32;
        for o in &obs {
            match o {
                Observation::AttemptStarted { attempt, .. } => {
                    assert!(open.is_none(), "{obs:?}");
                    started += 1;
                    assert_eq!(*attempt, started);
                    open = Some(*attempt);
                }
                Observation::AttemptEnded { attempt, .. } => {
                    assert_eq!(open.take(), Some(*attempt), "{obs:?}");
                }
                _ => {}
            }
        }
        assert_eq!(started, call.report().attempts, "{obs:?}");
        assert_eq!(started as usize, sends, "one AttemptStarted per Send");
    }
});
