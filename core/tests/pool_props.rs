//! Properties of the endpoint pool under any sequence of attempts and outcomes.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use vllm_client_core::policy::{AdaptiveConfig, Health, Verdict};
use vllm_client_core::pool::{EndpointId, Pool, PoolConfig, Ticket};
use vllm_client_core::request::RequestConfig;

#[derive(Debug, Clone)]
enum Op {
    /// Pick and dispatch an attempt (avoiding the first `avoid` endpoints).
    Send { avoid: usize, key: Option<u64> },
    /// The oldest outstanding attempt ends with this verdict (0 success … 5 overloaded).
    End {
        verdict: u8,
        hint_ms: u64,
        sample_ms: u64,
    },
    /// Time passes.
    Wait { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3, proptest::option::of(0u64..4)).prop_map(|(avoid, key)| Op::Send { avoid, key }),
        (0u8..6, 0u64..60_000, 0u64..5_000).prop_map(|(verdict, hint_ms, sample_ms)| Op::End {
            verdict,
            hint_ms,
            sample_ms
        }),
        (0u64..40_000).prop_map(|ms| Op::Wait { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_under_any_history(
        n in 1usize..6,
        max_ejected_percent in 0u32..=100,
        ops in proptest::collection::vec(op(), 1..300),
        seed in any::<u64>(),
        limits in any::<bool>(),
    ) {
        let request = RequestConfig {
            endpoints: (0..n)
                .map(|i| format!("http://10.0.0.{i}:8000/v1").into())
                .collect(),
            ..RequestConfig::default()
        };
        let mut cfg = PoolConfig::default();
        cfg.ejection.max_ejected_percent = max_ejected_percent;
        let mut pool = Pool::new(&request, cfg, seed);
        if limits {
            pool.with_adaptive_limits(AdaptiveConfig::bounded(1, 3, 2), seed);
        }
        let t0 = Instant::now();
        let mut now = t0;
        let mut outstanding: Vec<Ticket> = Vec::new();
        for op in ops {
            match op {
                Op::Send { avoid, key } => {
                    let tried: Vec<EndpointId> = pool.status(now).iter().take(avoid).map(|e| e.id).collect();
                    let before = pool.status(now);
                    let id = pool.pick(now, &tried, key).expect("a pool always answers");
                    let chosen = &before[id.index()];
                    let healthy_untried = before.iter().any(|e| e.health == Health::Healthy && !tried.contains(&e.id));
                    let probe_ready = matches!(chosen.health, Health::Ejected { until } if now >= until);
                    // Never an ejected endpoint while a healthy one exists (the one probe of an
                    // endpoint whose ejection is over is allowed).
                    if before.iter().any(|e| e.health == Health::Healthy) {
                        prop_assert!(chosen.health == Health::Healthy || probe_ready,
                            "picked {:?} while another was healthy: {:?}", chosen, before);
                    }
                    // Never one at its own limit while a healthy one has room.
                    if let Some(l) = chosen.limit {
                        if chosen.in_flight >= l {
                            prop_assert!(
                                !before.iter().any(|e| e.health == Health::Healthy
                                    && e.limit.is_some_and(|l| e.in_flight < l)),
                                "picked {:?} at its limit: {:?}", chosen, before
                            );
                        }
                    }
                    // An untried healthy endpoint is preferred to a tried one.
                    let untried_with_room = before.iter().any(|e| {
                        e.health == Health::Healthy
                            && !tried.contains(&e.id)
                            && e.limit.is_none_or(|l| e.in_flight < l)
                    });
                    if healthy_untried && untried_with_room && !probe_ready {
                        prop_assert!(!tried.contains(&id), "picked a tried endpoint: {:?} {:?}", id, tried);
                    }
                    outstanding.push(pool.dispatch(now, id));
                }
                Op::End { verdict, hint_ms, sample_ms } => {
                    if outstanding.is_empty() { continue; }
                    let ticket = outstanding.remove(0);
                    let verdict = match verdict {
                        0 => Verdict::Success,
                        1 => Verdict::Answered,
                        2 => Verdict::Failure { connect: false },
                        3 => Verdict::Failure { connect: true },
                        4 => Verdict::Neutral,
                        _ => Verdict::Overloaded { until: now + Duration::from_millis(hint_ms) },
                    };
                    let sample = matches!(verdict, Verdict::Success).then(|| Duration::from_millis(sample_ms));
                    pool.record(now, ticket, verdict, sample);
                    pool.release(ticket);
                }
                Op::Wait { ms } => now += Duration::from_millis(ms),
            }
            let status = pool.status(now);
            // In flight is exactly what was dispatched and not released.
            for e in &status {
                let held = outstanding.iter().filter(|t| t.id == e.id).count() as u32;
                prop_assert_eq!(e.in_flight, held);
            }
            // Never more out of rotation than the share allows, never all of them.
            let out = status.iter().filter(|e| e.health != Health::Healthy).count();
            prop_assert!(out <= cfg.ejection.max_ejected(n), "{} out of {}", out, n);
            prop_assert!(out < n || n == 0);
            // No ejection ends later than the cap (300 s) or a hint (≤ 60 s here) from now.
            for e in &status {
                if let Health::Ejected { until } = e.health {
                    prop_assert!(until <= now + Duration::from_secs(300), "{:?}", e);
                }
            }
        }
    }
}
