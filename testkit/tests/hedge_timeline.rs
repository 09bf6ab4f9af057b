//! A hedged first token in virtual time, with its exact timeline: both legs driven by hand
//! through the core's [`Hedge`], as the run loops race them.
//!
//! Whichever endpoint gets the first request holds its first token for 3 s; the other answers
//! in 100 ms. The hedge fires at 200 ms, the backup wins at 300 ms, the primary is cancelled
//! then — before anything of it reached the caller — and its endpoint is free again.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, StatusCode};
use vllm_client_core::call::{
    Action, Call, CallSpec, Event, Hedge, HedgeStep, Leg, ResponseHead, Shared,
};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::HedgeConfig;
use vllm_client_core::request::Operation;
use vllm_client_core::{StreamEvent, StreamKind, VllmError};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn spec() -> CallSpec {
    CallSpec::stream(
        Operation::ChatCompletions,
        StreamKind::Chat,
        Ok(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})),
    )
}

fn sse_head() -> ResponseHead {
    let mut h = HeaderMap::new();
    h.insert("content-type", "text/event-stream".parse().unwrap());
    ResponseHead::new(StatusCode::OK, h, SystemTime::UNIX_EPOCH)
}

fn answer(text: &str) -> Event {
    let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]});
    Event::Chunk(format!("data: {chunk}\n\ndata: [DONE]\n\n").into())
}

fn host(a: &Action) -> String {
    match a {
        Action::Send { request, .. } => request.uri().host().unwrap_or("?").to_owned(),
        other => panic!("expected a send, got {other:?}"),
    }
}

#[test]
fn the_backup_wins_and_the_primary_is_cancelled_before_any_of_its_output() {
    let mut config = ClientConfig::default();
    config.request.endpoints = vec!["http://a:8000/v1".into(), "http://b:8000/v1".into()];
    config.policy.pool.hedge = Some(HedgeConfig::after(ms(200)).max_extra_percent(100));
    config.policy.seed = Some(3);
    let t0 = Instant::now();
    let at = |d: u64| t0 + ms(d);
    let mut shared = Shared::for_client(&config, 3);
    let mut log: Vec<String> = Vec::new();

    // 0 ms: the primary is sent; its server sends the head at once (vLLM does) and holds the
    // first token for 3 s.
    let mut primary = Call::new(&config, spec(), t0, &mut shared);
    let mut hedge = Hedge::new(&primary, t0, &mut shared);
    let slow = host(&primary.poll(t0, &mut shared));
    hedge.observe(&primary);
    log.push(format!("0ms primary send to {slow}"));
    primary.handle(t0, Event::Response(sse_head()), &mut shared);
    let Action::ReadBody { deadline, .. } = primary.poll(t0, &mut shared) else {
        panic!("the primary should read")
    };
    assert_eq!(deadline, Some(at(600_000)), "only the attempt timer runs");
    hedge.observe(&primary);
    assert_eq!(hedge.deadline(), Some(at(200)));

    // 200 ms: no first token; the hedge starts the backup on the other endpoint.
    let mut backup = hedge
        .start_backup(at(200), &config, spec(), &mut shared)
        .expect("a hedge");
    let fast = host(&backup.poll(at(200), &mut shared));
    log.push(format!("200ms backup send to {fast}"));
    assert_ne!(fast, slow);
    backup.handle(at(200), Event::Response(sse_head()), &mut shared);
    assert!(matches!(
        backup.poll(at(200), &mut shared),
        Action::ReadBody { .. }
    ));
    let in_flight: Vec<u32> = shared
        .endpoints(at(200))
        .iter()
        .map(|e| e.in_flight)
        .collect();
    assert_eq!(in_flight, vec![1, 1], "both legs in flight");

    // 300 ms: the backup's first token. It wins; the primary is cancelled.
    backup.handle(at(300), answer("from the backup"), &mut shared);
    let first = backup.poll(at(300), &mut shared);
    let Action::Emit(StreamEvent::Content(text)) = &first else {
        panic!("expected content, got {first:?}")
    };
    assert_eq!(
        hedge.on_step(Leg::Backup, true),
        HedgeStep::Deliver { cancel_other: true }
    );
    log.push(format!("300ms backup emits {text:?}; primary cancelled"));
    primary.cancel(at(300), &mut shared);
    assert!(matches!(
        primary.poll(at(300), &mut shared),
        Action::Done(Err(VllmError::Cancelled))
    ));
    // The primary's late first token (3 s) changes nothing: it was never seen.
    primary.handle(at(3000), answer("from the primary"), &mut shared);
    assert!(matches!(
        primary.poll(at(3000), &mut shared),
        Action::Done(Err(VllmError::Cancelled))
    ));
    assert!(matches!(
        backup.poll(at(300), &mut shared),
        Action::Emit(StreamEvent::Done)
    ));
    assert!(matches!(
        backup.poll(at(300), &mut shared),
        Action::Done(Ok(_))
    ));
    log.push("300ms backup done".into());

    assert_eq!(
        log.join("\n"),
        format!(
            "0ms primary send to {slow}\n200ms backup send to {fast}\n300ms backup emits \"from the backup\"; primary cancelled\n300ms backup done"
        )
    );
    let status = shared.endpoints(at(300));
    assert!(status.iter().all(|e| e.in_flight == 0), "{status:?}");
    // The cancelled primary said nothing about its endpoint; the winner counted as a success.
    let slow_status = status.iter().find(|e| e.url.contains(&slow)).unwrap();
    assert_eq!((slow_status.successes, slow_status.failures), (0, 0));
    assert_eq!(shared.hedge_counts(), (1, 1));
}
