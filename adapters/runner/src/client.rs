//! [`ClientState`]: what all calls of one client share — the configuration, the core's
//! [`Shared`] state behind a lock, and the calls waiting for a concurrency slot.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vllm_client_core::call::Shared;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::WaiterId;

use crate::sink::Sink;
use crate::telemetry;
use crate::turn::Turn;

/// A waiting call, or the turn that came for it before it registered.
enum Waiter {
    Registered(Arc<Turn>),
    Notified,
}

/// The state every call of a client shares. A derived client ([`derive`](Self::derive)) has
/// a configuration of its own and the same everything else.
pub struct ClientState {
    config: ClientConfig,
    shared: Arc<Mutex<Shared>>,
    /// Calls waiting for a slot, by their place in the core's queue; a turn that came before
    /// its call registered is kept until it does, so none is ever missed.
    waiters: Arc<Mutex<HashMap<WaiterId, Waiter>>>,
    /// Where metrics go (nothing, unless a metrics feature is on).
    pub(crate) sink: Arc<Sink>,
    /// The endpoints' base URLs by id (the base URL alone for a client with one server);
    /// endpoints set at run time are added (ids are never reused).
    endpoint_urls: Arc<Mutex<Arc<[String]>>>,
    /// Whether DNS discovery is on (calls then check whether a lookup is due).
    pub(crate) discovering: Arc<AtomicBool>,
}

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientState").finish_non_exhaustive()
    }
}

impl ClientState {
    /// State for `config`, seeded from the OS unless the policy has a seed.
    pub fn new(config: ClientConfig) -> Self {
        let endpoint_urls: Arc<[String]> = match config.request.endpoints.as_slice() {
            [] => vec![config.request.base_url.clone()].into(),
            list => list.iter().map(|e| e.url.clone()).collect(),
        };
        let shared = Shared::new(&config, vllm_client_core::os_entropy());
        ClientState {
            config,
            shared: Arc::new(Mutex::new(shared)),
            waiters: Arc::new(Mutex::new(HashMap::new())),
            sink: Arc::new(Sink::new()),
            endpoint_urls: Arc::new(Mutex::new(endpoint_urls)),
            discovering: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same shared state — retry budget, breaker, limits, pool, the concurrency queue,
    /// the metric instruments — under another configuration for the calls made through it
    /// (timeouts, retries, key, headers). What the shared state was built with (breaker,
    /// budget, limits, endpoints) stays as it was.
    pub fn derive(&self, config: ClientConfig) -> ClientState {
        ClientState {
            config,
            shared: self.shared.clone(),
            waiters: self.waiters.clone(),
            sink: self.sink.clone(),
            endpoint_urls: self.endpoint_urls.clone(),
            discovering: self.discovering.clone(),
        }
    }

    /// The endpoints' base URLs, by id.
    pub(crate) fn endpoint_urls(&self) -> Arc<[String]> {
        self.endpoint_urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Keeps the URLs by id current after the endpoint list changed.
    pub(crate) fn refresh_endpoint_urls(
        &self,
        endpoints: &[vllm_client_core::pool::EndpointStatus],
    ) {
        let mut urls = self.endpoint_urls.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<String> = urls.to_vec();
        for e in endpoints {
            let i = e.id.index();
            if list.len() <= i {
                list.resize(i + 1, String::new());
            }
            if list[i] != e.url {
                list[i].clone_from(&e.url);
            }
        }
        *urls = list.into();
    }

    /// Whether DNS discovery is on.
    pub(crate) fn is_discovering(&self) -> bool {
        self.discovering.load(Ordering::Relaxed)
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Runs `f` with the shared state (breaker, budget, limits), e.g. to read the breaker's
    /// state or force it open. Slots it frees go to the waiters at once.
    pub fn with_shared<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        f(&mut self.lock())
    }

    /// The shared state, locked. Never held across an await or a blocking read; on unlock,
    /// the waiters whose turn came are woken, and breaker transitions, adaptive-limit changes
    /// and endpoint changes are reported.
    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked {
            client: self,
            guard: self.shared.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Every endpoint's state now.
    pub fn endpoints(&self) -> Vec<vllm_client_core::pool::EndpointStatus> {
        self.lock().endpoints(std::time::Instant::now())
    }

    /// `waiter`'s call waits on `turn` (again: registering twice is harmless).
    pub(crate) fn register(&self, waiter: WaiterId, turn: &Arc<Turn>) {
        let mut waiters = self.waiters();
        if let Some(Waiter::Notified) = waiters.get(&waiter) {
            waiters.remove(&waiter);
            turn.notify();
        } else {
            waiters.insert(waiter, Waiter::Registered(turn.clone()));
        }
    }

    /// `waiter`'s turn came: wake its call, or keep the turn until it registers.
    fn wake(&self, waiter: WaiterId) {
        let mut waiters = self.waiters();
        match waiters.remove(&waiter) {
            Some(Waiter::Registered(turn)) => turn.notify(),
            _ => {
                waiters.insert(waiter, Waiter::Notified);
            }
        }
    }

    pub(crate) fn forget(&self, waiter: WaiterId) {
        self.waiters().remove(&waiter);
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<WaiterId, Waiter>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The locked shared state.
pub(crate) struct Locked<'a> {
    client: &'a ClientState,
    guard: MutexGuard<'a, Shared>,
}

impl Deref for Locked<'_> {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Shared {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        while let Some(waiter) = self.guard.poll_wake() {
            self.client.wake(waiter);
        }
        while let Some((endpoint, t)) = self.guard.poll_transition() {
            telemetry::transition(endpoint, &t, &self.client.sink);
        }
        if Sink::ENABLED {
            telemetry::concurrency(
                self.guard.in_flight(),
                self.guard.waiting(),
                &self.client.sink,
            );
        }
        while let Some(change) = self.guard.poll_endpoint_change() {
            telemetry::endpoint_change(&change, &self.client.sink);
        }
        while let Some(change) = self.guard.poll_limit_change() {
            telemetry::limit_change(&change, &self.client.sink);
        }
    }
}
