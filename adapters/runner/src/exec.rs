//! [`Exec`]: an executor for `vllm_client_core::client::Client` — a transport and the client's
//! shared state. [`AsyncExec`] and [`BlockingExec`] are its two modes; each implements the
//! core's `Execute` in its own loop file.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use vllm_client_core::call::{CallSpec, Shared};
use vllm_client_core::config::ClientConfig;

use crate::client::ClientState;
use crate::driver::Driver;

/// The async mode of [`Exec`] (any runtime, through [`Transport`](crate::Transport)).
#[derive(Debug)]
pub enum Async {}

/// The blocking mode of [`Exec`] (plain threads, through
/// [`BlockingTransport`](crate::BlockingTransport)).
#[derive(Debug)]
pub enum Blocking {}

/// An executor over the transport `T`, in mode `M`. Cheap to clone; clones share the transport
/// (its connection pool) and the client's shared state (retry budget, breaker, limits).
pub struct Exec<T, M> {
    pub(crate) transport: Arc<T>,
    pub(crate) client: Arc<ClientState>,
    mode: PhantomData<fn() -> M>,
}

/// `send()` returns a future, `send_stream()` an [`EventStream`](crate::EventStream).
pub type AsyncExec<T> = Exec<T, Async>;
/// `send()` returns the value, `send_stream()` an [`EventIter`](crate::EventIter).
pub type BlockingExec<T> = Exec<T, Blocking>;

/// The `Execute` methods that make, read and remake a client: the same in both modes (an async
/// and a blocking transport's `new` and `reconfigure` mean the same).
macro_rules! config_methods {
    () => {
        fn from_config(config: ClientConfig, http: Option<T::HttpClient>) -> Self {
            Exec::with_transport(T::new(&config, http), config)
        }

        fn config(&self) -> &ClientConfig {
            self.client.config()
        }

        fn reconfigure(&self, config: ClientConfig) -> Self {
            Exec::with_transport(self.transport.reconfigure(&config), config)
        }
    };
}
pub(crate) use config_methods;

impl<T, M> Clone for Exec<T, M> {
    fn clone(&self) -> Self {
        Exec {
            transport: self.transport.clone(),
            client: self.client.clone(),
            mode: PhantomData,
        }
    }
}

impl<T, M> fmt::Debug for Exec<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exec").finish_non_exhaustive()
    }
}

impl<T, M> Exec<T, M> {
    pub(crate) fn with_transport(transport: T, config: ClientConfig) -> Self {
        Exec {
            transport: Arc::new(transport),
            client: Arc::new(ClientState::new(config)),
            mode: PhantomData,
        }
    }

    /// The same transport and shared state, another configuration for the calls (see
    /// [`ClientState::derive`]).
    pub(crate) fn derive(&self, config: ClientConfig) -> Self {
        Exec {
            transport: self.transport.clone(),
            client: Arc::new(self.client.derive(config)),
            mode: PhantomData,
        }
    }

    pub(crate) fn driver(&self, spec: CallSpec) -> Driver {
        // A call that starts when a DNS lookup of the endpoints is due starts it (on a thread
        // of its own: the call does not wait).
        if self.client.is_discovering() {
            self.client.tick_discovery();
        }
        Driver::new(self.client.clone(), spec)
    }

    /// Runs `f` with the client's shared state (breaker, budget, limits), e.g. to read the
    /// breaker's state or force it open.
    pub fn with_shared<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        self.client.with_shared(f)
    }
}
