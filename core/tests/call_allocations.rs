//! How many heap allocations a call makes on the admission path: a counting global allocator
//! around `Call::new`, the first poll (which waits for a slot) and the poll that admits it
//! and sends its request. A regression here is a regression of the admission bench (at
//! 10 000 waiting calls it is the allocator's work and the cache misses that count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use vllm_client_core::call::{Action, Call, Event, Shared};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::request::Operation;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let (a, b) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    let t = f();
    let (a2, b2) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
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
    // Waiting: its place in the slot queue (a tree node now and then) and its telemetry
    // queue, once.
    assert!(wait_allocs <= 2, "waiting made {wait_allocs} allocations");
    // Sent: the attempt's headers (indices and entries, sized once), its exchange, and the
    // endpoint in the report.
    assert!(send_allocs <= 4, "sending made {send_allocs} allocations");
}
