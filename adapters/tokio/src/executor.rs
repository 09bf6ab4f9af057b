//! [`Tokio`]: runs the core's calls on tokio with reqwest.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use vllm_client_core::call::Shared;
use vllm_client_core::client::{CallSpec, Decode, Execute, Reported};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::WaiterId;
use vllm_client_core::VllmError;

use crate::runner::Runner;
use crate::stream::EventStream;

/// A boxed, `Send` future: what `send()` returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, VllmError>> + Send + 'static>>;

/// The tokio executor. Cheap to clone; clones share the connection pool and the client's
/// shared state (retry budget, breaker, limits).
#[derive(Clone)]
pub struct Tokio {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: reqwest::Client,
    shared: Mutex<Shared>,
    /// Calls waiting for a concurrency slot, by their place in the core's queue. Locked only
    /// while `shared` is held, so a waiter is registered before anybody can name it.
    waiters: Mutex<HashMap<WaiterId, Arc<Notify>>>,
}

impl Inner {
    /// The shared state. Never held across an await.
    pub(crate) fn shared(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock cannot leave `Shared` half-updated in a way that
        // matters more than refusing all further calls would.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The waiting calls. Lock only while holding [`shared`](Self::shared).
    pub(crate) fn waiters(&self) -> MutexGuard<'_, HashMap<WaiterId, Arc<Notify>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes exactly the waiters whose turn has come (the core hands a freed slot to the
    /// first waiter). Call with the shared state still locked.
    pub(crate) fn wake_next(&self, shared: &mut Shared) {
        while let Some(waiter) = shared.poll_wake() {
            if let Some(notify) = self.waiters().remove(&waiter) {
                notify.notify_one();
            }
        }
    }
}

impl fmt::Debug for Tokio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokio").finish_non_exhaustive()
    }
}

fn http_client(config: &ClientConfig) -> reqwest::Client {
    let mut b = reqwest::Client::builder();
    if let Some(c) = config.policy.timeouts.connect {
        b = b.connect_timeout(c);
    }
    // Building fails only when TLS cannot initialise; fall back to the defaults then, and the
    // first request reports the problem.
    b.build().unwrap_or_else(|_| reqwest::Client::new())
}

/// A seed from the OS for the jitter, so that processes do not retry in lockstep.
fn entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

impl Tokio {
    fn with(config: ClientConfig, http: reqwest::Client) -> Self {
        let shared = Shared::new(&config.policy, entropy());
        Tokio {
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

impl Execute for Tokio {
    type Output<T: Send + 'static> = BoxFuture<T>;
    type Stream = EventStream;
    type HttpClient = reqwest::Client;

    fn from_config(config: ClientConfig, http: Option<reqwest::Client>) -> Self {
        let http = http.unwrap_or_else(|| http_client(&config));
        Tokio::with(config, http)
    }

    fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn reconfigure(&self, config: ClientConfig) -> Self {
        let http = if config.policy.timeouts.connect == self.inner.config.policy.timeouts.connect {
            self.inner.http.clone()
        } else {
            http_client(&config)
        };
        Tokio::with(config, http)
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
