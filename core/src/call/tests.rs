//! Tests of the whole loop: what `poll_with` takes the shared state for, and the rules every
//! phase keeps (sticky end, time never going backwards).

use super::wire::{chat_stream, content, sse, Wire, DONE};
use super::{Action, Event};
use crate::config::ClientConfig;
use crate::event::StreamEvent;

#[test]
fn reading_a_stream_takes_the_shared_state_only_at_its_start_and_its_end() {
    let mut w = Wire::new(ClientConfig::default());
    let mut a = w.call(chat_stream());
    let attempt = w.send(&mut a, 0);
    let at_start = w.locks;
    let chunks: Vec<String> = (0..200).map(|i| content(&format!("t{i} "))).collect();
    let mut chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
    chunks.push(DONE);
    let (events, end) = w.answer(&mut a, 1, attempt, sse(), &chunks, true);
    assert_eq!(events.len(), 201);
    assert!(matches!(end, Action::Done(Ok(_))));
    // The first data event (the breaker's and the pool's success, the limits' samples) and
    // the end (the budget's reward, the released slot): two takings for 201 events.
    assert!(w.locks - at_start <= 3, "{} takings", w.locks - at_start);
}

#[test]
fn the_end_is_sticky_and_late_events_change_nothing() {
    let mut w = Wire::new(ClientConfig::default());
    let mut a = w.call(chat_stream());
    let attempt = w.send(&mut a, 0);
    let body = [content("x"), DONE.to_owned()].concat();
    let (_, end) = w.answer(&mut a, 0, attempt, sse(), &[&body], true);
    assert!(matches!(end, Action::Done(Ok(_))));
    for t in [0, 10, 1_000_000] {
        w.handle(&mut a, t, Event::BodyEnd { attempt });
        w.handle(&mut a, t, Event::Timeout);
        w.handle(&mut a, t, Event::PermitReleased);
        assert!(matches!(w.next(&mut a, t), Action::Done(Ok(_))));
    }
}

#[test]
fn a_clock_that_goes_backwards_is_taken_as_the_last_time_seen() {
    let mut w = Wire::new(ClientConfig::default());
    let mut a = w.call(chat_stream());
    let attempt = w.send(&mut a, 1_000);
    w.handle(
        &mut a,
        1_000,
        Event::Response {
            attempt,
            head: sse(),
        },
    );
    // Polled with an earlier time: the attempt's deadlines still count from 1 s.
    let Action::ReadBody { deadline, .. } = w.next(&mut a, 0) else {
        panic!("reads")
    };
    assert_eq!(deadline, Some(w.at(601_000)));
    w.handle(
        &mut a,
        0,
        Event::Chunk {
            attempt,
            bytes: content("a").into(),
        },
    );
    assert!(matches!(
        w.next(&mut a, 0),
        Action::Emit(StreamEvent::Content(_))
    ));
}

#[test]
fn a_call_shares_the_clients_policy_unless_its_own_differs() {
    use super::{Call, Shared};
    use crate::client::{CallOptions, CallSpec};
    use crate::request::Operation;
    use std::sync::Arc;
    use std::time::Instant;

    let config = ClientConfig::default();
    let mut shared = Shared::new(&config, 1);
    let now = Instant::now();
    let client_policy = shared
        .shared_policy(&config.policy)
        .expect("the client's own");
    let plain = Call::new(&config, CallSpec::get(Operation::Models), now, &mut shared);
    assert!(Arc::ptr_eq(&plain.policy, &client_policy));
    // A configuration other than the shared state's: its own policy, as given.
    let mut other = config.clone();
    other.policy.retry.max_retries = 0;
    let derived = Call::new(&other, CallSpec::get(Operation::Models), now, &mut shared);
    assert_eq!(derived.policy.retry.max_retries, 0);
    assert!(!Arc::ptr_eq(&derived.policy, &client_policy));
    // Options of its own: applied to a copy.
    let options = CallOptions {
        max_retries: Some(5),
        ..CallOptions::default()
    };
    let spec = CallSpec::get(Operation::Models).with_options(&options);
    let own = Call::new(&config, spec, now, &mut shared);
    assert_eq!(own.policy.retry.max_retries, 5);
    assert_eq!(
        client_policy.retry.max_retries,
        config.policy.retry.max_retries
    );
}

#[test]
fn a_successful_head_keeps_no_headers_but_its_servers_hint() {
    use super::wire::head;
    let mut w = Wire::new(ClientConfig::default());
    let mut a = w.call(chat_stream());
    let attempt = w.send(&mut a, 0);
    let asked = head(
        200,
        "text/event-stream",
        &[
            ("retry-after", "3"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "5s"),
        ],
    );
    w.handle(
        &mut a,
        0,
        Event::Response {
            attempt,
            head: asked,
        },
    );
    // An open stream holds its head for its whole life: not its headers, only the longer of
    // what they asked for (judging a later failure of the attempt reads nothing else).
    let ex = &a.exchanges[0];
    assert!(ex.head.as_ref().is_some_and(|h| h.headers.is_empty()));
    assert_eq!(ex.hint, Some(std::time::Duration::from_secs(5)));
    assert_eq!(
        a.report().rate_limit.map(|r| r.requests.remaining),
        Some(Some(0))
    );
    // An error's head keeps them: its body's error and the retry read them at its end.
    let mut b = w.call(chat_stream());
    let attempt = w.send(&mut b, 0);
    let busy = head(503, "application/json", &[("retry-after", "3")]);
    w.handle(
        &mut b,
        0,
        Event::Response {
            attempt,
            head: busy,
        },
    );
    let ex = &b.exchanges[0];
    assert_eq!(ex.head.as_ref().map(|h| h.headers.len()), Some(2));
    assert_eq!(ex.hint, Some(std::time::Duration::from_secs(3)));
}
