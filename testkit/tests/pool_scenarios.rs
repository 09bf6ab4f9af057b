//! Several endpoints in virtual time: routing, ejection, failover before the first token.
//!
//! The simulator answers each attempt from the server it was sent to
//! ([`Sim::with_servers`]) and checks at every send that the attempt went to a healthy
//! endpoint (or the one probe of an ejected one) and that no more endpoints are out of rotation
//! than the policy allows; `assert_clean` fails on any such breach.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use vllm_client_core::call::CallReport;
use vllm_client_core::config::{ClientConfig, PolicyConfig};
use vllm_client_core::policy::{EjectReason, Health, TimeoutKind};
use vllm_client_core::pool::EndpointStatus;
use vllm_client_core::StreamEvent;
use vllm_testkit::sim::{
    chat_json, chat_stream, Sim, SimCall, SimOutcome, SimPart, SimResponse, SimServer,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const HOSTS: [&str; 3] = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"];

fn pool_config(n: usize, f: impl FnOnce(&mut PolicyConfig)) -> ClientConfig {
    let mut c = ClientConfig::default();
    c.request.endpoints = HOSTS[..n]
        .iter()
        .map(|h| format!("http://{h}/v1").into())
        .collect();
    c.policy.seed = Some(7);
    f(&mut c.policy);
    c
}

fn ok() -> SimResponse {
    SimResponse::ok_json(r#"{"id":"x","object":"chat.completion","choices":[]}"#)
}

fn stream_ok(text: &str) -> SimResponse {
    SimResponse::sse(vec![SimPart::content(text), SimPart::done()])
}

fn assert_clean(out: &SimOutcome) {
    assert!(
        out.is_clean(),
        "violations {:?}, fault {:?}\n{}",
        out.violations,
        out.fault,
        out.render()
    );
}

fn brief(out: &SimOutcome) -> String {
    out.brief()
}

fn endpoints_of(report: &CallReport) -> Vec<usize> {
    report.endpoints.iter().map(|e| e.index()).collect()
}

fn status(sim: &Sim, i: usize) -> EndpointStatus {
    sim.shared().endpoints(sim.now())[i].clone()
}

/// A server that counts its hits and answers each with `f(hit number from 0)`.
fn counting(
    host: &str,
    mut f: impl FnMut(usize) -> SimResponse + Send + 'static,
) -> (SimServer, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = SimServer::new(host, move |_| f(h.fetch_add(1, Ordering::SeqCst)));
    (server, hits)
}

#[test]
fn a_retry_fails_over_at_once_to_an_endpoint_it_has_not_tried() {
    let mut sim = Sim::new(pool_config(3, |_| {}), 1).with_servers(vec![
        SimServer::new(HOSTS[0], |_| {
            SimResponse::status(503).header("retry-after", "30")
        }),
        SimServer::new(HOSTS[1], |_| SimResponse::status(502)),
        SimServer::new(HOSTS[2], |_| ok()),
    ]);
    let mut seen = Vec::new();
    for _ in 0..6 {
        let out = sim.run(chat_json(), vec![]);
        assert_clean(&out);
        assert!(out.result.is_ok(), "{}", out.render());
        assert!(
            out.sleeps.iter().all(|s| s.is_zero()),
            "failover waits for nothing: {:?}",
            out.sleeps
        );
        let eps = endpoints_of(&out.report);
        let mut unique = eps.clone();
        unique.dedup();
        assert_eq!(
            unique.len(),
            eps.len(),
            "an endpoint was tried twice: {eps:?}"
        );
        assert_eq!(eps.last(), Some(&2));
        seen.push(eps);
    }
    // The 503 with Retry-After ejected endpoint 0 at once: later calls never go there.
    assert!(matches!(status(&sim, 0).health, Health::Ejected { .. }));
    assert_eq!(status(&sim, 0).reason, Some(EjectReason::ServerHint));
    let first = seen.iter().position(|eps| eps.contains(&0)).unwrap();
    assert!(
        seen[first + 1..].iter().all(|eps| !eps.contains(&0)),
        "{seen:?}"
    );
}

#[test]
fn a_first_token_timeout_fails_over_before_any_text_reaches_the_caller() {
    let config = pool_config(2, |p| {
        p.timeouts.first_token = Some(secs(2));
        p.pool.routing.affinity_bound = 8;
    });
    // Whichever endpoint is tried first stalls before its first token; the other answers.
    let mut sim = Sim::new(config, 1).with_servers(vec![
        SimServer::new(HOSTS[0], |_| SimResponse::sse(vec![]).then_stall()),
        SimServer::new(HOSTS[1], |_| stream_ok("Hello")),
    ]);
    let out = sim.run(chat_stream(), vec![]);
    assert_clean(&out);
    let text: String = out
        .events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Content(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Hello", "{}", out.render());
    let eps = endpoints_of(&out.report);
    if eps == [0, 1] {
        assert_eq!(out.report.timeout, Some(TimeoutKind::FirstToken));
        assert_eq!(out.sends, vec![Duration::ZERO, secs(2)], "{}", brief(&out));
    } else {
        assert_eq!(eps, [1], "{}", out.render());
    }
}

#[test]
fn text_already_handed_to_the_caller_is_never_retried_elsewhere() {
    let mut sim = Sim::new(pool_config(2, |_| {}), 1).with_servers(vec![
        SimServer::new(HOSTS[0], |_| {
            SimResponse::sse(vec![SimPart::content("Hel")]).then_reset()
        }),
        SimServer::new(HOSTS[1], |_| {
            SimResponse::sse(vec![SimPart::content("Hel")]).then_reset()
        }),
    ]);
    let out = sim.run(chat_stream(), vec![]);
    assert_clean(&out);
    assert_eq!(out.report.attempts, 1, "{}", out.render());
    assert!(matches!(out.events.first(), Some(StreamEvent::Content(s)) if s == "Hel"));
    assert!(matches!(out.events.last(), Some(StreamEvent::Error(_))));
}

#[test]
fn consecutive_500s_eject_after_five_not_twenty_five() {
    // LiteLLM #34836: a deployment stayed in rotation through 25 consecutive 500s.
    let (bad, bad_hits) = counting(HOSTS[0], |_| SimResponse::status(500));
    let (good, _) = counting(HOSTS[1], |_| ok());
    let (good2, _) = counting(HOSTS[2], |_| ok());
    let config = pool_config(3, |p| p.pool.ejection.max_ejected_percent = 34);
    let mut sim = Sim::new(config, 3).with_servers(vec![bad, good, good2]);
    for _ in 0..60 {
        let out = sim.run(chat_json(), vec![]);
        assert_clean(&out);
        assert!(out.result.is_ok(), "{}", out.render());
        sim.advance(ms(100));
    }
    assert_eq!(
        bad_hits.load(Ordering::SeqCst),
        5,
        "5 failures in a row, then ejected"
    );
    let s = status(&sim, 0);
    assert!(matches!(s.health, Health::Ejected { .. }), "{s:?}");
    assert_eq!(s.reason, Some(EjectReason::ConsecutiveFailures(5)));
    assert_eq!(s.failures, 5);
}

#[test]
fn connection_failures_eject_after_three() {
    // LiteLLM #27610: connection errors were exempt from cooldown.
    let (down, down_hits) = counting(HOSTS[0], |_| SimResponse::connect_refused());
    let (up, _) = counting(HOSTS[1], |_| ok());
    let mut sim = Sim::new(pool_config(2, |_| {}), 5).with_servers(vec![down, up]);
    for _ in 0..30 {
        let out = sim.run(chat_json(), vec![]);
        assert_clean(&out);
        assert!(
            out.result.is_ok(),
            "no user-visible error: {}",
            out.render()
        );
    }
    assert_eq!(down_hits.load(Ordering::SeqCst), 3);
    assert_eq!(
        status(&sim, 0).reason,
        Some(EjectReason::ConsecutiveConnectFailures(3))
    );
}

#[test]
fn a_later_longer_hint_extends_an_ejection_and_a_shorter_one_never_shortens_it() {
    // LiteLLM #40130: re-cooling kept the earlier, shorter deadline.
    // The exact rule is the ejector's unit test; here, through calls: an endpoint that keeps
    // answering 503 with hints of 10 s, 60 s, then 5 s stays ejected until the latest deadline.
    let served = Arc::new(AtomicUsize::new(0));
    let served2 = served.clone();
    let mut sim = Sim::new(pool_config(3, |p| p.retry.max_retries = 0), 1).with_servers(vec![
        SimServer::new(HOSTS[0], move |_| {
            let i = served2.fetch_add(1, Ordering::SeqCst);
            SimResponse::status(503).header("retry-after", ["10", "60", "5"][i.min(2)])
        }),
        SimServer::new(HOSTS[1], |_| ok()),
        SimServer::new(HOSTS[2], |_| ok()),
    ]);
    let t0 = sim.now();
    let mut last_until = None;
    for _ in 0..40 {
        let _ = sim.run(chat_json(), vec![]);
        if let Health::Ejected { until } = status(&sim, 0).health {
            if let Some(prev) = last_until {
                assert!(until >= prev, "an ejection got shorter");
            }
            last_until = Some(until);
        }
        sim.advance(ms(500));
    }
    let until = last_until.expect("endpoint 0 was ejected");
    assert!(until.duration_since(t0) >= secs(10));
}

#[test]
fn an_ejected_endpoint_comes_back_through_exactly_one_probe() {
    // Endpoint 0 fails its first 5 attempts, then recovers.
    let (flaky, flaky_hits) = counting(HOSTS[0], |i| {
        if i < 5 {
            SimResponse::status(500)
        } else {
            // A slow answer: the second call picks while the probe is in flight.
            ok().head_after(ms(500))
        }
    });
    let (good, _) = counting(HOSTS[1], |_| ok());
    let (good2, _) = counting(HOSTS[2], |_| ok());
    // Probes made of user requests (for servers without a cheap `/health`).
    let config = pool_config(3, |p| {
        p.pool.ejection.max_ejected_percent = 34;
        p.pool.ejection.jitter_percent = 0;
        p.pool.ejection.health_probe = None;
    });
    let mut sim = Sim::new(config, 11).with_servers(vec![flaky, good, good2]);
    let t0 = sim.now();
    while flaky_hits.load(Ordering::SeqCst) < 5 {
        let out = sim.run(chat_json(), vec![]);
        assert_clean(&out);
        sim.advance(ms(10));
    }
    let Health::Ejected { until } = status(&sim, 0).health else {
        panic!("not ejected: {:?}", status(&sim, 0))
    };
    let ejected_for = until.duration_since(t0);
    assert!(ejected_for <= secs(31), "{ejected_for:?}");
    // Nothing goes to it while ejected.
    while sim.now() < until {
        let out = sim.run(chat_json(), vec![]);
        assert_clean(&out);
        sim.advance(secs(1));
    }
    assert_eq!(flaky_hits.load(Ordering::SeqCst), 5);
    // After the ejection: two calls at the same instant — only one is the probe.
    let outs = sim.run_all(vec![
        SimCall::new(chat_json(), vec![]),
        SimCall::new(chat_json(), vec![]),
    ]);
    outs.iter().for_each(assert_clean);
    assert_eq!(flaky_hits.load(Ordering::SeqCst), 6, "exactly one probe");
    assert_eq!(
        status(&sim, 0).health,
        Health::Healthy,
        "the probe readmitted it"
    );
}

#[test]
fn the_last_endpoint_is_never_ejected_and_a_pool_of_one_behaves_as_one_server() {
    let (a, a_hits) = counting(HOSTS[0], |_| SimResponse::status(500));
    let (b, b_hits) = counting(HOSTS[1], |_| SimResponse::status(500));
    let mut sim = Sim::new(pool_config(2, |p| p.retry.max_retries = 0), 1).with_servers(vec![a, b]);
    for _ in 0..40 {
        let out = sim.run(chat_json(), vec![]);
        assert_clean(&out);
        assert_eq!(
            out.result
                .as_ref()
                .err()
                .and_then(|e| e.status())
                .map(|s| s.as_u16()),
            Some(500)
        );
    }
    let out_of_rotation = sim
        .shared()
        .endpoints(sim.now())
        .iter()
        .filter(|e| e.health != Health::Healthy)
        .count();
    assert_eq!(out_of_rotation, 1, "one of two may go, never both");
    assert_eq!(
        a_hits.load(Ordering::SeqCst) + b_hits.load(Ordering::SeqCst),
        40
    );

    // One server: never ejected, every call tries it.
    let (only, only_hits) = counting(HOSTS[0], |_| SimResponse::status(500));
    let mut sim = Sim::new(pool_config(1, |p| p.retry.max_retries = 0), 1).with_servers(vec![only]);
    for _ in 0..20 {
        assert_clean(&sim.run(chat_json(), vec![]));
    }
    assert_eq!(only_hits.load(Ordering::SeqCst), 20);
    assert_eq!(status(&sim, 0).health, Health::Healthy);
}

#[test]
fn a_slow_replica_gets_less_traffic() {
    // Replica 0 takes 3 s to its first token, the others 1 s; 30 concurrent streams per wave.
    let servers = vec![
        SimServer::new(HOSTS[0], |_| {
            SimResponse::sse(vec![
                SimPart::wait_ms(3000),
                SimPart::content("a"),
                SimPart::done(),
            ])
        }),
        SimServer::new(HOSTS[1], |_| {
            SimResponse::sse(vec![
                SimPart::wait_ms(1000),
                SimPart::content("b"),
                SimPart::done(),
            ])
        }),
        SimServer::new(HOSTS[2], |_| {
            SimResponse::sse(vec![
                SimPart::wait_ms(1000),
                SimPart::content("c"),
                SimPart::done(),
            ])
        }),
    ];
    let mut sim = Sim::new(pool_config(3, |_| {}), 9).with_servers(servers);
    for wave in 0..10 {
        let calls = (0..30)
            .map(|i| SimCall::new(chat_stream(), vec![]).start_after(ms(i * 100 + wave)))
            .collect();
        for out in sim.run_all(calls) {
            assert_clean(&out);
            assert!(out.result.is_ok());
        }
    }
    let hits = sim.server_hits();
    assert_eq!(hits.iter().sum::<usize>(), 300);
    assert!(hits[0] * 2 < hits[1] && hits[0] * 2 < hits[2], "{hits:?}");
}

#[test]
fn a_session_sticks_to_one_endpoint_until_it_is_overloaded() {
    let servers: Vec<SimServer> = HOSTS.iter().map(|h| SimServer::new(*h, |_| ok())).collect();
    let mut sim = Sim::new(pool_config(3, |_| {}), 2).with_servers(servers);
    for _ in 0..20 {
        let out = sim.run(chat_json().with_session("conversation-42"), vec![]);
        assert_clean(&out);
    }
    let hits = sim.server_hits();
    assert_eq!(hits.iter().filter(|&&h| h > 0).count(), 1, "{hits:?}");
    let owner = hits.iter().position(|&h| h == 20).unwrap();

    // 20 slow streams of one session at once: the owner takes them while its in-flight count
    // is at most the least loaded one's + 8; the rest spill over.
    let servers: Vec<SimServer> = HOSTS
        .iter()
        .map(|h| {
            SimServer::new(*h, |_| {
                SimResponse::sse(vec![
                    SimPart::wait_ms(5000),
                    SimPart::content("x"),
                    SimPart::done(),
                ])
            })
        })
        .collect();
    let mut sim = Sim::new(pool_config(3, |_| {}), 2).with_servers(servers);
    let calls = (0..20)
        .map(|_| SimCall::new(chat_stream().with_session("conversation-42"), vec![]))
        .collect();
    sim.run_all(calls).iter().for_each(assert_clean);
    let hits = sim.server_hits();
    let least_other = (0..3)
        .filter(|&i| i != owner)
        .map(|i| hits[i])
        .min()
        .unwrap();
    assert!(least_other > 0, "nothing spilled over: {hits:?}");
    assert!(
        hits[owner] >= 9,
        "the owner took fewer than bound + 1: {hits:?}"
    );
    assert!(
        hits[owner] <= least_other + 9,
        "the bound was exceeded: {hits:?}"
    );
}

#[test]
fn prefix_affinity_keeps_a_conversation_on_one_replica() {
    use vllm_client_core::call::CallSpec;
    use vllm_client_core::request::Operation;
    let turn = |n: usize| {
        let mut messages = vec![
            serde_json::json!({"role": "system", "content": "be brief"}),
            serde_json::json!({"role": "user", "content": "first question"}),
        ];
        for i in 0..n {
            messages
                .push(serde_json::json!({"role": "assistant", "content": format!("answer {i}")}));
            messages.push(serde_json::json!({"role": "user", "content": format!("follow-up {i}")}));
        }
        CallSpec::json(
            Operation::ChatCompletions,
            Ok(serde_json::json!({"model": "m", "messages": messages})),
        )
    };
    let servers: Vec<SimServer> = HOSTS.iter().map(|h| SimServer::new(*h, |_| ok())).collect();
    let config = pool_config(3, |p| p.pool.routing.affinity_from_prefix = true);
    let mut sim = Sim::new(config, 4).with_servers(servers);
    for n in 0..10 {
        assert_clean(&sim.run(turn(n), vec![]));
    }
    let hits = sim.server_hits();
    assert_eq!(hits.iter().filter(|&&h| h > 0).count(), 1, "{hits:?}");
}

#[test]
fn a_replica_down_for_a_while_costs_no_user_visible_error() {
    // Replica 1 refuses connections between 10 s and 25 s (its /health too).
    let down = |t: Duration| t >= secs(10) && t < secs(25);
    let servers = vec![
        SimServer::new(HOSTS[0], |_| stream_ok("a")),
        SimServer::new(HOSTS[1], move |t| {
            if down(t) {
                SimResponse::connect_refused()
            } else {
                stream_ok("b")
            }
        })
        .health(move |t| {
            if down(t) {
                SimResponse::connect_refused()
            } else {
                SimResponse::status(200)
            }
        }),
        SimServer::new(HOSTS[2], |_| stream_ok("c")),
    ];
    let config = pool_config(3, |p| {
        p.pool.ejection.max_ejected_percent = 34;
    });
    let mut sim = Sim::new(config, 21).with_servers(servers);
    let calls: Vec<SimCall> = (0..600)
        .map(|i| SimCall::new(chat_stream(), vec![]).start_after(ms(i * 100)))
        .collect();
    let outs = sim.run_all(calls);
    for out in &outs {
        assert_clean(out);
        assert!(out.result.is_ok(), "{}", out.render());
        assert_eq!(
            out.events.len(),
            2,
            "one content event and Done, never duplicated"
        );
    }
    // It was ejected, probed every few seconds, and taken back within 3 s of answering again
    // (the probe schedule's longest interval), not a whole ejection time later.
    let back = outs
        .iter()
        .enumerate()
        .skip(250)
        .find(|(_, o)| o.report.endpoints.iter().any(|e| e.index() == 1))
        .map(|(i, _)| ms(i as u64 * 100))
        .expect("replica 1 never came back");
    assert!(back >= secs(25) && back <= secs(28), "back at {back:?}");
    assert!(sim.server_probes()[1] >= 4, "{:?}", sim.server_probes());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the servers do (each attempt: ok, 500, 503 with a hint, refused, stall), no
    /// attempt goes to an ejected endpoint while a healthy one exists, nor to one at its own
    /// adaptive limit while another has room; no more endpoints are out of rotation than
    /// allowed, no call hangs, and every call ends.
    #[test]
    fn routing_never_picks_an_ejected_endpoint_while_one_is_healthy(
        behaviours in proptest::collection::vec(proptest::collection::vec(0u8..5, 1..8), 3),
        n in 2usize..=3,
        seed in any::<u64>(),
        stream in any::<bool>(),
        auto in any::<bool>(),
        probe in any::<bool>(),
    ) {
        let servers: Vec<SimServer> = (0..n)
            .map(|i| {
                let pattern = behaviours[i].clone();
                let health = behaviours[i].clone();
                let mut k = 0usize;
                let mut h = 0usize;
                SimServer::new(HOSTS[i], move |_| {
                    let b = pattern[k % pattern.len()];
                    k += 1;
                    match b {
                        0 => stream_ok("x"),
                        1 => SimResponse::status(500),
                        2 => SimResponse::status(503).header("retry-after", "3"),
                        3 => SimResponse::connect_refused(),
                        _ => SimResponse::sse(vec![]).then_stall(),
                    }
                })
                .health(move |_| {
                    let b = health[h % health.len()];
                    h += 1;
                    match b {
                        0 | 1 => SimResponse::status(200),
                        2 => SimResponse::status(503),
                        3 => SimResponse::connect_refused(),
                        _ => SimResponse::stall(),
                    }
                })
            })
            .collect();
        let config = pool_config(n, |p| {
            p.timeouts.first_token = Some(secs(1));
            p.timeouts.attempt = Some(secs(5));
            p.pool.ejection.max_ejected_percent = 50;
            if auto {
                p.auto_concurrency =
                    Some(vllm_client_core::policy::AdaptiveConfig::bounded(1, 8, 2));
            }
            if probe {
                p.pool.ejection.health_probe = Some(ms(500));
            }
        });
        let mut sim = Sim::new(config, seed).with_servers(servers);
        let calls: Vec<SimCall> = (0..40)
            .map(|i| {
                let spec = if stream { chat_stream() } else { chat_json() };
                SimCall::new(spec, vec![]).start_after(ms(i * 250))
            })
            .collect();
        for out in sim.run_all(calls) {
            prop_assert!(out.is_clean(), "{:?} {:?}\n{}", out.violations, out.fault, out.render());
        }
    }
}

#[test]
fn routing_beats_round_robin_on_a_fleet_with_a_slow_and_a_down_replica() {
    use vllm_testkit::engine::routing_experiment::{compare, RoutingSpec};
    let spec = RoutingSpec {
        duration: secs(30),
        ..RoutingSpec::default()
    };
    let [rr, pool] = compare(&spec);
    assert_eq!(rr.requests, pool.requests);
    assert_eq!(pool.text_mismatches, 0, "no lost or duplicated text");
    assert!(pool.error_count() < rr.error_count(), "{rr:?}\n{pool:?}");
    assert!(pool.ttft_p99 < rr.ttft_p99, "{rr:?}\n{pool:?}");
}

#[test]
fn an_outlier_the_ejection_share_keeps_in_rotation_is_still_avoided() {
    // Endpoint 0 is ejected by its hint, so the share (one of three) is spent when endpoint 1
    // starts refusing connections: it stays in rotation but looks slow to routing.
    let (hinted, _) = counting(HOSTS[0], |_| {
        SimResponse::status(503).header("retry-after", "120")
    });
    let (refusing, refused) = counting(HOSTS[1], |_| SimResponse::connect_refused());
    let (fine, _) = counting(HOSTS[2], |_| ok());
    let mut sim = Sim::new(pool_config(3, |_| {}), 8).with_servers(vec![hinted, refusing, fine]);
    for _ in 0..50 {
        let out = sim.run(chat_json(), vec![]);
        assert_clean(&out);
        assert!(out.result.is_ok(), "{}", out.render());
        sim.advance(ms(100));
    }
    assert!(matches!(status(&sim, 0).health, Health::Ejected { .. }));
    assert_eq!(
        status(&sim, 1).health,
        Health::Healthy,
        "the share is spent"
    );
    assert_eq!(
        refused.load(Ordering::SeqCst),
        3,
        "avoided after it became an outlier"
    );
}

#[test]
fn each_endpoint_has_its_own_adaptive_limit_and_the_client_uses_their_sum() {
    use vllm_client_core::policy::AdaptiveConfig;
    // Endpoint 0 answers every request with a 503 and a hint; the others serve streams.
    let servers = vec![
        SimServer::new(HOSTS[0], |_| {
            SimResponse::status(503).header("retry-after", "1")
        }),
        SimServer::new(HOSTS[1], |_| {
            SimResponse::sse(vec![
                SimPart::wait_ms(200),
                SimPart::content("b"),
                SimPart::done(),
            ])
        }),
        SimServer::new(HOSTS[2], |_| {
            SimResponse::sse(vec![
                SimPart::wait_ms(200),
                SimPart::content("c"),
                SimPart::done(),
            ])
        }),
    ];
    let config = pool_config(3, |p| {
        p.auto_concurrency = Some(AdaptiveConfig::bounded(2, 50, 8));
    });
    let mut sim = Sim::new(config, 5).with_servers(servers);
    let limits = |sim: &Sim| -> Vec<u32> {
        sim.shared()
            .endpoints(sim.now())
            .iter()
            .map(|e| e.limit.expect("a limit per endpoint"))
            .collect()
    };
    assert_eq!(limits(&sim), vec![8, 8, 8]);
    assert_eq!(sim.shared().concurrency_limit(), Some(24), "the sum");
    // 60 concurrent streams: never more on an endpoint than its limit while another has
    // room (checked at every send), and every call succeeds.
    let calls = (0..60)
        .map(|i| SimCall::new(chat_stream(), vec![]).start_after(ms(i * 20)))
        .collect();
    for out in sim.run_all(calls) {
        assert_clean(&out);
        assert!(out.result.is_ok(), "{}", out.render());
    }
    let after = limits(&sim);
    // The 503 with a hint cut endpoint 0's limit, and only its own.
    assert!(after[0] < 8, "{after:?}");
    assert!(after[1] >= after[0] && after[2] >= after[0], "{after:?}");
    let in_rotation: u32 = sim
        .shared()
        .endpoints(sim.now())
        .iter()
        .filter(|e| e.health == Health::Healthy)
        .map(|e| e.limit.unwrap_or(0))
        .sum();
    assert!(
        matches!(status(&sim, 0).health, Health::Ejected { .. }),
        "ejected by its hint"
    );
    assert_eq!(
        sim.shared().concurrency_limit(),
        Some(in_rotation.max(1)),
        "the client's limit is the sum of the endpoints' in rotation: {after:?}"
    );
}

#[test]
fn a_health_probe_readmits_without_spending_a_user_request() {
    // Endpoint 0 fails its first 5 requests; its /health says 503 once, then 200.
    let (flaky, flaky_hits) = counting(HOSTS[0], |i| {
        if i < 5 {
            SimResponse::status(500)
        } else {
            ok()
        }
    });
    let mut probes = 0;
    let flaky = flaky.health(move |_| {
        probes += 1;
        if probes == 1 {
            SimResponse::status(503)
        } else {
            SimResponse::status(200)
        }
    });
    let servers = vec![
        flaky,
        SimServer::new(HOSTS[1], |_| ok()),
        SimServer::new(HOSTS[2], |_| ok()),
    ];
    let config = pool_config(3, |p| {
        p.pool.ejection = p.pool.ejection.jitter_percent(0).max_ejected_percent(34);
        p.pool.ejection.probe.jitter_percent = 0;
    });
    let mut sim = Sim::new(config, 11).with_servers(servers);
    let mut fifth = sim.now();
    while flaky_hits.load(Ordering::SeqCst) < 5 {
        fifth = sim.now();
        let out = sim.run(chat_json(), vec![]);
        assert_clean(&out);
        sim.advance(ms(10));
    }
    // Server failures keep Envoy's ejection time (the hold), watched by health probes from
    // 1 s on.
    let s = status(&sim, 0);
    assert!(matches!(s.health, Health::Ejected { .. }), "{s:?}");
    assert_eq!(s.reason, Some(EjectReason::ConsecutiveFailures(5)));
    assert_eq!(s.next_probe, Some(fifth + secs(1)));
    // The next call after that probes /health beside its own request, which goes elsewhere:
    // the 503 keeps it out; the next probe after the schedule's second interval (2 s).
    sim.advance(fifth + secs(1) - sim.now());
    let out = sim.run(chat_json(), vec![]);
    assert_clean(&out);
    assert!(out.result.is_ok(), "{}", out.render());
    assert!(
        out.brief().contains("health probe to 10.0.0.1:8000"),
        "{}",
        out.render()
    );
    assert_eq!(out.report.attempts, 1, "the probe is not an attempt");
    assert_ne!(endpoints_of(&out.report), vec![0]);
    let s = status(&sim, 0);
    assert_eq!(s.reason, Some(EjectReason::ProbeFailed));
    assert_eq!(s.failed_probes, 1);
    assert_eq!(s.next_probe, Some(fifth + secs(3)));
    // Nothing probes before then; then the probe answers 200: alive, but it stays out for
    // its hold (30 s after the fifth failure), and one more probe readmits it then.
    sim.advance(ms(1990));
    assert_clean(&sim.run(chat_json(), vec![]));
    assert_eq!(sim.server_probes(), vec![1, 0, 0]);
    sim.advance(fifth + secs(3) - sim.now());
    assert_clean(&sim.run(chat_json(), vec![]));
    assert_eq!(sim.server_probes(), vec![2, 0, 0]);
    let s = status(&sim, 0);
    assert_eq!(s.next_probe, Some(fifth + secs(30)), "{s:?}");
    sim.advance(secs(20));
    assert_clean(&sim.run(chat_json(), vec![]));
    assert_eq!(
        sim.server_probes(),
        vec![2, 0, 0],
        "nothing during the hold"
    );
    sim.advance(fifth + secs(30) - sim.now());
    assert_clean(&sim.run(chat_json(), vec![]));
    let s = status(&sim, 0);
    assert_eq!(s.health, Health::Healthy);
    assert!(s.slow_start.is_some_and(|f| f < 0.2), "{s:?}");
    for _ in 0..30 {
        assert_clean(&sim.run(chat_json(), vec![]));
        sim.advance(ms(300));
    }
    assert_eq!(sim.server_probes(), vec![3, 0, 0]);
    assert!(
        flaky_hits.load(Ordering::SeqCst) > 5,
        "readmitted, it serves again"
    );
}
