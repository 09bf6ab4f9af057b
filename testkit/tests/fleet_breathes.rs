//! A fleet that breathes, in virtual time with the vLLM engine model: the fault scenario's
//! targets against round robin, a replica readmitted as soon as it answers and ramped up in
//! slow start, endpoints that come and go without a failed call, many clients sharing one fleet
//! fairly without a herd at a returning replica. Short versions of the examples
//! `fleet_faults` and `many_clients` (numbers in BENCHMARKS.md).

use std::time::Duration;

use vllm_client_core::call::Purpose;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::{AdaptiveConfig, Health};
use vllm_testkit::engine::fault_experiment::{FaultSpec, FaultStrategy};
use vllm_testkit::engine::fleet::{replica_url, ClientSetup, FleetSim};
use vllm_testkit::engine::many_clients::{ManyClients, Scenario, Strategy};
use vllm_testkit::engine::trace::arrivals;
use vllm_testkit::engine::{EngineConfig, Fault, PoissonSpec, Workload};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_fault_scenario_meets_its_targets_against_round_robin() {
    // 4 replicas at 0.7× capacity; replica 3 down in [10 s, 25 s), replica 1 4× slow in
    // [30 s, 45 s).
    let spec = FaultSpec::short();
    let rr = spec.run(&FaultStrategy::RoundRobin {
        semaphore: Some(64),
    });
    let pool = spec.run(&FaultStrategy::Pool(spec.pool_config()));
    let (r, p) = (&rr.summary, &pool.summary);
    assert_eq!(r.requests, p.requests);
    assert_eq!(p.text_mismatches, 0, "no lost or duplicated text");
    let show = format!(
        "{}\n{}",
        rr.row("round robin", None),
        pool.row("pool", Some(&rr))
    );
    let p50 = |s: &vllm_testkit::engine::Summary| s.ttft_p50.unwrap().as_secs_f64();
    let p99 = |s: &vllm_testkit::engine::Summary| s.ttft_p99.unwrap().as_secs_f64();
    assert!(p50(p) <= 1.5 * p50(r), "TTFT p50\n{show}");
    assert!(p99(p) <= 0.5 * p99(r), "TTFT p99\n{show}");
    assert!(p.error_count() * 3 <= r.error_count(), "failures\n{show}");
    assert!(pool.good_tokens >= rr.good_tokens, "goodput\n{show}");
    // The streams the dying replica cut mid-answer were continued elsewhere, whole: round
    // robin loses every one of them.
    assert!(r.errors.keys().any(|k| k.contains("mid-stream")), "{show}");
    assert!(!p.errors.keys().any(|k| k.contains("mid-stream")), "{show}");
    let continued = pool
        .outcome
        .records
        .iter()
        .filter(|r| r.result.is_ok() && r.sends.len() > 1);
    assert!(continued.count() > 0, "{show}");
    // The replica is readmitted within the probe schedule's longest interval of answering,
    // and carries its fair share of the attempts within 5 s.
    let back = pool.readmitted_after.expect("readmitted");
    assert!(
        back <= ms(3000),
        "readmitted {back:?} after it answered\n{show}"
    );
    let fair = pool.fair_share_after.expect("carries its share");
    assert!(fair <= secs(5), "fair share after {fair:?}\n{show}");
    // …and no burst lands on it: its attempts in its first 2 s are at most its fair share.
    assert!(pool.herd_ratio <= 1.0, "{show}");
}

/// The client of a fleet whose replica 2 is down in [5 s, 12 s): an exact account of its
/// probes and its return.
#[test]
fn a_down_replica_is_probed_on_schedule_and_readmitted_as_soon_as_it_answers() {
    let engines: Vec<EngineConfig> = (0..3)
        .map(|i| {
            let e = EngineConfig::default();
            if i == 2 {
                e.with_fault(Fault::down(secs(5), secs(12)))
            } else {
                e
            }
        })
        .collect();
    let mut config = ClientConfig::default();
    config.request.endpoints = (0..3).map(|i| replica_url(i).into()).collect();
    config.policy.seed = Some(3);
    config.policy.auto_concurrency = Some(AdaptiveConfig::default());
    config.policy.pool.ejection.max_ejected_percent = 34;
    let workload = Workload::poisson(PoissonSpec {
        seed: 5,
        rate_per_sec: 12.0,
        duration: secs(20),
        ..PoissonSpec::default()
    });
    let out = FleetSim::new(engines, vec![ClientSetup::new(config.clone(), 0, 3)])
        .sample_every(ms(250))
        .run(&workload);
    // Only the streams running on it when it went down fail (cut mid-stream: never retried
    // elsewhere, the caller had text); every other call succeeds.
    let cut = out
        .records
        .iter()
        .filter(|r| !r.result.is_ok())
        .inspect(|r| {
            assert!(
                r.first_token.is_some(),
                "a call failed before any text: {r:?}"
            );
            assert!(r.arrival.at < secs(5), "{r:?}");
        })
        .count();
    assert!(cut > 0, "some streams were running on it");
    // Probes: only while it is out, never sooner than the schedule, then answered at once.
    let schedule = config.policy.pool.ejection.probe;
    let probes: Vec<Duration> = out
        .sends
        .iter()
        .filter(|s| s.purpose == Purpose::HealthProbe)
        .map(|s| {
            assert_eq!(s.replica, 2);
            s.at
        })
        .collect();
    let changes: Vec<_> = out
        .endpoint_changes
        .iter()
        .filter(|c| c.change.id.index() == 2)
        .collect();
    let ejected_at = changes
        .iter()
        .find(|c| matches!(c.change.change.to, Health::Ejected { .. }))
        .expect("ejected")
        .at;
    assert!(
        ejected_at >= secs(5) && ejected_at < ms(5500),
        "{ejected_at:?}"
    );
    assert!(probes.len() >= 3, "{probes:?}");
    assert!(
        probes[0] - ejected_at >= schedule.floor(0, secs(27)),
        "{probes:?}"
    );
    for (k, w) in probes.windows(2).enumerate() {
        // Each failed probe lengthens the next interval (up to its cap).
        let floor = schedule.floor(k as u32 + 1, secs(27));
        assert!(w[1] - w[0] >= floor, "probe {k}: {probes:?}");
        assert!(
            w[1] - w[0] <= schedule.max + secs(1),
            "probe {k}: {probes:?}"
        );
    }
    let readmitted = changes
        .iter()
        .find(|c| c.change.change.to == Health::Healthy)
        .expect("readmitted")
        .at;
    assert_eq!(
        Some(&readmitted),
        probes.last(),
        "the last probe readmitted it"
    );
    assert!(
        readmitted >= secs(12) && readmitted <= secs(15),
        "{readmitted:?}"
    );
    // Slow start: no burst lands on it in its first second (its weight starts at 10 %), and
    // it carries its share after the 3 s ramp.
    let (_, first) = arrivals(&out.sends, 2, readmitted, readmitted + secs(1));
    let (_, later) = arrivals(&out.sends, 2, readmitted + secs(3), readmitted + secs(8));
    assert!(first <= 0.5, "{first} then {later}");
    assert!(later > 0.2, "back to its share: {later}");
}

/// A client's endpoint list changed at run time in virtual time: replica 3 added, replica 2
/// removed at 8 s. Nothing fails; nothing new goes to replica 2 after 8 s while its streams
/// run to their end; replica 3 ramps up in slow start.
#[test]
fn endpoints_come_and_go_without_a_failed_call() {
    let engines = vec![EngineConfig::default(); 4];
    let mut config = ClientConfig::default();
    config.request.endpoints = (0..3).map(|i| replica_url(i).into()).collect();
    config.policy.seed = Some(9);
    config.policy.auto_concurrency = Some(AdaptiveConfig::default());
    let workload = Workload::poisson(PoissonSpec {
        seed: 8,
        rate_per_sec: 15.0,
        duration: secs(20),
        ..PoissonSpec::default()
    });
    let change = secs(8);
    let out = FleetSim::new(engines, vec![ClientSetup::new(config, 0, 9)])
        .sample_every(ms(250))
        .set_endpoints_at(
            change,
            None,
            [0, 1, 3].iter().map(|i| replica_url(*i).into()).collect(),
        )
        .run(&workload);
    assert_eq!(out.summary.error_count(), 0, "{}", out.summary);
    assert_eq!(out.summary.text_mismatches, 0);
    let to = |r: usize| out.sends.iter().filter(move |s| s.replica == r);
    assert!(
        to(3).all(|s| s.at >= change),
        "replica 3 before it was added"
    );
    assert!(
        to(2).all(|s| s.at < change),
        "a drained replica got a new request"
    );
    // Streams running on replica 2 at the change finished there.
    let drained: Vec<_> = out
        .records
        .iter()
        .filter(|r| r.replica == 2 && r.end.is_some_and(|e| e > change))
        .collect();
    assert!(!drained.is_empty(), "streams were running on replica 2");
    assert!(drained.iter().all(|r| r.result.is_ok()));
    // Replica 3 ramps up in slow start: no burst of the calls the client holds lands on it
    // (it runs a small part of what the others run at first), and it carries its share after.
    let running = |at: Duration, r: usize| {
        out.replica_samples
            .iter()
            .find(|s| s.at == at && s.replica == r)
            .map_or(0, |s| s.running) as f64
    };
    let others = |at: Duration| (running(at, 0) + running(at, 1)) / 2.0;
    let early = change + ms(500);
    assert!(
        running(early, 3) <= 0.3 * others(early),
        "{} vs {}",
        running(early, 3),
        others(early)
    );
    let late = change + secs(7);
    assert!(
        running(late, 3) >= 0.6 * others(late),
        "{} vs {}",
        running(late, 3),
        others(late)
    );
}

/// Many independent clients, one fleet: fair shares, no herd at a returning replica, and the
/// goodput of a fixed per-client limit.
#[test]
fn many_clients_share_one_fleet_fairly_without_a_herd() {
    let spec = ManyClients {
        clients: 12,
        replicas: 4,
        duration: secs(40),
        warmup: secs(10),
        ..ManyClients::default()
    };
    let steady = spec.run(Scenario::Steady, &Strategy::auto());
    let fixed = spec.run(Scenario::Steady, &Strategy::Fixed(24));
    assert!(steady.jain >= 0.95, "{}", steady.row("steady", "Auto"));
    assert!(
        steady.goodput >= 0.95 * fixed.goodput,
        "{}\n{}",
        steady.row("steady", "Auto"),
        fixed.row("steady", "fixed 24")
    );
    assert_eq!(steady.errors, 0);
    let returns = spec.run(Scenario::ReplicaReturns, &Strategy::auto());
    let herd = returns.herd_ratio.expect("measured");
    assert!(herd <= 2.0, "{}", returns.row("returns", "Auto"));
    assert!(returns.jain >= 0.95, "{}", returns.row("returns", "Auto"));
}
