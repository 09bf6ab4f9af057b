//! The adaptive concurrency limit: properties over random sample sequences (random clock
//! steps, backwards included), the limiter that admits by it, exact timelines of a slowdown
//! and a recovery, and the driver feeding it first tokens and losses.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use vllm_client_core::call::{Action, Call, Event, ResponseHead, Shared};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::{ClientConfig, Concurrency};
use vllm_client_core::policy::{
    AdaptiveConfig, AdaptiveLimit, Admission, ChangeCause, ConcurrencyLimiter, ConcurrencyPermit,
    LimitSample, Load, LossKind, PooledLimit, WaiterId,
};
use vllm_client_core::request::Operation;
use vllm_client_core::StreamKind;

const MS: Duration = Duration::from_millis(1);

fn base() -> Instant {
    use std::sync::OnceLock;
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

// ---- strategies -------------------------------------------------------------------------------

fn any_config() -> impl Strategy<Value = AdaptiveConfig> {
    (
        (0u32..40, 0u32..300, 0u32..400),
        (0.0f64..5.0, 0.0f64..1.5, 0u64..3_000, 0u32..10, 0.0f64..1.0),
        (0.0f64..1.2, 0.0f64..1.2),
        (
            1u64..120_000,
            0.0f64..1.0,
            0.0f64..1.2,
            0u32..8,
            0u64..60_000,
            0u32..8,
        ),
    )
        .prop_map(
            |(
                (min, max, initial),
                (tolerance, smoothing, window_ms, window_samples, quantile),
                (backoff, hinted_backoff),
                (probe_ms, probe_jitter, probe_factor, probe_samples, probe_timeout_ms, cuts),
            )| AdaptiveConfig {
                min,
                max,
                initial,
                tolerance,
                smoothing,
                window: Duration::from_millis(window_ms),
                window_samples,
                quantile,
                backoff,
                hinted_backoff,
                probe_interval: Duration::from_millis(probe_ms),
                probe_jitter,
                probe_factor,
                probe_samples,
                probe_timeout: Duration::from_millis(probe_timeout_ms),
                probe_after_cuts: cuts,
            },
        )
}

fn any_loss() -> impl Strategy<Value = LossKind> {
    prop_oneof![
        Just(LossKind::TooManyRequests),
        Just(LossKind::Unavailable),
        Just(LossKind::Connect),
        Just(LossKind::FirstTokenTimeout),
    ]
}

fn any_sample() -> impl Strategy<Value = LimitSample> {
    prop_oneof![
        4 => (0u64..5_000, 0usize..200_000).prop_map(|(ms, prompt_bytes)| LimitSample::FirstToken {
            ttft: Duration::from_millis(ms),
            prompt_bytes,
        }),
        1 => (any::<u64>(), any::<usize>()).prop_map(|(ns, prompt_bytes)| LimitSample::FirstToken {
            ttft: Duration::from_nanos(ns),
            prompt_bytes,
        }),
        1 => (any_loss(), any::<bool>()).prop_map(|(kind, hinted)| LimitSample::Loss { kind, hinted }),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Sample(LimitSample, Load),
    Tick(Load),
}

fn any_load() -> impl Strategy<Value = Load> {
    (0u32..400, 0usize..100).prop_map(|(in_flight, waiting)| Load { in_flight, waiting })
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any_sample(), any_load()).prop_map(|(s, l)| Op::Sample(s, l)),
        1 => any_load().prop_map(Op::Tick),
    ]
}

/// Clock steps in milliseconds; negative ones go back in time.
fn any_step() -> impl Strategy<Value = i64> {
    prop_oneof![8 => 0i64..2_000, 1 => -2_000i64..0, 1 => 0i64..120_000]
}

fn advance(now: Instant, step: i64) -> Instant {
    if step >= 0 {
        now + Duration::from_millis(step as u64)
    } else {
        now.checked_sub(Duration::from_millis(step.unsigned_abs()))
            .unwrap_or(now)
    }
}

// ---- properties -------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Whatever happens, the limit in force stays within [min, max] (as sanitized: min ≥ 1).
    #[test]
    fn limit_stays_within_bounds(
        config in any_config(),
        seed in any::<u64>(),
        ops in prop::collection::vec((any_op(), any_step()), 0..200),
    ) {
        let c = config.sanitized();
        prop_assert!(c.min >= 1 && c.min <= c.max);
        let mut l = AdaptiveLimit::new(config, seed);
        let mut now = base();
        prop_assert!((c.min..=c.max).contains(&l.limit()));
        for (op, step) in ops {
            now = advance(now, step);
            match op {
                Op::Sample(s, load) => { l.record(now, s, load); }
                Op::Tick(load) => { l.tick(now, load); }
            }
            prop_assert!((c.min..=c.max).contains(&l.limit()), "{} not in [{}, {}]", l.limit(), c.min, c.max);
            let raw = l.snapshot().raw_limit;
            prop_assert!(raw.is_finite() && raw >= f64::from(c.min) && raw <= f64::from(c.max));
        }
    }

    /// Under sustained loss (one loss per window) the limit reaches `min` within the number
    /// of cuts the backoff factor implies, and stays there — never below, and a limiter set to
    /// it still admits a call.
    #[test]
    fn sustained_loss_reaches_min_and_never_stalls(
        config in any_config(),
        seed in any::<u64>(),
        warmup in prop::collection::vec((any_op(), any_step()), 0..50),
        kinds in prop::collection::vec((any_loss(), any::<bool>()), 1..8),
    ) {
        let c = config.sanitized();
        let mut l = AdaptiveLimit::new(config, seed);
        let mut now = base();
        let mut latest = now;
        for (op, step) in warmup {
            now = advance(now, step);
            latest = latest.max(now);
            match op {
                Op::Sample(s, load) => { l.record(now, s, load); }
                Op::Tick(load) => { l.tick(now, load); }
            }
        }
        // The limiter takes an earlier `now` as the latest one: start after it.
        now = latest;
        // The most cuts needed: max × backoff^n < min + 1 (the limit is rounded down).
        let worst = c.backoff.max(c.hinted_backoff);
        let needed = if worst < 1.0 {
            ((f64::from(c.max) / f64::from(c.min)).ln() / (1.0 / worst).ln()).ceil() as usize + 2
        } else {
            0
        };
        let gap = c.window + MS;
        for k in 0..needed.min(2_000) + 20 {
            now += gap;
            let (kind, hinted) = kinds[k % kinds.len()];
            l.record(now, LimitSample::Loss { kind, hinted }, Load { in_flight: 0, waiting: 3 });
            prop_assert!(l.limit() >= c.min);
        }
        // A backoff within a hair of 1 needs more cuts than the loop makes (the cap keeps a
        // case fast): then only the floor above is checked.
        if worst < 1.0 && needed <= 2_000 {
            // Probes may hold the limit at probe_factor × limit, which is min too by then.
            prop_assert_eq!(l.limit(), c.min);
        }
        let mut limiter = ConcurrencyLimiter::new(l.limit());
        prop_assert!(limiter.try_acquire().is_some(), "min {} admits a call", c.min);
    }

    /// A client that never uses its limit (in flight + waiting below it at every sample)
    /// never raises it, whatever the TTFTs.
    #[test]
    fn app_limited_never_raises(
        config in any_config(),
        seed in any::<u64>(),
        samples in prop::collection::vec((0u64..5_000, 0usize..100_000, 0u64..2_000, 0.0f64..1.0), 0..200),
    ) {
        let c = config.sanitized();
        let mut l = AdaptiveLimit::new(config, seed);
        let mut now = base();
        let mut highest = l.limit();
        for (ttft_ms, bytes, step, use_share) in samples {
            now += Duration::from_millis(step);
            let limit = l.limit();
            // Strictly below the limit in force (and the probe's, which is lower).
            let in_flight = ((f64::from(limit) * use_share) as u32).min(limit.saturating_sub(1));
            let load = Load { in_flight, waiting: 0 };
            l.record(now, LimitSample::FirstToken { ttft: Duration::from_millis(ttft_ms), prompt_bytes: bytes }, load);
            prop_assert!(l.limit() <= highest, "raised from {} to {}", highest, l.limit());
            if !l.is_probing() {
                highest = highest.min(l.limit()).max(c.min);
            }
        }
    }

    /// A baseline probe always ends: at the latest at its timeout, whatever samples came.
    #[test]
    fn a_probe_always_ends(
        config in any_config(),
        seed in any::<u64>(),
        ops in prop::collection::vec((any_op(), 0i64..1_000), 0..100),
    ) {
        let c = config.sanitized();
        let mut l = AdaptiveLimit::new(config, seed);
        let t0 = base();
        l.tick(t0, Load::default());
        // Jump to the first probe.
        let due = l.snapshot().next_probe.expect("scheduled at the first observation");
        l.tick(due, Load { in_flight: 1_000, waiting: 0 });
        prop_assert!(l.is_probing());
        let mut now = due;
        for (op, step) in ops {
            now = advance(now, step);
            if now.saturating_duration_since(due) >= c.probe_timeout {
                break;
            }
            match op {
                Op::Sample(s, load) => { l.record(now, s, load); }
                Op::Tick(load) => { l.tick(now, load); }
            }
        }
        l.tick(due + c.probe_timeout, Load { in_flight: 1_000, waiting: 0 });
        // That probe is over (another one may have started since, when they are frequent).
        let started = l.snapshot().probe_started;
        prop_assert!(started.is_none_or(|t| t > due), "{started:?} vs {due:?}");
    }

    /// The limiter that admits by the adaptive limit never admits a call while the calls in
    /// flight are at or above the limit in force; in flight exceeds the limit only after a cut,
    /// and only by calls admitted before it.
    #[test]
    fn in_flight_never_exceeds_the_limit(
        config in any_config(),
        seed in any::<u64>(),
        ops in prop::collection::vec((0u8..4, any_sample(), 0u64..500, any::<prop::sample::Index>()), 0..300),
    ) {
        let mut a = AdaptiveLimit::new(config, seed);
        let mut lim = ConcurrencyLimiter::new(a.limit());
        let mut permits: Vec<ConcurrencyPermit> = Vec::new();
        let mut waiters: Vec<WaiterId> = Vec::new();
        let mut now = base();
        for (kind, sample, step, pick) in ops {
            now += Duration::from_millis(step);
            let before = lim.in_flight();
            match kind {
                0 => match lim.acquire() {
                    Admission::Admitted(p) => {
                        prop_assert!(before < lim.max(), "admitted at {before} ≥ {}", lim.max());
                        permits.push(p);
                    }
                    Admission::Queued(w) => waiters.push(w),
                },
                1 if !permits.is_empty() => {
                    let p = permits.swap_remove(pick.index(permits.len()));
                    prop_assert!(lim.release(p));
                }
                _ => {
                    let load = Load { in_flight: lim.in_flight(), waiting: lim.waiting() };
                    a.record(now, sample, load);
                    lim.set_max(a.limit());
                }
            }
            // Woken waiters claim their slots.
            while let Some(w) = lim.poll_wake() {
                let p = lim.claim(w);
                prop_assert!(p.is_some());
                permits.extend(p);
                waiters.retain(|x| *x != w);
            }
            prop_assert!(
                lim.in_flight() <= lim.max().max(before),
                "in flight {} > max({}, {before})", lim.in_flight(), lim.max()
            );
            prop_assert_eq!(lim.in_flight() as usize, permits.len());
            // Nobody waits while a slot is free.
            if lim.in_flight() < lim.max() {
                prop_assert_eq!(lim.waiting(), 0);
            }
        }
    }
}

// ---- exact timelines ---------------------------------------------------------------------------

// ---- the pooled limit (congestion-window validation) ---------------------------------------------

/// One step of a pooled limit's life: time passes, the endpoints' sum changes, a call is sent
/// with this demand, or a first token comes with this load.
#[derive(Debug, Clone)]
enum PoolOp {
    Bound(u32),
    Demand(u32),
    FirstToken(Load),
}

fn any_pool_op(top: u32) -> impl Strategy<Value = PoolOp> {
    prop_oneof![
        1 => (0u32..2_000).prop_map(PoolOp::Bound),
        2 => (0u32..=top).prop_map(PoolOp::Demand),
        6 => (0u32..=top, 0usize..=(top as usize)).prop_map(|(in_flight, waiting)| {
            PoolOp::FirstToken(Load { in_flight, waiting })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Validation never lowers a pooled limit below one endpoint's `initial`; it grows at most
    /// twice per window (slow start) unless it follows the endpoints' sum; and while the client
    /// never reaches it (application-limited), a limit in force never rises.
    #[test]
    fn pooled_limit_floor_growth_and_no_rise_when_unused(
        config in any_config(),
        endpoints in 1usize..20,
        ops in prop::collection::vec((any_pool_op(400), any_step()), 0..300),
    ) {
        let c = config.sanitized();
        let mut p = PooledLimit::new(config, endpoints);
        let mut now = base();
        // Whether the client ever reached the pooled limit in force.
        let mut ever_reached = false;
        for (op, step) in ops {
            now = advance(now, step);
            let before = p.limit();
            let d = match &op {
                PoolOp::Bound(_) => None,
                PoolOp::Demand(d) => Some(*d),
                PoolOp::FirstToken(load) => Some(load.in_flight.saturating_add(load.waiting as u32)),
            };
            if let (Some(d), Some(l)) = (d, before) {
                ever_reached |= d >= l;
            }
            match op {
                PoolOp::Bound(b) => p.set_bound(b),
                PoolOp::Demand(d) => p.note_demand(d),
                PoolOp::FirstToken(load) => { p.record(now, load); }
            }
            let after = p.limit();
            if let Some(l) = after {
                prop_assert!(l >= c.initial.max(1), "validated below initial: {l} < {}", c.initial);
                if let Some(b) = before {
                    prop_assert!(u64::from(l) <= 2 * u64::from(b) + 1, "{b} → {l} in one step");
                }
            }
            if let (false, Some(b)) = (ever_reached, before) {
                // Application-limited all along: once validated, it only falls.
                prop_assert!(after.is_some_and(|l| l <= b), "{b} → {after:?} while never used");
            }
        }
    }

    /// Ratios within the tolerance change nothing (the same life without them gives the same
    /// limits); a congested delay window never raises the limit; and the limit in force stays
    /// within [min, endpoints × max].
    #[test]
    fn pooled_limit_delay_window(
        config in any_config(),
        endpoints in 1usize..20,
        ops in prop::collection::vec((any_pool_op(400), any_step(), 0.0f64..1.0, any::<bool>()), 0..300),
    ) {
        let c = config.sanitized();
        let mut calm = PooledLimit::new(config, endpoints);
        let mut bare = PooledLimit::new(config, endpoints);
        let mut hot = PooledLimit::new(config, endpoints);
        let mut now = base();
        let top = u64::from(c.max) * endpoints as u64;
        for (op, step, u, congested) in ops {
            now = advance(now, step);
            let before = hot.limit();
            match op {
                PoolOp::Bound(b) => {
                    calm.set_bound(b);
                    bare.set_bound(b);
                    hot.set_bound(b);
                }
                PoolOp::Demand(d) => {
                    calm.note_demand(d);
                    bare.note_demand(d);
                }
                PoolOp::FirstToken(load) => {
                    calm.note_ratio(u * (1.0 + c.tolerance));
                    calm.record(now, load);
                    bare.record(now, load);
                    // Congested ratios on `hot`, and a load that never reaches its limit, so
                    // only the delay window (and validation) may move it.
                    let ratio = if congested { 2.0 * (1.0 + c.tolerance) + 1.0 } else { 1.0 };
                    hot.note_ratio(ratio);
                    let idle = Load { in_flight: 0, waiting: 0 };
                    hot.record(now, idle);
                }
            }
            prop_assert_eq!(calm.limit(), bare.limit());
            if let (Some(b), Some(l)) = (before, hot.limit()) {
                prop_assert!(l <= b, "{b} → {l} without use");
            }
            if let Some(l) = hot.limit() {
                prop_assert!(l >= c.min && u64::from(l) <= top.max(1), "{l} outside [{}, {top}]", c.min);
            }
        }
    }

    /// A client whose demand never exceeds `d` ends, after the non-validated period and enough
    /// windows, with a limit of at most max(initial, d + √d) (+1 for rounding), whatever the
    /// endpoints' sum — and never binds before the non-validated period has passed.
    #[test]
    fn pooled_limit_converges_to_what_the_client_uses(
        initial in 1u32..60,
        endpoints in 1usize..20,
        d in 0u32..200,
        bound in 0u32..3_000,
        gaps in prop::collection::vec(1u64..600, 200..400),
    ) {
        let config = AdaptiveConfig::bounded(1, 1000, initial);
        let mut p = PooledLimit::new(config, endpoints);
        p.set_bound(bound);
        let start = base();
        let mut now = start;
        let mut k = 0u32;
        for gap in &gaps {
            now += Duration::from_millis(*gap);
            k = k.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let in_flight = if d == 0 { 0 } else { k % (d + 1) };
            p.record(now, Load { in_flight, waiting: 0 });
            if now.duration_since(start) < vllm_client_core::policy::adaptive::pooled::NON_VALIDATED_PERIOD {
                prop_assert_eq!(p.limit(), None);
            }
            if let Some(l) = p.limit() {
                prop_assert!(l >= initial, "validated below initial: {l} < {initial}");
            }
        }
        // Enough windows past the period: 200 first tokens at most 600 ms apart span at least
        // 50 windows of 4 samples, halving the distance each time.
        let elapsed = now.duration_since(start);
        if elapsed > Duration::from_secs(60) {
            let df = f64::from(d);
            let cap = (df + df.sqrt()).max(f64::from(initial)).floor() as u32 + 1;
            let in_force = p.limit().unwrap_or(bound);
            prop_assert!(in_force <= cap, "{in_force} > {cap} (d {d}, bound {bound}, {elapsed:?})");
        }
    }
}

/// Probes off, so that a timeline is the delay path alone.
fn no_probes(min: u32, max: u32, initial: u32) -> AdaptiveConfig {
    AdaptiveConfig {
        probe_interval: Duration::from_secs(1_000_000),
        probe_after_cuts: 0,
        ..AdaptiveConfig::bounded(min, max, initial)
    }
}

/// Four samples of `ttft` over one second (the window), the client using its limit; returns
/// the limit after the window closed.
fn window(l: &mut AdaptiveLimit, start: Instant, ttft: Duration) -> u32 {
    for k in 0..4u32 {
        let load = Load {
            in_flight: l.limit(),
            waiting: 5,
        };
        l.record(
            start + Duration::from_millis(334) * k,
            LimitSample::FirstToken {
                ttft,
                prompt_bytes: 2_000,
            },
            load,
        );
    }
    l.limit()
}

#[test]
fn a_slowdown_and_a_recovery_exact_timeline() {
    let t0 = base();
    let mut l = AdaptiveLimit::new(no_probes(1, 100, 16), 0);
    let mut at = t0;
    let mut next = |l: &mut AdaptiveLimit, ttft_ms: u64| {
        let r = window(l, at, Duration::from_millis(ttft_ms));
        at += Duration::from_secs(1);
        r
    };
    // Uncongested (every sample at the 100 ms baseline): limit += ½·√limit per window.
    //   16 → 18 (16 + 2) → 20.12 → 22.36 → 24.73
    assert_eq!(
        [0; 4].map(|_| next(&mut l, 100)),
        [18, 20, 22, 24],
        "growth by ½√limit"
    );
    let grown = l.snapshot().raw_limit;
    assert!((grown - 24.7286).abs() < 1e-3, "{grown}");
    // The server slows down: TTFT 1 s, 10× the baseline → gradient 4/10, clamped to 0.5. The
    // first cut starts at the congestion point (headroom 1): L ← L + ½(L/2 + 1 − L).
    let ceiling = grown;
    let mut expected = 0.75 * grown + 0.5;
    assert_eq!(next(&mut l, 1_000), 19);
    assert!((l.snapshot().raw_limit - expected).abs() < 1e-9);
    assert_eq!(l.snapshot().last_gradient, 0.5);
    // Further from it, the headroom is √L again: L ← L + ½(L/2 + √L − L).
    let mut seen = Vec::new();
    for _ in 0..3 {
        expected = 0.75 * expected + 0.5 * expected.sqrt();
        seen.push(next(&mut l, 1_000));
        assert!((l.snapshot().raw_limit - expected).abs() < 1e-9);
    }
    assert_eq!(seen, [16, 14, 12]);
    // TTFT 350 ms: ratio 3.5 ≤ 1 + tolerance (4) → gradient 1; growth ½√L.
    let low = l.snapshot().raw_limit;
    assert_eq!(next(&mut l, 350), 14);
    let expected = low + 0.5 * low.sqrt();
    assert!((l.snapshot().raw_limit - expected).abs() < 1e-9);
    assert_eq!(l.snapshot().last_gradient, 1.0);
    // Recovery at 100 ms: ½√L per window up to 90 % of the congestion point (22.26), then
    // one slot per two windows through it.
    let mut trace = Vec::new();
    for _ in 0..8 {
        trace.push(next(&mut l, 100));
    }
    assert_eq!(trace, [16, 18, 20, 22, 23, 23, 24, 24]);
    let near = l.snapshot().raw_limit;
    assert!(near >= 0.9 * ceiling && near <= 1.1 * ceiling);
    assert_eq!(next(&mut l, 100), 25);
    assert!(
        (l.snapshot().raw_limit - (near + 0.5)).abs() < 1e-9,
        "+½ near the ceiling"
    );
}

#[test]
fn a_hinted_429_cuts_harder_than_a_connect_failure() {
    let t0 = base();
    let mut l = AdaptiveLimit::new(no_probes(2, 100, 80), 0);
    let c = l
        .record(
            t0,
            LimitSample::Loss {
                kind: LossKind::Connect,
                hinted: false,
            },
            Load::default(),
        )
        .expect("a cut");
    assert_eq!((c.from, c.to), (80, 72));
    let c = l
        .record(
            t0 + Duration::from_secs(1),
            LimitSample::Loss {
                kind: LossKind::TooManyRequests,
                hinted: true,
            },
            Load::default(),
        )
        .expect("a cut");
    assert_eq!((c.from, c.to), (72, 36));
    assert_eq!(c.cause, ChangeCause::Loss(LossKind::TooManyRequests));
}

// ---- through the driver ------------------------------------------------------------------------

mod support;

fn stream_spec(prompt: &str) -> CallSpec {
    CallSpec::stream(
        Operation::ChatCompletions,
        StreamKind::Chat,
        Ok(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": prompt}]})),
    )
}

fn head(
    status: u16,
    content_type: &'static str,
    extra: &[(&'static str, &'static str)],
) -> ResponseHead {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    for (k, v) in extra {
        h.insert(*k, HeaderValue::from_static(v));
    }
    ResponseHead::new(
        StatusCode::from_u16(status).expect("a status"),
        h,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_760_000_000),
    )
}

#[test]
fn the_driver_feeds_first_tokens_and_losses() {
    let mut config = ClientConfig::default();
    config.policy.set_concurrency(Some(Concurrency::Auto {
        min: 1,
        max: 50,
        initial: 10,
    }));
    config.policy.retry.max_retries = 0;
    let t0 = base();
    let mut shared = Shared::new(&config, 7);
    let snap = shared.concurrency_snapshot().expect("a limit");
    assert_eq!((snap.limit, snap.in_flight), (10, 0));

    // A stream whose first token comes 250 ms after the request: the baseline of its bucket.
    let prompt = "x".repeat(3_000);
    let mut call = Call::new(&config, stream_spec(&prompt), t0, &mut shared);
    let attempt = support::send(&mut call, t0, &mut shared);
    assert_eq!(shared.in_flight(), Some(1));
    let ok = head(200, "text/event-stream", &[]);
    call.handle(t0 + 5 * MS, Event::Response { attempt, head: ok });
    assert!(matches!(
        call.poll(t0 + 5 * MS, &mut shared),
        Action::ReadBody { .. }
    ));
    let t1 = t0 + 250 * MS;
    call.handle(
        t1,
        Event::Chunk {
            attempt,
            bytes: Bytes::from_static(
                b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
            ),
        },
    );
    // What the call owes the shared state is paid at its next poll.
    assert!(matches!(call.poll(t1, &mut shared), Action::Emit(_)));
    let snap = shared.concurrency_snapshot().expect("a limit");
    let adaptive = snap.adaptive.expect("adaptive");
    let bucket = vllm_client_core::policy::adaptive::bucket_of(call_body_len(&prompt));
    assert_eq!(adaptive.baselines[bucket], Some(250 * MS));
    assert_eq!(adaptive.baselines.iter().flatten().count(), 1);
    call.cancel(t1, &mut shared);
    assert_eq!(shared.in_flight(), Some(0));

    // A 503 with Retry-After: the limit halves, and the change is there to be logged.
    let mut call = Call::new(&config, stream_spec("hi"), t1, &mut shared);
    let attempt = support::send(&mut call, t1, &mut shared);
    let busy = head(503, "application/json", &[("retry-after", "1")]);
    let (_, end) = support::answer(&mut call, t1, &mut shared, attempt, busy, &[], true);
    assert!(matches!(end, Action::Done(Err(_))), "{end:?}");
    assert_eq!(shared.concurrency_limit(), Some(5));
    let change = shared.poll_limit_change().expect("logged");
    assert_eq!((change.from, change.to), (10, 5));
    assert_eq!(change.cause, ChangeCause::Loss(LossKind::Unavailable));
    assert!(shared.poll_limit_change().is_none());
}

/// The length of the body `stream_spec(prompt)` sends.
fn call_body_len(prompt: &str) -> usize {
    let mut config = ClientConfig::default();
    config.policy.retry.max_retries = 0;
    let mut shared = Shared::new(&config, 1);
    let t0 = base();
    let mut call = Call::new(&config, stream_spec(prompt), t0, &mut shared);
    match call.poll(t0, &mut shared) {
        Action::Send { request, .. } => request.body().len(),
        other => panic!("expected a send, got {other:?}"),
    }
}

#[test]
fn fixed_and_auto_through_the_builder_types() {
    let fixed: Concurrency = 8.into();
    assert_eq!(fixed, Concurrency::Fixed(8));
    let mut p = vllm_client_core::config::PolicyConfig::default();
    p.set_concurrency(Some(Concurrency::auto()));
    assert_eq!(
        p.concurrency(),
        Some(Concurrency::Auto {
            min: 1,
            max: 1000,
            initial: 20
        })
    );
    p.set_concurrency(Some(Concurrency::Fixed(3)));
    assert_eq!(p.concurrency(), Some(Concurrency::Fixed(3)));
    assert!(p.auto_concurrency.is_none());
    // `max_concurrency(0)` is refused; an Auto limit never is (its min is at least 1).
    p.set_concurrency(Some(Concurrency::Auto {
        min: 0,
        max: 0,
        initial: 0,
    }));
    let mut config = ClientConfig::default();
    config.policy = p;
    let shared = Shared::new(&config, 1);
    assert_eq!(shared.concurrency_limit(), Some(1));
}
