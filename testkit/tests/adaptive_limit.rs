//! The adaptive concurrency limit against the engine model, in virtual time: it finds a
//! replica's batch size without being told it, keeps the server's queue short, and comes
//! back after a slowdown. Small fleets, so that the tests run in seconds unoptimised; the
//! full evaluation is `cargo run --release -p vllm-testkit --example adaptive_eval`.

use std::collections::HashMap;
use std::time::Duration;

use vllm_client_core::policy::{AdaptiveConfig, ChangeCause};
use vllm_testkit::engine::limits::{
    evaluate, mean_limit_of, recovered_at, LimitEval, LimitLoad, LimitStrategy,
};
use vllm_testkit::engine::{ClientSetup, ClosedLoop, EngineConfig, Fault, FleetSim};

/// One replica running at most 16 sequences, 60 s of load.
fn small() -> LimitEval {
    LimitEval {
        replicas: 1,
        engine: EngineConfig {
            max_num_seqs: 16,
            ..EngineConfig::default()
        },
        duration: Duration::from_secs(60),
        warmup: Duration::from_secs(20),
        ..LimitEval::default()
    }
}

#[test]
fn auto_finds_the_batch_size_and_keeps_the_server_queue_short() {
    let spec = small();
    let load = LimitLoad::Closed { callers: 128 };
    let (none, _) = evaluate(&spec, &load, &LimitStrategy::None);
    let (fixed, _) = evaluate(&spec, &load, &LimitStrategy::Fixed(16));
    let auto = LimitStrategy::Auto(AdaptiveConfig::default());
    let (row, out) = evaluate(&spec, &load, &auto);
    assert_eq!(row.errors, 0);
    // Not told the batch size (16), it settles near it: the server's queue stays short.
    let mean = row.mean_limit.expect("adaptive");
    assert!((11.0..=20.0).contains(&mean), "mean limit {mean}");
    let server_p50 = row.server_ttft_p50.expect("streams");
    let none_p50 = none.server_ttft_p50.expect("streams");
    assert!(
        server_p50 * 20 < none_p50,
        "server TTFT p50 {server_p50:?} vs {none_p50:?} without a limit"
    );
    // And throughput is not given away for it.
    assert!(
        row.goodput >= 0.9 * fixed.goodput,
        "goodput {} vs {} at the right fixed limit",
        row.goodput,
        fixed.goodput
    );
    // The limit moved for the documented reasons only, and started from `initial` (20).
    assert!(out.limits.iter().any(|l| l.cause == ChangeCause::Delay));
    assert_eq!(
        out.limit_at(0, Duration::ZERO, 20),
        20,
        "no change before any sample"
    );
}

#[test]
fn after_a_slowdown_the_limit_comes_back() {
    let slow_from = Duration::from_secs(40);
    let slow_to = Duration::from_secs(70);
    let spec = LimitEval {
        duration: Duration::from_secs(110),
        engine: EngineConfig {
            max_num_seqs: 16,
            ..EngineConfig::default()
        }
        .with_fault(Fault::slow(slow_from, slow_to, 3.0)),
        ..small()
    };
    let auto = AdaptiveConfig::default();
    let (_, out) = evaluate(
        &spec,
        &LimitLoad::Closed { callers: 128 },
        &LimitStrategy::Auto(auto),
    );
    let prior = mean_limit_of(&out, 0, auto.initial, Duration::from_secs(25), slow_from);
    let during = mean_limit_of(
        &out,
        0,
        auto.initial,
        slow_from + Duration::from_secs(5),
        slow_to,
    );
    assert!(
        during < prior,
        "the slowdown lowered it: {during} vs {prior}"
    );
    let back = recovered_at(&out, 0, auto.initial, prior, 0.1, slow_to).expect("recovers");
    assert!(
        back <= slow_to + Duration::from_secs(30),
        "back within 10 % of {prior} at {back:?}"
    );
}

#[test]
fn a_closed_loop_keeps_one_call_per_caller_and_stops_starting_at_its_end() {
    let spec = ClosedLoop {
        callers: 12,
        duration: Duration::from_secs(20),
        think: Duration::from_millis(250),
        ..ClosedLoop::default()
    };
    let sim = FleetSim::new(
        vec![EngineConfig::default()],
        vec![ClientSetup::new(Default::default(), 0, 1)],
    );
    let out = sim.run_closed(&spec);
    assert!(out.records.len() > 12, "callers made several calls each");
    assert_eq!(out.summary.error_count(), 0);
    assert_eq!(out.summary.text_mismatches, 0);
    let mut last_end: HashMap<usize, Duration> = HashMap::new();
    for r in &out.records {
        assert!(r.arrival.at < spec.duration, "started after the end: {r:?}");
        let caller = r.arrival.client;
        if let Some(end) = last_end.get(&caller) {
            // The next call starts exactly `think` after the previous one ended.
            assert_eq!(r.arrival.at, *end + spec.think);
        } else {
            assert_eq!(r.arrival.at, spec.stagger * caller as u32);
        }
        last_end.insert(caller, r.end.expect("ended"));
    }
    assert_eq!(last_end.len(), 12);
}
