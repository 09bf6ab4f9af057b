//! [`AsyncStd`]: runs the core's calls on async-std with surf.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use event_listener::Event as Notify;
use vllm_client_core::call::Shared;
use vllm_client_core::client::{CallSpec, Decode, Execute, Reported};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::WaiterId;
use vllm_client_core::VllmError;

use crate::http1::Http1;
use crate::runner::Runner;
use crate::stream::EventStream;

/// A boxed, `Send` future: what `send()` returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, VllmError>> + Send + 'static>>;

/// The async-std executor. Cheap to clone; clones share the HTTP client and the client's
/// shared state (retry budget, breaker, limits).
#[derive(Clone)]
pub struct AsyncStd {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: surf::Client,
    shared: Mutex<Shared>,
    /// Calls waiting for a concurrency slot, by their place in the core's queue. Locked only
    /// while `shared` is held, so a waiter is registered before anybody can name it.
    waiters: Mutex<HashMap<WaiterId, Arc<Turn>>>,
}

impl Inner {
    /// The shared state. Never held across an await.
    pub(crate) fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The waiting calls. Lock only while holding [`shared`](Self::shared).
    pub(crate) fn waiters(&self) -> MutexGuard<'_, HashMap<WaiterId, Arc<Turn>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes exactly the waiters whose turn has come (the core hands a freed slot to the
    /// first waiter). Call with the shared state still locked.
    pub(crate) fn wake_next(&self, shared: &mut Shared) {
        while let Some(waiter) = shared.poll_wake() {
            if let Some(turn) = self.waiters().remove(&waiter) {
                turn.notify();
            }
        }
    }
}

/// One call's wake-up: set once its turn for a slot has come (kept if it comes before the
/// call waits, so it is never missed).
#[derive(Default)]
pub(crate) struct Turn {
    ready: AtomicBool,
    event: Notify,
}

impl Turn {
    fn notify(&self) {
        self.ready.store(true, Ordering::Release);
        self.event.notify(1);
    }

    /// Resolves once the wake-up came.
    pub(crate) async fn wait(&self) {
        loop {
            if self.ready.swap(false, Ordering::AcqRel) {
                return;
            }
            // Listening before checking again, so a wake-up in between is not missed.
            let listener = self.event.listen();
            if self.ready.swap(false, Ordering::AcqRel) {
                return;
            }
            listener.await;
        }
    }
}

impl fmt::Debug for AsyncStd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncStd").finish_non_exhaustive()
    }
}

/// surf on [`Http1`]: no timer of its own (the core hands out every deadline), one connection
/// per request (see the crate docs: dropping a response must close its connection), and
/// response bodies framed as RFC 9112 says.
fn http_client() -> surf::Client {
    surf::Client::with_http_client(Http1::new())
}

/// A seed from the OS for the jitter, so that processes do not retry in lockstep.
fn entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

impl AsyncStd {
    fn with(config: ClientConfig, http: surf::Client) -> Self {
        let shared = Shared::new(&config.policy, entropy());
        AsyncStd {
            inner: Arc::new(Inner {
                config,
                http,
                shared: Mutex::new(shared),
                waiters: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Runs `f` with the client's shared state (breaker, budget, limits), e.g. to read the
    /// breaker's state or force it open.
    pub fn with_shared<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut shared = self.inner.shared();
        let r = f(&mut shared);
        self.inner.wake_next(&mut shared);
        r
    }
}

impl Execute for AsyncStd {
    type Output<T: Send + 'static> = BoxFuture<T>;
    type Stream = EventStream;
    type HttpClient = surf::Client;

    /// With your own surf client, build it on [`Http1`]
    /// (`surf::Client::with_http_client(Http1::new())`, then your middleware): see the crate
    /// docs. On surf's default backend, turn keep-alive and the timeout off
    /// (`Config::set_http_keep_alive(false)`, `set_timeout(None)`), and know that it reads a
    /// body delimited by the end of the connection as empty and takes a body shorter than its
    /// `Content-Length` as complete.
    fn from_config(config: ClientConfig, http: Option<surf::Client>) -> Self {
        AsyncStd::with(config, http.unwrap_or_else(http_client))
    }

    fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn reconfigure(&self, config: ClientConfig) -> Self {
        AsyncStd::with(config, self.inner.http.clone())
    }

    fn execute<T: Decode + Send + 'static>(&self, spec: CallSpec) -> BoxFuture<T> {
        let mut runner = Runner::new(self.inner.clone(), spec);
        Box::pin(async move {
            let body = runner.finish().await?;
            T::decode(&body)
        })
    }

    fn execute_reported<T: Decode + Send + 'static>(
        &self,
        spec: CallSpec,
    ) -> BoxFuture<Reported<T>> {
        let mut runner = Runner::new(self.inner.clone(), spec);
        Box::pin(async move {
            let result = runner.finish().await.and_then(|body| T::decode(&body));
            Ok(Reported::new(result, runner.report()))
        })
    }

    fn execute_stream(&self, spec: CallSpec) -> BoxFuture<EventStream> {
        let runner = Runner::new(self.inner.clone(), spec);
        Box::pin(EventStream::start(runner))
    }
}
