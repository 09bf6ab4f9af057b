//! Properties of a fleet that breathes: probing never goes faster than its schedule, slow start
//! ramps monotonically, a drained endpoint gets no new request, and the client-wide limit is
//! exactly the sum of what the endpoints in rotation may take.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use vllm_client_core::policy::{
    AdaptiveConfig, EjectionConfig, Health, ProbeSchedule, SlowStartConfig, Verdict,
};
use vllm_client_core::pool::{EndpointConfig, EndpointId, Pool, PoolConfig, Ticket};
use vllm_client_core::request::RequestConfig;

fn pool_of(n: usize, cfg: PoolConfig, seed: u64) -> Pool {
    let request = RequestConfig {
        endpoints: (0..n)
            .map(|i| format!("http://10.0.0.{i}:8000/v1").into())
            .collect(),
        ..RequestConfig::default()
    };
    Pool::new(&request, cfg, seed)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Ejects endpoint 0 of `pool` with connection failures at `now`.
fn eject_first(pool: &mut Pool, now: Instant) {
    for _ in 0..3 {
        let t = pool.dispatch(now, EndpointId::new(0));
        pool.record(now, t, Verdict::Failure { connect: true }, None);
        pool.release(t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Slow start's share never decreases with time, stays within [min weight, 1], and the
    /// limit and weight it scales never exceed the unscaled ones.
    #[test]
    fn slow_start_ramps_monotonically(
        window_ms in 0u64..60_000,
        aggression in 0.05f64..8.0,
        min_percent in 0u32..=120,
        limit in 0u32..2000,
        weight in 0u32..100,
        steps in proptest::collection::vec(0u64..5_000, 1..40),
    ) {
        let c = SlowStartConfig::default()
            .window(ms(window_ms))
            .aggression(aggression)
            .min_weight_percent(min_percent);
        let mut t = Duration::ZERO;
        let (mut f0, mut l0, mut w0) = (c.factor(t), c.scale_limit(limit, t), c.scale_weight_milli(weight, t));
        for s in steps {
            t += ms(s);
            let (f, l, w) = (c.factor(t), c.scale_limit(limit, t), c.scale_weight_milli(weight, t));
            prop_assert!(f >= f0 && l >= l0 && w >= w0, "{f0}→{f} {l0}→{l} {w0}→{w} at {t:?}");
            prop_assert!(f <= 1.0 && f >= f64::from(min_percent.min(100)) / 100.0 - 1e-12);
            prop_assert!(l <= limit && (limit == 0 || l >= 1));
            prop_assert!(w <= weight.max(1).saturating_mul(1000));
            (f0, l0, w0) = (f, l, w);
        }
        prop_assert_eq!(c.factor(ms(window_ms)), 1.0, "full share once the window is over");
    }

    /// Whatever the probes say and whenever time moves, a probe goes only when one is due,
    /// one at a time, and never sooner after the previous probe's verdict than the schedule's
    /// shortest interval for the step it is at. A probe cut short (no verdict) gives its turn
    /// back: still due, at its scheduled time.
    #[test]
    fn probing_never_exceeds_its_schedule(
        ops in proptest::collection::vec((0u8..5, 0u64..4_000), 1..120),
        seed in any::<u64>(),
        first_ms in 50u64..2_000,
        max_ms in 50u64..6_000,
        jitter in 0u32..=60,
    ) {
        let mut cfg = PoolConfig::default();
        cfg.ejection = EjectionConfig::default()
            .probe_interval(ms(first_ms), ms(max_ms))
            .max_ejected_percent(50);
        cfg.ejection.probe.jitter_percent = jitter;
        let schedule: ProbeSchedule = cfg.ejection.probe;
        let mut pool = pool_of(2, cfg, seed);
        let t0 = Instant::now();
        let mut now = t0;
        eject_first(&mut pool, now);
        let id = EndpointId::new(0);
        let mut in_flight: Option<(Ticket, Instant)> = None;
        // When the last verdict came, and the failed probes counted then.
        let mut last_verdict: (Instant, u32) = (t0, 0);
        let mut due_before = pool.status(now)[0].next_probe;
        for (op, wait) in ops {
            now += ms(wait);
            let status = pool.status(now)[0].clone();
            match (op, in_flight) {
                // Try to send a probe.
                (0 | 1, None) => {
                    let due = pool.due_probe(now);
                    match pool.dispatch_probe(now, id) {
                        Some(ticket) => {
                            prop_assert_eq!(due, Some(id));
                            prop_assert!(status.next_probe.is_some_and(|n| n <= now));
                            // The k-th interval (k failed probes so far), capped by the
                            // ejection (at least 27 s here: 30 s minus 10 % jitter).
                            let (at, k) = last_verdict;
                            let floor = schedule.floor(k, Duration::from_secs(27));
                            prop_assert!(now.duration_since(at) >= floor,
                                "probe {:?} after the last verdict, floor {:?} (step {k})",
                                now.duration_since(at), floor);
                            in_flight = Some((ticket, now));
                        }
                        None => prop_assert!(due.is_none()),
                    }
                }
                (0 | 1, Some(_)) => {
                    prop_assert!(pool.dispatch_probe(now, id).is_none(), "one probe at a time");
                    prop_assert_eq!(status.health, Health::Probing);
                }
                // The probe in flight ends.
                (_, Some((ticket, _))) => {
                    let verdict = match op {
                        2 => Verdict::Failure { connect: true },
                        3 => Verdict::Neutral,
                        _ => Verdict::Overloaded { until: now + ms(wait) },
                    };
                    pool.record(now, ticket, verdict, None);
                    pool.release(ticket);
                    in_flight = None;
                    let after = pool.status(now)[0].clone();
                    let ejected = matches!(after.health, Health::Ejected { .. });
                    prop_assert!(ejected, "{:?}", after);
                    if verdict == Verdict::Neutral {
                        prop_assert_eq!(after.next_probe, due_before, "its turn given back");
                    } else {
                        last_verdict = (now, after.failed_probes);
                    }
                }
                (_, None) => {}
            }
            if in_flight.is_none() {
                due_before = pool.status(now)[0].next_probe;
            }
        }
        // An answered probe readmits at once, into slow start.
        if let Some((ticket, _)) = in_flight {
            pool.record(now, ticket, Verdict::Success, None);
            pool.release(ticket);
            let s = pool.status(now)[0].clone();
            prop_assert_eq!(s.health, Health::Healthy);
            prop_assert!(s.slow_start.is_some());
        }
    }

    /// After any changes of the list, a drained endpoint gets no new request while another
    /// endpoint exists, leaves once its last request ended, and ids are never reused; kept
    /// endpoints keep their state.
    #[test]
    fn a_drained_endpoint_gets_no_new_request(
        changes in proptest::collection::vec(
            (proptest::collection::btree_set(0u8..8, 1..5), 0usize..6, 0u8..3), 1..30),
        seed in any::<u64>(),
        limits in any::<bool>(),
    ) {
        let mut pool = pool_of(3, PoolConfig::default(), seed);
        if limits {
            pool.with_adaptive_limits(AdaptiveConfig::bounded(1, 8, 3), seed);
        }
        let t0 = Instant::now();
        let mut now = t0;
        let mut outstanding: Vec<Ticket> = Vec::new();
        let mut seen_ids: Vec<(EndpointId, String)> = pool
            .status(now)
            .iter()
            .map(|e| (e.id, e.url.clone()))
            .collect();
        for (hosts, sends, ends) in changes {
            now += ms(100);
            let list: Vec<EndpointConfig> = hosts
                .iter()
                .map(|h| EndpointConfig::new(format!("http://10.0.0.{h}:8000/v1")))
                .collect();
            let before = pool.status(now);
            let update = pool.set_endpoints(now, &list).expect("a valid list");
            let after = pool.status(now);
            // Ids: a URL seen before keeps its id while it stays; new ids are fresh.
            for id in &update.added {
                prop_assert!(!seen_ids.iter().any(|(s, _)| s == id), "id {id:?} reused");
                let url = after.iter().find(|e| e.id == *id).unwrap().url.clone();
                seen_ids.push((*id, url));
            }
            for id in &update.kept {
                let b = before.iter().find(|e| e.id == *id).unwrap();
                let a = after.iter().find(|e| e.id == *id).unwrap();
                prop_assert_eq!((b.successes, b.in_flight), (a.successes, a.in_flight));
                prop_assert!(!a.draining);
            }
            for e in &after {
                let listed = list.iter().any(|c| c.url == e.url);
                prop_assert_eq!(e.draining, !listed, "{:?}", e);
                if e.draining {
                    prop_assert!(e.in_flight > 0, "a drained endpoint with nothing in flight stays");
                }
            }
            for _ in 0..sends {
                let id = pool.pick(now, &[], None).expect("an endpoint");
                let chosen = pool.status(now).into_iter().find(|e| e.id == id).unwrap();
                prop_assert!(!chosen.draining, "a new request went to drained {:?}", chosen);
                outstanding.push(pool.dispatch(now, id));
            }
            for _ in 0..ends {
                if outstanding.is_empty() { break; }
                let t = outstanding.remove(0);
                pool.record(now, t, Verdict::Success, Some(ms(50)));
                pool.release(t);
            }
            // In flight is exactly what was dispatched and not released; drained endpoints
            // with nothing left are gone.
            for e in pool.status(now) {
                let held = outstanding.iter().filter(|t| t.id == e.id).count() as u32;
                prop_assert_eq!(e.in_flight, held);
                prop_assert!(!e.draining || held > 0);
            }
        }
    }

    /// With a limit per endpoint, the client-wide limit is the sum of the limits in force
    /// (slow start included) of the endpoints in rotation, plus the user requests still
    /// running on those out of rotation; and the limits in force ramp up as slow start goes.
    #[test]
    fn the_client_limit_is_what_the_endpoints_in_rotation_may_take(
        ops in proptest::collection::vec((0u8..4, 0usize..4, 0u64..3_000), 1..80),
        seed in any::<u64>(),
    ) {
        let mut pool = pool_of(4, PoolConfig::default(), seed);
        pool.with_adaptive_limits(AdaptiveConfig::bounded(1, 64, 20), seed);
        let mut now = Instant::now();
        let mut outstanding: Vec<Ticket> = Vec::new();
        let mut last_limits: Vec<(EndpointId, Option<u32>, bool)> = Vec::new();
        for (op, i, wait) in ops {
            now += ms(wait);
            pool.observe(now);
            let id = EndpointId::new(i);
            match op {
                0 => outstanding.push(pool.dispatch(now, id)),
                1 => {
                    if let Some(k) = outstanding.iter().position(|t| t.id == id) {
                        let t = outstanding.remove(k);
                        pool.record(now, t, Verdict::Failure { connect: true }, None);
                        pool.release(t);
                    }
                }
                2 => {
                    if let Some(t) = pool.dispatch_probe(now, id) {
                        pool.record(now, t, Verdict::Success, None);
                        pool.release(t);
                    }
                }
                _ => {
                    if !outstanding.is_empty() {
                        let t = outstanding.remove(0);
                        pool.release(t);
                    }
                }
            }
            let status = pool.status(now);
            let expected: u32 = status
                .iter()
                .map(|e| {
                    if e.health == Health::Healthy && !e.draining {
                        let held = outstanding.iter().filter(|t| t.id == e.id).count() as u32;
                        e.limit.unwrap_or(0).max(held)
                    } else {
                        outstanding.iter().filter(|t| t.id == e.id).count() as u32
                    }
                })
                .sum();
            prop_assert_eq!(pool.total_limit(), Some(expected.max(1)));
            // While an endpoint ramps, its limit in force never goes down (its own limit
            // only moves with samples, and none are fed here).
            for e in &status {
                if let Some((_, before, ramping)) = last_limits.iter().find(|(id, ..)| *id == e.id) {
                    if *ramping && e.slow_start.is_some() && e.health == Health::Healthy {
                        prop_assert!(e.limit >= *before, "{:?} went down from {before:?}", e);
                    }
                }
            }
            last_limits = status
                .iter()
                .map(|e| (e.id, e.limit, e.slow_start.is_some()))
                .collect();
        }
    }
}
