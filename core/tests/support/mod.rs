//! Driving a [`Call`] by hand in tests: the loop a transport runs, with the answers given
//! inline. `Close` actions are taken as they come (a hand-driven test holds no connection).
#![allow(dead_code)]

use std::time::Instant;

use bytes::Bytes;
use vllm_client_core::call::{Action, AttemptId, Call, Event, ResponseHead, Shared};
use vllm_client_core::StreamEvent;

/// The next action that is not a `Close`.
pub fn next(call: &mut Call, now: Instant, shared: &mut Shared) -> Action {
    loop {
        match call.poll(now, shared) {
            Action::Close { .. } => continue,
            other => return other,
        }
    }
}

/// The next action must be a `Send`: its attempt.
pub fn send(call: &mut Call, now: Instant, shared: &mut Shared) -> AttemptId {
    match next(call, now, shared) {
        Action::Send { attempt, .. } => attempt,
        other => panic!("expected a send, got {other:?}"),
    }
}

/// Reports `head` for `attempt`, then answers each read with the next of `chunks` and, once
/// they are used up, with the body's end (when `end`). Returns the events emitted meanwhile and
/// the first action that is neither a read, an emit nor a close.
pub fn answer(
    call: &mut Call,
    now: Instant,
    shared: &mut Shared,
    attempt: AttemptId,
    head: ResponseHead,
    chunks: &[&[u8]],
    end: bool,
) -> (Vec<StreamEvent>, Action) {
    call.handle(now, Event::Response { attempt, head });
    feed(call, now, shared, attempt, chunks, end)
}

/// As [`answer`], for a response whose head was already reported.
pub fn feed(
    call: &mut Call,
    now: Instant,
    shared: &mut Shared,
    attempt: AttemptId,
    chunks: &[&[u8]],
    end: bool,
) -> (Vec<StreamEvent>, Action) {
    let mut chunks = chunks.iter();
    let mut events = Vec::new();
    loop {
        match next(call, now, shared) {
            Action::ReadBody { attempt: a, .. } if a == attempt => match chunks.next() {
                Some(c) => call.handle(
                    now,
                    Event::Chunk {
                        attempt,
                        bytes: Bytes::copy_from_slice(c),
                    },
                ),
                None if end => call.handle(now, Event::BodyEnd { attempt }),
                None => {
                    return (
                        events,
                        Action::ReadBody {
                            attempt,
                            deadline: None,
                        },
                    )
                }
            },
            Action::Emit(ev) => events.push(ev),
            other => return (events, other),
        }
    }
}
