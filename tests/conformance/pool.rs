//! Several servers, one client: three fake servers on loopback — one stalls before its first
//! token, one answers 503 with `Retry-After`, one is killed mid-run.

use std::time::{Duration, Instant};

use vllm_client_core::client::Client;
use vllm_client_core::policy::{EjectReason, Health, HedgeConfig};
use vllm_client_core::StreamEvent;
use vllm_testkit::server::{FakeServer, Reply};

use crate::harness::Harness;
use crate::scenarios::{chat, content, stream, terminal};

const MARGIN: Duration = Duration::from_millis(1500);

fn pool<H: Harness>(servers: &[&FakeServer]) -> Client<H::E> {
    H::builder("http://unused.invalid/v1")
        .endpoints(servers.iter().map(|s| s.base_url()))
        .first_token_timeout(Duration::from_millis(300))
        .build()
}

fn health<H: Harness>(c: &Client<H::E>, i: usize) -> (Health, Option<EjectReason>) {
    let e = &c.endpoints()[i];
    (e.health, e.reason)
}

pub fn pool_fails_over_from_a_stalled_first_token<H: Harness>() {
    let stalled = FakeServer::start();
    let healthy = FakeServer::start();
    stalled.push_n(20, Reply::generate().delay(Duration::from_secs(10)));
    let c = pool::<H>(&[&stalled, &healthy]);
    // Routing draws at random between equals: call until the stalled server was tried.
    let mut calls = 0;
    while stalled.request_count() == 0 || calls < 6 {
        let started = Instant::now();
        let events = stream::<H>(&c).expect("failed over");
        assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
        assert_eq!(content(&events), "Echo: hi", "the text once, never twice");
        assert!(started.elapsed() < Duration::from_millis(300) + MARGIN);
        calls += 1;
        assert!(calls < 40, "routing never tried the stalled server");
    }
    // The stalled attempts were abandoned: their connections closed (vLLM frees the slot).
    let stalled_requests = stalled.request_count();
    assert!(
        stalled.wait_for_disconnects(stalled_requests, Duration::from_secs(5)),
        "an abandoned attempt kept its connection"
    );
    assert_eq!(healthy.request_count(), calls);
}

pub fn pool_ejects_a_server_that_says_retry_after<H: Harness>() {
    let busy = FakeServer::start();
    let healthy = FakeServer::start();
    busy.push_n(
        20,
        Reply::vllm_error(503, "overloaded").header("retry-after", "30"),
    );
    let c = pool::<H>(&[&busy, &healthy]);
    let mut calls = 0;
    while busy.request_count() == 0 || calls < 8 {
        calls += 1;
        assert!(calls < 40, "routing never tried the busy server");
        let started = Instant::now();
        chat::<H>(&c).expect("failed over");
        assert!(
            started.elapsed() < MARGIN,
            "the failover waited for the hint"
        );
    }
    assert_eq!(busy.request_count(), 1, "ejected after its 503");
    let (h, why) = health::<H>(&c, 0);
    assert!(matches!(h, Health::Ejected { .. }), "{h:?}");
    assert_eq!(why, Some(EjectReason::ServerHint));
    assert_eq!(c.endpoints()[1].health, Health::Healthy);
}

pub fn pool_survives_a_server_killed_mid_run<H: Harness>() {
    let mut servers: Vec<Option<FakeServer>> = (0..3).map(|_| Some(FakeServer::start())).collect();
    let c = {
        let refs: Vec<&FakeServer> = servers.iter().flatten().collect();
        pool::<H>(&refs)
    };
    for _ in 0..6 {
        assert_eq!(content(&stream::<H>(&c).expect("before")), "Echo: hi");
    }
    // Kill the server routing prefers (the lowest latency), so that calls keep going to it.
    let victim = c
        .endpoints()
        .iter()
        .min_by_key(|e| e.latency.unwrap_or(Duration::MAX))
        .map(|e| e.id.index())
        .expect("three endpoints");
    if let Some(server) = servers[victim].take() {
        server.shutdown();
    }
    let mut calls = 0;
    while c.endpoints()[victim].health == Health::Healthy {
        let events = stream::<H>(&c).expect("no user-visible error after the kill");
        assert_eq!(content(&events), "Echo: hi");
        calls += 1;
        assert!(
            calls < 100,
            "the killed server was never ejected: {:?}",
            c.endpoints()
        );
    }
    for _ in 0..10 {
        assert_eq!(content(&stream::<H>(&c).expect("after")), "Echo: hi");
    }
    let s = &c.endpoints()[victim];
    assert!(matches!(s.health, Health::Ejected { .. }), "{s:?}");
    assert_eq!(
        s.reason,
        Some(EjectReason::ConsecutiveConnectFailures(3)),
        "{s:?}"
    );
}

pub fn pool_hedged_first_token_wins_and_the_loser_is_cancelled<H: Harness>() {
    let slow = FakeServer::start();
    let fast = FakeServer::start();
    slow.push_n(50, Reply::generate().delay(Duration::from_secs(3)));
    let c = H::builder("http://unused.invalid/v1")
        .endpoints([slow.base_url(), fast.base_url()])
        .hedge(HedgeConfig::after(Duration::from_millis(200)).max_extra_percent(100))
        .build();
    // Routing draws between equals: call until the slow server was the first choice (a
    // blocking client's losing leg holds its connection until its read returns, and routing
    // then avoids the server it loads).
    let mut calls = 0;
    while slow.request_count() < 1 {
        let started = Instant::now();
        let events = stream::<H>(&c).expect("hedged");
        assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
        assert_eq!(content(&events), "Echo: hi", "the text of one leg, once");
        assert!(
            started.elapsed() < Duration::from_millis(200) + MARGIN,
            "the hedge did not win: {:?}",
            started.elapsed()
        );
        calls += 1;
        assert!(calls < 40, "routing never chose the slow server first");
    }
    // Every request the slow server got was a losing leg: its connection was closed while
    // the server still held it (a blocking client drops the leg when its read returns, after
    // the server's delay, so the server sees its answer taken instead).
    if H::INTERRUPTS_IO {
        assert!(
            slow.wait_for_disconnects(slow.request_count(), Duration::from_secs(6)),
            "a losing leg kept its connection"
        );
    }
    assert_eq!(
        fast.request_count(),
        calls,
        "each call's winner, and only it, on the fast one"
    );
}

pub fn pool_no_hedge_without_another_endpoint<H: Harness>() {
    let slow = FakeServer::start();
    slow.push(Reply::generate().delay(Duration::from_millis(600)));
    let c = H::builder(&slow.base_url())
        .hedge(HedgeConfig::after(Duration::from_millis(100)).max_extra_percent(100))
        .build();
    let events = stream::<H>(&c).expect("one server");
    assert_eq!(content(&events), "Echo: hi");
    assert_eq!(slow.request_count(), 1, "nothing to hedge to");
}

pub fn pool_health_probe_readmits_a_server<H: Harness>() {
    use vllm_client_core::policy::EjectionConfig;
    let down = FakeServer::start();
    let up = FakeServer::start();
    let c = H::builder("http://unused.invalid/v1")
        .endpoints([down.base_url(), up.base_url()])
        .ejection(
            EjectionConfig::default()
                .durations(Duration::from_millis(300), Duration::from_secs(1))
                .jitter_percent(0)
                .health_probe(Duration::from_secs(2)),
        )
        .build();
    down.set_refusing(true);
    let mut calls = 0;
    while c.endpoints()[0].health == Health::Healthy {
        chat::<H>(&c).expect("no user-visible error");
        calls += 1;
        assert!(calls < 100, "never ejected: {:?}", c.endpoints());
    }
    // Back up; once the ejection is over, a call takes the `GET /health` probe beside its
    // attempt. A probe cut short (its call, on the other server, ended first) is due again at
    // the next call: readmission takes one or a few calls, never a user-visible error.
    down.set_refusing(false);
    std::thread::sleep(Duration::from_millis(400));
    let mut calls = 0;
    while c.endpoints()[0].health != Health::Healthy {
        chat::<H>(&c).expect("no user-visible error while probing");
        calls += 1;
        assert!(calls <= 10, "not readmitted: {:?}", c.endpoints());
        std::thread::sleep(Duration::from_millis(20));
    }
    let requests = down.requests();
    let probes = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/health")
        .count();
    assert!(probes >= 1, "readmitted by a probe: {requests:?}");
}
