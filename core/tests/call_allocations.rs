//! How many heap allocations a call makes on the admission path: a counting global allocator
//! around `Call::new`, the first poll (which waits for a slot) and the poll that admits it
//! and sends its request. A regression here is a regression of the admission bench (at
//! 10 000 waiting calls it is the allocator's work and the cache misses that count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use vllm_client_core::call::{Action, Call, Event, Shared};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::request::Operation;

struct Counting;

// Per thread: `cargo test` runs this file's tests at once, in threads of one process, and the
// harness allocates beside them.
thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
    /// Bytes allocated less bytes freed (by this thread).
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn add<T: Copy + std::ops::Add<Output = T>>(key: &'static std::thread::LocalKey<Cell<T>>, n: T) {
    // Not during the thread's teardown, when its locals are gone.
    let _ = key.try_with(|c| c.set(c.get() + n));
}

fn get<T: Copy>(key: &'static std::thread::LocalKey<Cell<T>>) -> T {
    key.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(&ALLOCS, 1);
        add(&BYTES, layout.size());
        add(&LIVE, layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(&LIVE, -(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        add(&ALLOCS, 1);
        add(&BYTES, new);
        add(&LIVE, new as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let (a, b) = (get(&ALLOCS), get(&BYTES));
    let t = f();
    let (a2, b2) = (get(&ALLOCS), get(&BYTES));
    (t, a2 - a, b2 - b)
}

#[test]
fn a_waiting_call_allocates_little() {
    let mut config = ClientConfig::default();
    config.policy.max_concurrency = Some(1);
    let mut shared = Shared::new(&config, 1);
    let now = Instant::now();
    // Warm the shared state (parsed base URL, first routing) with one call that runs.
    let mut first = Call::new(&config, CallSpec::get(Operation::Models), now, &mut shared);
    assert!(matches!(
        first.poll_with(now, || &mut shared),
        Action::Send { .. }
    ));

    let (mut call, new_allocs, new_bytes) =
        count(|| Call::new(&config, CallSpec::get(Operation::Models), now, &mut shared));
    let (action, wait_allocs, wait_bytes) = count(|| call.poll_with(now, || &mut shared));
    let waiter = match action {
        Action::Wait {
            waiter: Some(w), ..
        } => w,
        other => panic!("expected to wait: {other:?}"),
    };
    drop(action);
    first.cancel(now, &mut shared);
    assert_eq!(shared.poll_wake(), Some(waiter));
    call.handle(now, Event::PermitReleased);
    let (action, send_allocs, send_bytes) = count(|| call.poll_with(now, || &mut shared));
    assert!(matches!(action, Action::Send { .. }), "{action:?}");
    eprintln!(
        "new: {new_allocs} allocations, {new_bytes} B; wait: {wait_allocs}, {wait_bytes} B; \
         send: {send_allocs}, {send_bytes} B"
    );
    // Made: the server's name for telemetry. The URL is the client's, parsed once, and the
    // headers are the client's, built once and shared (the call holds no header map).
    assert!(new_allocs <= 1, "Call::new made {new_allocs} allocations");
    // Waiting: its place in the slot queue (a tree node now and then). Its observation is
    // kept inline.
    assert!(wait_allocs <= 1, "waiting made {wait_allocs} allocations");
    // Sent: the attempt's headers (indices and entries, sized once), its exchange, the
    // endpoint in the report, and the observations' queue (two wait to be drained: admitted
    // after waiting, then started).
    assert!(send_allocs <= 5, "sending made {send_allocs} allocations");
}

/// What an open stream holds on the heap besides its own struct, once its text flows: with a
/// thousand streams open this is paid a thousand times. Not held: a header map of its own (the
/// client's headers are shared), the response's headers (only the server's hint is kept), a
/// queue buffer for its observations.
#[test]
fn an_open_stream_holds_little_on_the_heap() {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use vllm_client_core::call::ResponseHead;
    use vllm_client_core::stream::StreamKind;

    let mut config = ClientConfig::default();
    config.request.api_key = Some(vllm_client_core::request::ApiKey::new("sk-test"));
    let mut shared = Shared::new(&config, 1);
    let now = Instant::now();
    let body = serde_json::json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 200,
    });
    let spec = || {
        CallSpec::stream(
            Operation::ChatCompletions,
            StreamKind::Chat,
            Ok(body.clone()),
        )
    };
    // Warm the shared state with one call.
    let mut first = Call::new(&config, spec(), now, &mut shared);
    assert!(matches!(
        first.poll_with(now, || &mut shared),
        Action::Send { .. }
    ));

    let live = || get(&LIVE);
    let before = live();
    let mut call = Call::new(&config, spec(), now, &mut shared);
    let attempt = match call.poll_with(now, || &mut shared) {
        Action::Send { attempt, .. } => attempt,
        other => panic!("expected a send: {other:?}"),
    };
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("date", "Mon, 07 Dec 2026 04:00:00 GMT"),
        ("server", "uvicorn"),
        ("x-request-id", "4f0c2b1e-6f1d-4d0a-9a53-2f3c7d9e8a11"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    let head = ResponseHead::new(StatusCode::OK, headers, std::time::SystemTime::now());
    call.handle(now, Event::Response { attempt, head });
    let mut events = 0;
    for i in 0..50 {
        let chunk = format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i} \"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
        );
        loop {
            match call.poll_with(now, || &mut shared) {
                Action::ReadBody { .. } => break,
                Action::Emit(_) => events += 1,
                other => panic!("expected a read: {other:?}"),
            }
        }
        call.handle(
            now,
            Event::Chunk {
                attempt,
                bytes: Bytes::from(chunk),
            },
        );
    }
    while let Action::Emit(_) = call.poll_with(now, || &mut shared) {
        events += 1;
    }
    while call.poll_observation().is_some() {}
    assert_eq!(events, 50);
    let held = live() - before;
    eprintln!("an open stream holds {held} B on the heap");
    // The body (its exact size), the server's name, the response's id and model, the
    // endpoint in the report: about 200 bytes. A header map alone is over 600.
    assert!(held <= 400, "an open stream holds {held} B on the heap");
}
