//! Endpoints at run time, for every adapter: `set_endpoints`, DNS discovery and the pool's
//! background upkeep (the core's `ManageEndpoints`).
//!
//! The core decides everything — what a new list changes, when a name is due for a lookup,
//! what its addresses mean, which probe is due and what its answer says. Here only IO happens:
//! - a **lookup** runs on a thread of its own with the system resolver
//!   (`std::net::ToSocketAddrs`, which honours `/etc/hosts` and the resolver configuration);
//!   no runtime is needed, so the three adapters share it. A call that starts when a lookup is
//!   due starts it; the upkeep does too;
//! - the **upkeep** (optional) sends the health probes of ejected endpoints when they are due
//!   and no call flows to carry them, through the adapter's own transport, and starts the
//!   lookups on time. It holds the client weakly and ends when the client is dropped.

use std::future::Future;
use std::net::ToSocketAddrs;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use vllm_client_core::client::ManageEndpoints;
use vllm_client_core::pool::{
    DnsDiscovery, EndpointConfig, EndpointsUpdate, Lookup, ProbeJob, ProbeResult, Ticket,
};
use vllm_client_core::VllmError;

use crate::client::ClientState;
use crate::exec::{AsyncExec, BlockingExec};
use crate::transport::{BlockingTransport, Completion, Transport};

/// How often the upkeep looks whether something is due (probes are due at most every few
/// hundred milliseconds, lookups every few seconds).
const TICK: Duration = Duration::from_millis(250);

/// The async upkeep: a future to spawn.
pub type UpkeepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The blocking upkeep: a function to run on a thread of its own.
pub type UpkeepFn = Box<dyn FnOnce() + Send + 'static>;

impl ClientState {
    /// Replaces the endpoint list now (the core decides what is kept, added, drained).
    pub(crate) fn set_endpoints(
        &self,
        endpoints: Vec<EndpointConfig>,
    ) -> Result<EndpointsUpdate, VllmError> {
        let (update, status) = {
            let mut shared = self.lock();
            let update = shared.set_endpoints(Instant::now(), endpoints)?;
            (update, shared.endpoints(Instant::now()))
        };
        self.endpoints_changed(&update, &status);
        Ok(update)
    }

    /// Follows a DNS name from now on; the first lookup starts at once.
    pub(crate) fn discover(self: &Arc<Self>, discovery: DnsDiscovery) -> Result<(), VllmError> {
        self.lock().set_discovery(discovery)?;
        self.discovering
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.tick_discovery();
        Ok(())
    }

    /// Starts a lookup when one is due (on a thread of its own; its answer goes to the core).
    pub(crate) fn tick_discovery(self: &Arc<Self>) {
        if !self.is_discovering() {
            return;
        }
        let Some(lookup) = self.lock().discovery_due(Instant::now()) else {
            return;
        };
        let client = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("vllm-client-dns".into())
            .spawn(move || {
                let found = resolve(&lookup);
                if let Some(client) = client.upgrade() {
                    client.resolved(&lookup, found);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("vllm-client: no thread for a DNS lookup: {e}");
        }
    }

    fn resolved(&self, lookup: &Lookup, found: Result<Vec<std::net::SocketAddr>, String>) {
        if let Err(e) = &found {
            tracing::warn!(
                server.address = lookup.host.as_str(),
                "vllm-client: DNS lookup of {} failed, the endpoint list is kept: {e}",
                lookup.host
            );
        }
        let (outcome, status) = {
            let mut shared = self.lock();
            let outcome = shared.discovery_resolved(Instant::now(), found);
            (outcome, shared.endpoints(Instant::now()))
        };
        match outcome {
            Some(Ok(update)) => self.endpoints_changed(&update, &status),
            Some(Err(e)) => tracing::warn!(
                "vllm-client: the endpoints {} resolves to cannot be used: {e}",
                lookup.host
            ),
            None => {}
        }
    }

    /// Logs what changed and keeps the URLs by id current.
    fn endpoints_changed(
        &self,
        update: &EndpointsUpdate,
        status: &[vllm_client_core::pool::EndpointStatus],
    ) {
        self.refresh_endpoint_urls(status);
        // A removed endpoint is no longer in `status`: it is named by its index alone.
        let url = |id: &vllm_client_core::pool::EndpointId| {
            status
                .iter()
                .find(|e| e.id == *id)
                .map_or(String::new(), |e| format!(" ({})", e.url))
        };
        let changes = (update.added.iter().map(|id| (id, "added, in slow start")))
            .chain((update.draining.iter()).map(|id| (id, "removed: draining its calls in flight")))
            .chain(update.removed.iter().map(|id| (id, "removed")));
        for (id, what) in changes {
            tracing::info!(
                vllm_client.endpoint.index = id.index(),
                "endpoint {}{} {what}",
                id.index(),
                url(id)
            );
        }
    }
}

/// The system resolver's addresses for `lookup`.
fn resolve(lookup: &Lookup) -> Result<Vec<std::net::SocketAddr>, String> {
    (lookup.host.as_str(), lookup.port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| e.to_string())
}

/// What the upkeep does next: a probe to send, or nothing before `until`.
fn next_step(client: &Weak<ClientState>) -> Option<Result<ProbeJob, Instant>> {
    let client = client.upgrade()?;
    client.tick_discovery();
    let now = Instant::now();
    let mut shared = client.lock();
    if let Some(job) = shared.poll_probe(now) {
        return Some(Ok(job));
    }
    let tick = now + TICK;
    let until = shared.next_probe_at().map_or(tick, |t| t.clamp(now, tick));
    Some(Err(until))
}

fn report(client: &Weak<ClientState>, ticket: Ticket, result: ProbeResult) {
    if let Some(client) = client.upgrade() {
        client.lock().probe_done(Instant::now(), ticket, result);
    }
}

/// The async upkeep over `transport` (see the [module docs](self)).
async fn upkeep_async<T: Transport>(transport: Arc<T>, client: Weak<ClientState>) {
    while let Some(step) = next_step(&client) {
        match step {
            Err(until) => T::sleep_until(until).await,
            Ok(job) => {
                let (request, deadline, ticket) = (job.request, job.deadline, job.ticket);
                let timeout = deadline.saturating_duration_since(Instant::now());
                let send = Box::pin(transport.send(request, Some(timeout)));
                let timer = Box::pin(T::sleep_until(deadline));
                let result = match select(send, timer).await {
                    // The head is all a probe needs; the response is dropped (closed).
                    Either::Left((Ok((head, _response)), _)) => ProbeResult::answered(&head),
                    Either::Left((Err(f), _)) => ProbeResult::Failed(f.kind),
                    Either::Right(_) => ProbeResult::TimedOut,
                };
                report(&client, ticket, result);
            }
        }
    }
}

/// The blocking upkeep over `transport` (see the [module docs](self)).
fn upkeep_blocking<T: BlockingTransport>(transport: Arc<T>, client: Weak<ClientState>) {
    while let Some(step) = next_step(&client) {
        match step {
            Err(until) => std::thread::sleep(until.saturating_duration_since(Instant::now())),
            Ok(job) => {
                let (request, deadline, ticket) = (job.request, job.deadline, job.ticket);
                let timeout = deadline.saturating_duration_since(Instant::now());
                let result = match transport.send(request, Some(deadline), Some(timeout)) {
                    Completion::Ok((head, _response)) => ProbeResult::answered(&head),
                    Completion::Failed(f) => ProbeResult::Failed(f.kind),
                    Completion::TimedOut => ProbeResult::TimedOut,
                };
                report(&client, ticket, result);
            }
        }
    }
}

/// The endpoint list's methods, the same in both modes: the decisions are the client state's.
macro_rules! endpoint_methods {
    () => {
        fn set_endpoints(
            &self,
            endpoints: Vec<EndpointConfig>,
        ) -> Result<EndpointsUpdate, VllmError> {
            self.client.set_endpoints(endpoints)
        }

        fn discover(&self, discovery: DnsDiscovery) -> Result<(), VllmError> {
            self.client.discover(discovery)
        }
    };
}

impl<T: Transport> ManageEndpoints for AsyncExec<T> {
    type Upkeep = UpkeepFuture;

    endpoint_methods!();

    fn upkeep(&self) -> UpkeepFuture {
        Box::pin(upkeep_async(
            self.transport.clone(),
            Arc::downgrade(&self.client),
        ))
    }
}

impl<T: BlockingTransport> ManageEndpoints for BlockingExec<T> {
    type Upkeep = UpkeepFn;

    endpoint_methods!();

    fn upkeep(&self) -> UpkeepFn {
        let transport = self.transport.clone();
        let client = Arc::downgrade(&self.client);
        Box::new(move || upkeep_blocking(transport, client))
    }
}
