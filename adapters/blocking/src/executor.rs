//! [`Blocking`]: runs the core's calls on the caller's thread with ureq.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use vllm_client_core::call::Shared;
use vllm_client_core::client::{CallSpec, Decode, Execute, Reported};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::WaiterId;
use vllm_client_core::VllmError;

use crate::runner::Runner;
use crate::stream::EventIter;

/// The blocking executor. Cheap to clone; clones share the ureq agent's configuration and the
/// client's shared state (retry budget, breaker, limits). `Send + Sync`: one client can serve
/// many threads.
#[derive(Clone)]
pub struct Blocking {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) agent: ureq::Agent,
    shared: Mutex<Shared>,
    /// Calls waiting for a concurrency slot, by their place in the core's queue. Locked only
    /// while `shared` is held, so a waiter is registered before anybody can name it.
    waiters: Mutex<HashMap<WaiterId, Arc<Turn>>>,
}

impl Inner {
    /// The shared state. Never held across a blocking wait or read.
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
    ready: Mutex<bool>,
    cv: Condvar,
}

impl Turn {
    fn notify(&self) {
        *self.ready.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_one();
    }

    /// Waits for the wake-up or `deadline`; whether it came.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        while !*ready {
            ready = match deadline {
                None => self.cv.wait(ready).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    match self.cv.wait_timeout(ready, left) {
                        Ok((r, _)) => r,
                        Err(p) => p.into_inner().0,
                    }
                }
            };
        }
        *ready = false;
        true
    }
}

impl fmt::Debug for Blocking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking").finish_non_exhaustive()
    }
}

/// ureq with no timer of its own (the core hands out every deadline; each request also gets
/// the core's connect timeout and reads error statuses as responses).
fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(None)
        .build();
    ureq::Agent::new_with_config(config)
}

/// A seed from the OS for the jitter, so that processes do not retry in lockstep.
fn entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

impl Blocking {
    fn with(config: ClientConfig, agent: ureq::Agent) -> Self {
        let shared = Shared::new(&config.policy, entropy());
        Blocking {
            inner: Arc::new(Inner {
                config,
                agent,
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

impl Execute for Blocking {
    type Output<T: Send + 'static> = Result<T, VllmError>;
    type Stream = EventIter;
    type HttpClient = ureq::Agent;

    /// With your own agent, its configuration (TLS, proxy, …) is used for every attempt, each
    /// on an agent of its own (see the crate docs).
    fn from_config(config: ClientConfig, http: Option<ureq::Agent>) -> Self {
        Blocking::with(config, http.unwrap_or_else(agent))
    }

    fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn reconfigure(&self, config: ClientConfig) -> Self {
        Blocking::with(config, self.inner.agent.clone())
    }

    fn execute<T: Decode + Send + 'static>(&self, spec: CallSpec) -> Result<T, VllmError> {
        let body = Runner::new(self.inner.clone(), spec).finish()?;
        T::decode(&body)
    }

    fn execute_reported<T: Decode + Send + 'static>(
        &self,
        spec: CallSpec,
    ) -> Result<Reported<T>, VllmError> {
        let mut runner = Runner::new(self.inner.clone(), spec);
        let result = runner.finish().and_then(|body| T::decode(&body));
        Ok(Reported::new(result, runner.report()))
    }

    fn execute_stream(&self, spec: CallSpec) -> Result<EventIter, VllmError> {
        EventIter::start(Runner::new(self.inner.clone(), spec))
    }
}
