//! A fleet that breathes, on every adapter, against fake vLLM servers on loopback: a replica
//! that refuses connections and comes back is readmitted within seconds of answering, without
//! a failed call; endpoints added and removed at run time (the removed one drains its stream);
//! the background upkeep readmits a replica while no call flows; DNS discovery follows a name.

// The conformance suite's harness; this file uses its streams, not its other views.
#[allow(dead_code)]
#[path = "conformance/harness.rs"]
mod harness;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;
use vllm_client_core::client::{Client, ManageEndpoints};
use vllm_client_core::policy::{Health, RoutingConfig, SlowStartConfig};
use vllm_client_core::pool::{DnsDiscovery, EndpointStatus};
use vllm_client_core::StreamEvent;
use vllm_testkit::server::{FakeServer, Reply};

use harness::{AsyncStdH, BlockingH, Harness, TokioH};

/// An adapter whose client manages endpoints, and how its upkeep is run.
trait Fleet: Harness<E: ManageEndpoints> {
    /// Starts the client's background upkeep.
    fn spawn_upkeep(c: &Client<Self::E>);
}

fn upkeep_runtime() -> &'static ::tokio::runtime::Runtime {
    static RT: OnceLock<::tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

impl Fleet for TokioH {
    fn spawn_upkeep(c: &Client<Self::E>) {
        upkeep_runtime().spawn(c.upkeep());
    }
}

impl Fleet for AsyncStdH {
    fn spawn_upkeep(c: &Client<Self::E>) {
        ::async_std::task::spawn(c.upkeep());
    }
}

impl Fleet for BlockingH {
    fn spawn_upkeep(c: &Client<Self::E>) {
        std::thread::spawn(c.upkeep());
    }
}

fn stream<H: Harness>(c: &Client<H::E>) -> Vec<StreamEvent> {
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(json!([{"role": "user", "content": "hi"}]))
            .stream(true)
            .send_stream(),
    )
    .expect("no failed call");
    H::collect(s)
}

fn assert_ok(events: &[StreamEvent]) {
    assert!(
        matches!(events.last(), Some(StreamEvent::Done)),
        "no failed call: {events:?}"
    );
}

fn status_of<H: Harness>(c: &Client<H::E>, server: &FakeServer) -> Option<EndpointStatus> {
    c.endpoints()
        .into_iter()
        .find(|e| e.url == server.base_url())
}

fn pool<H: Harness>(servers: &[&FakeServer]) -> Client<H::E> {
    H::builder("http://unused.invalid/v1")
        .endpoints(servers.iter().map(|s| s.base_url()))
        .routing(
            RoutingConfig::default()
                .slow_start(SlowStartConfig::default().window(Duration::from_millis(500))),
        )
        .build()
}

/// A replica that refuses connections is ejected after three refusals (each failed over, no
/// failed call), probed every few seconds, and back in rotation within 3.5 s of answering
/// again — not an ejection time (30 s) later.
fn readmitted_within_seconds_of_answering<H: Fleet>() {
    let servers = [
        FakeServer::start(),
        FakeServer::start(),
        FakeServer::start(),
    ];
    let c = pool::<H>(&[&servers[0], &servers[1], &servers[2]]);
    servers[0].set_refusing(true);
    let mut calls = 0;
    while status_of::<H>(&c, &servers[0]).unwrap().health == Health::Healthy {
        assert_ok(&stream::<H>(&c));
        calls += 1;
        assert!(calls < 200, "never ejected: {:?}", c.endpoints());
    }
    let s = status_of::<H>(&c, &servers[0]).unwrap();
    let next = s.next_probe.expect("the next probe is shown");
    assert!(
        next <= Instant::now() + Duration::from_secs(1),
        "probed within a second: {s:?}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    servers[0].set_refusing(false);
    let back = Instant::now();
    while status_of::<H>(&c, &servers[0]).unwrap().health != Health::Healthy {
        assert_ok(&stream::<H>(&c));
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            back.elapsed() < Duration::from_millis(3500),
            "not readmitted within 3.5 s of answering: {:?}",
            c.endpoints()
        );
    }
    // It takes calls again.
    let before = servers[0].request_count();
    for _ in 0..30 {
        assert_ok(&stream::<H>(&c));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(servers[0].request_count() > before, "{:?}", c.endpoints());
}

/// Endpoints set at run time: the new one takes calls (after its slow start), the removed one
/// finishes the stream it carries and takes no new call, and leaves the list.
fn endpoints_added_and_removed_at_run_time<H: Fleet>() {
    let (a, b, added) = (
        FakeServer::start(),
        FakeServer::start(),
        FakeServer::start(),
    );
    let slow = Reply::generate().token_delay(Duration::from_millis(150));
    a.push_for("/v1/chat/completions", slow);
    let c = pool::<H>(&[&a, &b]);
    // A stream held open on `a` (routing draws at random: open until one lands there).
    let mut held = None;
    for _ in 0..40 {
        let before = a.request_count();
        let s = H::wait(
            c.chat
                .completions()
                .create()
                .model("m")
                .messages(json!([{"role": "user", "content": "hi"}]))
                .stream(true)
                .send_stream(),
        )
        .expect("a stream");
        if a.request_count() > before {
            held = Some(s);
            break;
        }
        assert_ok(&H::collect(s));
    }
    let held = held.expect("a stream on the endpoint to remove");
    let update = c
        .set_endpoints([b.base_url(), added.base_url()])
        .expect("a valid list");
    assert_eq!(update.added.len(), 1, "{update:?}");
    assert_eq!(update.draining.len(), 1, "{update:?}");
    let drained = status_of::<H>(&c, &a).expect("listed while it drains");
    assert!(drained.draining && drained.in_flight == 1, "{drained:?}");
    let from_a = a.request_count();
    let mut calls = 0;
    while added.request_count() == 0 {
        assert_ok(&stream::<H>(&c));
        calls += 1;
        assert!(
            calls < 200,
            "the new endpoint took no call: {:?}",
            c.endpoints()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        a.request_count(),
        from_a,
        "a drained endpoint got a new call"
    );
    // The stream on the removed endpoint ends as it should.
    let events = H::collect(held);
    assert_ok(&events);
    assert_eq!(
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Content(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<String>(),
        "Echo: hi"
    );
    assert!(status_of::<H>(&c, &a).is_none(), "{:?}", c.endpoints());
    assert!(
        c.set_endpoints(Vec::<String>::new()).is_err(),
        "never empty"
    );
    let unusable = vllm_client_core::pool::EndpointConfig::new(b.base_url()).api_key("a\nkey");
    assert!(
        c.set_endpoints([unusable]).is_err(),
        "an unusable endpoint changes nothing"
    );
    assert_eq!(c.endpoints().len(), 2);
}

/// With the upkeep running, an ejected replica is probed and readmitted while no call flows.
fn the_upkeep_readmits_without_calls<H: Fleet>() {
    let servers = [
        FakeServer::start(),
        FakeServer::start(),
        FakeServer::start(),
    ];
    let c = pool::<H>(&[&servers[0], &servers[1], &servers[2]]);
    H::spawn_upkeep(&c);
    servers[1].set_refusing(true);
    let mut calls = 0;
    while status_of::<H>(&c, &servers[1]).unwrap().health == Health::Healthy {
        assert_ok(&stream::<H>(&c));
        calls += 1;
        assert!(
            calls < 200,
            "never ejected: {} connections refused; {:?}",
            servers[1].refused_count(),
            c.endpoints()
        );
    }
    servers[1].set_refusing(false);
    let back = Instant::now();
    let before = servers[1].request_count();
    while status_of::<H>(&c, &servers[1]).unwrap().health != Health::Healthy {
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            back.elapsed() < Duration::from_millis(3500),
            "the upkeep did not readmit it: {:?}",
            c.endpoints()
        );
    }
    // No call flowed: what readmitted it was the upkeep's `GET /health`.
    let requests = servers[1].requests();
    assert!(requests.len() > before, "{requests:?}");
    assert!(
        requests[before..]
            .iter()
            .all(|r| r.method == "GET" && r.path == "/health"),
        "{:?}",
        &requests[before..]
    );
}

/// DNS discovery: `localhost` resolves to the loopback address(es); the pool follows.
fn discovery_follows_a_name<H: Fleet>() {
    let server = FakeServer::start();
    let port = server.addr().port();
    let c = pool::<H>(&[&server]);
    c.discover(DnsDiscovery::new(format!("http://localhost:{port}/v1")))
        .expect("a name to discover");
    let wanted = format!("http://127.0.0.1:{port}/v1");
    let started = Instant::now();
    while !c.endpoints().iter().any(|e| e.url == wanted && !e.draining) {
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            c.endpoints()
        );
    }
    for _ in 0..5 {
        assert_ok(&stream::<H>(&c));
    }
    assert!(c.discover(DnsDiscovery::new("ftp://localhost/v1")).is_err());
}

macro_rules! fleet {
    ($($scenario:ident),* $(,)?) => {
        mod tokio {
            $( #[test] fn $scenario() { crate::$scenario::<crate::TokioH>() } )*
        }
        mod async_std {
            $( #[test] fn $scenario() { crate::$scenario::<crate::AsyncStdH>() } )*
        }
        mod blocking {
            $( #[test] fn $scenario() { crate::$scenario::<crate::BlockingH>() } )*
        }
    };
}

fleet!(
    readmitted_within_seconds_of_answering,
    endpoints_added_and_removed_at_run_time,
    the_upkeep_readmits_without_calls,
    discovery_follows_a_name,
);
