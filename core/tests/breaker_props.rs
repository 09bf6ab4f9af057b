//! Property tests for the circuit breaker's half-open episodes: the probe cap is per episode,
//! no outcome recorded with a current permit is dropped, and nothing wedges the breaker.
//!
//! An episode is one HalfOpen generation (every transition bumps the generation, and a
//! half-open permit carries the generation that admitted it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use vllm_client_core::policy::*;

fn base() -> Instant {
    use std::sync::OnceLock;
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(offset: Duration) -> Instant {
    base() + offset
}

fn small_duration(max_ms: u64) -> impl Strategy<Value = Duration> {
    (0..=max_ms * 1_000_000).prop_map(Duration::from_nanos)
}

/// Configurations that trip easily and reach half-open often (short breaks, small minimums).
fn breaker_config() -> impl Strategy<Value = BreakerConfig> {
    (
        prop_oneof![
            (1u32..8).prop_map(|size| SlidingWindow::Count { size }),
            (small_duration(5_000), 0u32..6)
                .prop_map(|(length, buckets)| SlidingWindow::Time { length, buckets }),
        ],
        1u8..=100,
        prop_oneof![Just(100u8), 1u8..=100],
        small_duration(2_000),
        0u32..5,
        prop_oneof![Just(Duration::ZERO), small_duration(3_000)],
        0u32..3,
        prop_oneof![Just(Duration::ZERO), small_duration(8_000)],
        0u32..5,
        prop_oneof![Just(Duration::ZERO), small_duration(4_000)],
    )
        .prop_map(
            |(window, fr, sr, slow, min, brk, mult, maxb, probes, lease)| BreakerConfig {
                window,
                failure_rate_threshold: fr,
                slow_call_rate_threshold: sr,
                slow_call_duration: slow,
                minimum_calls: min,
                break_duration: brk,
                break_multiplier: mult,
                max_break_duration: maxb,
                half_open_probes: probes,
                probe_lease: lease,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record {
        idx: usize,
        kind: u8,
        ttfb: Duration,
    },
    Step {
        back: bool,
        by: Duration,
    },
    ForceOpen,
    Disable,
    Reset,
}

/// `ignored`: whether Ignored outcomes occur at all.
fn op(ignored: bool) -> impl Strategy<Value = Op> {
    let kinds = if ignored { 0u8..5 } else { 0u8..4 };
    prop_oneof![
        6 => Just(Op::Acquire),
        6 => (any::<usize>(), kinds, small_duration(3_000))
            .prop_map(|(idx, kind, ttfb)| Op::Record { idx, kind, ttfb }),
        4 => (prop::bool::weighted(0.15), small_duration(3_000))
            .prop_map(|(back, by)| Op::Step { back, by }),
        1 => prop_oneof![Just(Op::ForceOpen), Just(Op::Disable), Just(Op::Reset)],
    ]
}

fn outcome(kind: u8, ttfb: Duration) -> Outcome {
    match kind {
        0 => Outcome::Success { ttfb },
        1 => Outcome::Success {
            ttfb: Duration::ZERO,
        },
        2 => Outcome::Failure { ttfb: Some(ttfb) },
        3 => Outcome::Failure { ttfb: None },
        _ => Outcome::Ignored,
    }
}

/// The longest the breaker can go without admitting, when nothing reports and nobody forces
/// it open: a full episode's lease, then the longest break.
fn horizon(c: &BreakerConfig) -> Duration {
    c.probe_lease.max(Duration::from_nanos(1)) + c.max_break_duration.max(c.break_duration)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Over random acquire / record / clock-step / force / disable / reset sequences:
    /// * per half-open episode, probes admitted (less those given back as Ignored) ≤
    ///   `half_open_probes` — and, when nothing is ever Ignored, probes admitted ≤
    ///   `half_open_probes` outright;
    /// * `record` counts exactly the outcomes recorded with a permit of the current generation
    ///   that are not Ignored, on a breaker that is not Disabled — a failure among them is
    ///   visible at once (the breaker is Open, or the failure is in the Closed window);
    /// * the breaker never closes while a probe of the episode is outstanding (so no probe
    ///   outcome can arrive after its episode closed);
    /// * unless forced open, it admits again within one lease plus the longest break.
    #[test]
    fn breaker_episodes(config in breaker_config(), (ignored, ops) in any::<bool>().prop_flat_map(|i| (Just(i), prop::collection::vec(op(i), 1..80)))) {
        let n_max = config.half_open_probes.max(1);
        let mut b = CircuitBreaker::new(config);
        let mut offset = Duration::from_secs(3600);
        let mut latest: Option<Instant> = None;
        let mut held: Vec<BreakerPermit> = Vec::new();
        // Per half-open generation: (probes admitted, probes given back as Ignored).
        let mut episode: HashMap<u64, (u32, u32)> = HashMap::new();
        for op in ops {
            let raw = at(offset);
            // The time the breaker will have seen after this operation (it clamps `raw`).
            let now = latest.map_or(raw, |l: Instant| l.max(raw));
            let calls_breaker = match op {
                Op::Step { .. } => false,
                Op::Record { .. } => !held.is_empty(),
                _ => true,
            };
            if calls_breaker {
                latest = Some(now);
            }
            match op {
                Op::Acquire => {
                    let state = b.state(raw);
                    if let Ok(p) = b.try_acquire(raw) {
                        if p.is_probe() {
                            prop_assert_eq!(state, BreakerState::HalfOpen);
                            let e = episode.entry(p.generation()).or_default();
                            e.0 += 1;
                            prop_assert!(e.0 - e.1 <= n_max, "episode admitted {} (ignored {}) > {}", e.0, e.1, n_max);
                            if !ignored {
                                prop_assert!(e.0 <= n_max);
                            }
                        }
                        held.push(p);
                    } else if state == BreakerState::HalfOpen {
                        // Refused in half-open only once the episode is full.
                        let e = episode.get(&b.generation()).copied().unwrap_or_default();
                        prop_assert_eq!(e.0 - e.1, n_max);
                    }
                }
                Op::Record { idx, kind, ttfb } => {
                    if held.is_empty() { continue; }
                    let p = held.swap_remove(idx % held.len());
                    // Materialize what is due (an ended lease, the end of a break) first.
                    b.tick(raw);
                    let state = b.state(raw);
                    let gen = b.generation();
                    let fresh = p.generation() == gen;
                    let is_probe = p.is_probe();
                    let o = outcome(kind, ttfb);
                    let before = b.metrics(raw);
                    let counted = b.record(raw, p, o);
                    let expect = fresh && o != Outcome::Ignored && state != BreakerState::Disabled;
                    prop_assert_eq!(counted, expect, "state {:?}, fresh {}, {:?}", state, fresh, o);
                    if fresh && o == Outcome::Ignored && is_probe {
                        episode.entry(gen).or_default().1 += 1;
                    }
                    if counted {
                        prop_assert!(matches!(state, BreakerState::Closed | BreakerState::HalfOpen));
                        if let Outcome::Failure { .. } = o {
                            // A trip: Open for the break it started (which may already be over
                            // when the break is zero, so `state` may read HalfOpen).
                            let tripped = b.generation() != gen;
                            if tripped {
                                prop_assert_eq!(b.open_until(), Some(now + config.break_for(b.consecutive_trips())));
                                prop_assert_ne!(b.state(raw), BreakerState::Closed);
                            }
                            if state == BreakerState::HalfOpen {
                                // A failed probe re-opens at once.
                                prop_assert!(tripped);
                            } else if !tripped {
                                // Not tripped: the failure is in the window.
                                prop_assert_eq!(b.generation(), gen);
                                let m = b.metrics(raw);
                                prop_assert!(m.failures >= 1);
                                if matches!(config.window, SlidingWindow::Count { size } if u64::from(size) > before.calls) {
                                    prop_assert_eq!((m.calls, m.failures), (before.calls + 1, before.failures + 1));
                                }
                            }
                        }
                        if state == BreakerState::HalfOpen && b.state(raw) == BreakerState::Closed {
                            // Closed only with no probe of the episode outstanding.
                            prop_assert!(!held.iter().any(|q| q.is_probe() && q.generation() == gen));
                            let e = episode.get(&gen).copied().unwrap_or_default();
                            prop_assert_eq!(e.0 - e.1, n_max);
                        }
                    }
                }
                Op::Step { back, by } => {
                    offset = if back { offset.saturating_sub(by) } else { offset + by };
                    let t = at(offset);
                    latest = Some(latest.map_or(t, |l| l.max(t)));
                    b.tick(t);
                }
                Op::ForceOpen => b.force_open(raw),
                Op::Disable => b.disable(raw),
                Op::Reset => b.reset(raw),
            }
            prop_assert!(b.in_flight_probes(raw) <= n_max);
        }
        // Cannot wedge: with nothing reported, it admits again within the horizon.
        let now = latest.map_or(at(offset), |l| l.max(at(offset)));
        if b.state(now) != BreakerState::ForcedOpen {
            let later = now + horizon(&config);
            prop_assert!(b.try_acquire(later).is_ok(), "still refusing at +{:?}: {:?}", horizon(&config), b.state(later));
        }
    }

    /// The issue's scenario, generalized: trip, admit the episode's `n` probes, then report
    /// them in any order, trying to acquire between reports. No extra probe is admitted;
    /// the breaker closes exactly when the last of them succeeds, and the first failure
    /// re-opens it — even when it is the last report, after every other probe succeeded.
    #[test]
    fn breaker_issue_sequence(n in 1u32..6, order in Just((0..6).collect::<Vec<usize>>()).prop_shuffle(), fail_at in prop::option::of(0usize..6), step in small_duration(1_000)) {
        let config = BreakerConfig {
            window: SlidingWindow::Count { size: 1 },
            minimum_calls: 1,
            half_open_probes: n,
            ..BreakerConfig::default()
        };
        const FAIL: Outcome = Outcome::Failure { ttfb: None };
        const OK: Outcome = Outcome::Success { ttfb: Duration::ZERO };
        let mut b = CircuitBreaker::new(config);
        let mut t = at(Duration::from_secs(3600));
        let p = b.try_acquire(t).unwrap();
        prop_assert!(b.record(t, p, FAIL));
        t = b.open_until().unwrap();
        let mut probes: Vec<Option<BreakerPermit>> = (0..n).map(|_| Some(b.try_acquire(t).unwrap())).collect();
        prop_assert!(b.try_acquire(t).is_err());
        let order: Vec<usize> = order.into_iter().filter(|&i| i < n as usize).collect();
        for (k, &i) in order.iter().enumerate() {
            t += step;
            let p = probes[i].take().unwrap();
            let fail = fail_at.is_some_and(|f| f.min(n as usize - 1) == k);
            let o = if fail { FAIL } else { OK };
            prop_assert!(b.record(t, p, o), "report {} of {} not counted", k + 1, n);
            if fail {
                prop_assert_eq!(b.state(t), BreakerState::Open);
                // The rest of the episode is stale.
                for p in probes.iter_mut().filter_map(Option::take) {
                    prop_assert!(!b.record(t, p, OK));
                }
                prop_assert_eq!(b.state(t), BreakerState::Open);
                return Ok(());
            }
            if k + 1 < order.len() {
                prop_assert_eq!(b.state(t), BreakerState::HalfOpen);
                prop_assert!(b.try_acquire(t).is_err(), "a probe beyond {} admitted", n);
            }
        }
        prop_assert_eq!(b.state(t), BreakerState::Closed);
    }
}
