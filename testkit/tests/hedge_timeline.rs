//! A hedged first token in virtual time, with its exact timelines: the real race, decided by
//! the call itself and driven by the simulator through the same loop as production.
//!
//! Whichever endpoint gets the first request holds its first token for 3 s; the other answers
//! in 100 ms. The hedge fires at 200 ms, the hedge wins at 300 ms, the first attempt is closed
//! then — before anything of it reached the caller — and its endpoint is free again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::HedgeConfig;
use vllm_testkit::sim::{chat_json, chat_stream, Sim, SimOutcome, SimPart, SimResponse, SimServer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(hosts: &[&str], hedge_after: u64) -> ClientConfig {
    let mut config = ClientConfig::default();
    config.request.endpoints = hosts
        .iter()
        .map(|h| format!("http://{h}/v1").into())
        .collect();
    config.policy.pool.hedge = Some(HedgeConfig::after(ms(hedge_after)).max_extra_percent(100));
    config.policy.seed = Some(3);
    config
}

fn stream_of(wait_ms: u64, text: &str) -> SimResponse {
    SimResponse::sse(vec![
        SimPart::wait_ms(wait_ms),
        SimPart::content(text),
        SimPart::done(),
    ])
}

/// Two servers: the first request anyone receives is the slow one.
fn first_slow_then_fast(slow_ms: u64, fast_ms: u64) -> Vec<SimServer> {
    let n = Arc::new(AtomicUsize::new(0));
    ["a:8000", "b:8000"]
        .into_iter()
        .map(|host| {
            let n = n.clone();
            SimServer::new(host, move |_| {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    stream_of(slow_ms, "from the first attempt")
                } else {
                    stream_of(fast_ms, "from the hedge")
                }
            })
        })
        .collect()
}

fn assert_brief(out: &SimOutcome, expected: &str) {
    let expected: String = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(out.brief(), expected, "\nfull timeline:\n{}", out.render());
    assert!(out.is_clean(), "{:?} {:?}", out.violations, out.fault);
}

/// The host the timeline's first send went to.
fn first_host(out: &SimOutcome) -> String {
    let brief = out.brief();
    let line = brief
        .lines()
        .find(|l| l.contains("send #1 to"))
        .unwrap_or("");
    line.split("to ")
        .nth(1)
        .unwrap_or("")
        .split(' ')
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn the_hedge_wins_and_the_first_attempt_is_closed_before_any_of_its_output() {
    let config = config(&["a:8000", "b:8000"], 200);
    let mut sim = Sim::new(config, 3).with_servers(first_slow_then_fast(3_000, 100));
    let out = sim.run(chat_stream(), vec![]);
    let slow = first_host(&out);
    let fast = if slow == "a:8000" { "b:8000" } else { "a:8000" };
    assert_brief(
        &out,
        &format!(
            "0ns start
             0ns send #1 to {slow} (until 600s)
             0ns <- 200
             200ms <- timeout
             200ms hedge #2 to {fast} (until 600.2s)
             200ms <- 200
             300ms emit content \"from the hedge\"
             300ms emit done
             300ms done ok (0 B)"
        ),
    );
    assert_eq!(out.hedges, vec![ms(200)]);
    assert_eq!(out.report.hedges, 1);
    assert_eq!(out.report.attempts, 1);
    let status = sim.shared().endpoints(sim.now());
    assert!(status.iter().all(|e| e.in_flight == 0), "{status:?}");
    // The closed first attempt said nothing about its endpoint; the winner counted.
    let slow_status = status.iter().find(|e| e.url.contains(&slow)).unwrap();
    assert_eq!((slow_status.successes, slow_status.failures), (0, 0));
    let fast_status = status.iter().find(|e| e.url.contains(fast)).unwrap();
    assert_eq!((fast_status.successes, fast_status.failures), (1, 0));
    assert_eq!(sim.shared().hedge_counts(), (1, 1));
}

#[test]
fn the_first_attempt_wins_when_its_token_comes_first() {
    // The first attempt answers at 250 ms, the hedge (sent at 200 ms) would at 400 ms.
    let config = config(&["a:8000", "b:8000"], 200);
    let mut sim = Sim::new(config, 3).with_servers(first_slow_then_fast(250, 200));
    let out = sim.run(chat_stream(), vec![]);
    assert_eq!(out.content(), "from the first attempt", "{}", out.render());
    assert_eq!(out.ended_at, ms(250));
    assert!(out.is_clean(), "{:?}", out.violations);
    let status = sim.shared().endpoints(sim.now());
    assert!(status.iter().all(|e| e.in_flight == 0), "{status:?}");
    assert_eq!(
        status.iter().map(|e| e.successes).sum::<u64>(),
        1,
        "only the winner counts"
    );
}

#[test]
fn an_attempt_that_fails_before_output_leaves_the_other_to_carry_the_call() {
    // The first attempt stalls; the hedge is sent at 200 ms; the first attempt then fails
    // (reset at 300 ms) and the hedge answers at 700 ms: no retry, no error.
    let n = Arc::new(AtomicUsize::new(0));
    let servers = ["a:8000", "b:8000"]
        .into_iter()
        .map(|host| {
            let n = n.clone();
            SimServer::new(host, move |_| {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    SimResponse::sse(vec![SimPart::wait_ms(300)]).then_reset()
                } else {
                    stream_of(500, "from the hedge")
                }
            })
        })
        .collect();
    let mut sim = Sim::new(config(&["a:8000", "b:8000"], 200), 3).with_servers(servers);
    let out = sim.run(chat_stream(), vec![]);
    assert_eq!(out.content(), "from the hedge", "{}", out.render());
    assert_eq!(out.ended_at, ms(700));
    assert!(out.report.retries.is_empty(), "{}", out.render());
    assert!(out.is_clean(), "{:?}", out.violations);
}

#[test]
fn never_a_hedge_after_output_nor_without_another_endpoint_nor_for_json() {
    // A first token before the hedge delay: no hedge.
    let mut sim = Sim::new(config(&["a:8000", "b:8000"], 200), 3)
        .with_servers(first_slow_then_fast(100, 100));
    let out = sim.run(chat_stream(), vec![]);
    assert!(out.hedges.is_empty(), "{}", out.render());
    // One endpoint: nothing to hedge to.
    let mut sim = Sim::new(config(&["a:8000"], 200), 3)
        .with_servers(vec![SimServer::new("a:8000", |_| stream_of(1_000, "slow"))]);
    let out = sim.run(chat_stream(), vec![]);
    assert!(out.hedges.is_empty(), "{}", out.render());
    assert_eq!(out.content(), "slow");
    // A JSON call: its "first token" is its whole answer.
    let mut sim = Sim::new(config(&["a:8000", "b:8000"], 200), 3).with_servers(
        ["a:8000", "b:8000"]
            .into_iter()
            .map(|h| {
                SimServer::new(h, |_| {
                    SimResponse::ok_json(r#"{"choices":[]}"#).head_after(ms(1_000))
                })
            })
            .collect(),
    );
    let out = sim.run(chat_json(), vec![]);
    assert!(out.hedges.is_empty(), "{}", out.render());
    assert!(out.result.is_ok());
}

#[test]
fn the_bucket_bounds_hedges() {
    // Every call's first token comes after 200 ms, past the hedge delay (10 ms, raised to
    // the 50 ms minimum): each would hedge, but at 5 % of calls (plus the bucket's burst of
    // 10) at most.
    let mut config = config(&["a:8000", "b:8000"], 10);
    config.policy.pool.hedge = Some(HedgeConfig::after(ms(10)));
    let servers = ["a:8000", "b:8000"]
        .into_iter()
        .map(|h| SimServer::new(h, |_| stream_of(200, "x")))
        .collect();
    let mut sim = Sim::new(config, 3).with_servers(servers);
    let mut hedges = 0;
    for _ in 0..400 {
        let out = sim.run(chat_stream(), vec![]);
        assert!(out.is_clean(), "{:?}", out.violations);
        hedges += out.hedges.len();
        sim.advance(Duration::from_secs(1));
    }
    assert!(
        hedges <= 400 * 5 / 100,
        "{hedges} hedges for 400 calls at 5 %"
    );
    assert!(hedges >= 400 * 5 / 100 - 1, "{hedges}");
}
