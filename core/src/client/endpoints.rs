//! Endpoints at run time: [`Client::set_endpoints`] replaces the list (new endpoints in slow
//! start, removed ones drained), [`Client::discover`] follows a DNS name (a Kubernetes headless
//! service), and [`Client::upkeep`] keeps probing ejected endpoints and re-resolving the name
//! while no call flows. Every decision is the core's ([`crate::pool`]); an adapter only resolves
//! names and sends the probes.

use super::{Client, Execute};
use crate::error::VllmError;
use crate::pool::{DnsDiscovery, EndpointConfig, EndpointsUpdate};

/// What an executor offers for endpoints that come and go. Users never call this trait; the
/// three adapters' executors implement it (through the runner), and [`Client`] has the methods.
pub trait ManageEndpoints: Execute {
    /// What [`upkeep`](Self::upkeep) returns: a future to spawn (async adapters) or a function
    /// to run on a thread of its own (blocking).
    type Upkeep: Send + 'static;

    /// Replaces the endpoint list (see [`Client::set_endpoints`]).
    fn set_endpoints(&self, endpoints: Vec<EndpointConfig>) -> Result<EndpointsUpdate, VllmError>;
    /// Follows a DNS name (see [`Client::discover`]).
    fn discover(&self, discovery: DnsDiscovery) -> Result<(), VllmError>;
    /// The background upkeep (see [`Client::upkeep`]).
    fn upkeep(&self) -> Self::Upkeep;
}

impl<E: ManageEndpoints> Client<E> {
    /// Replaces the endpoint list at run time, e.g. when an autoscaler adds or removes vLLM
    /// replicas. Endpoints are matched by URL:
    /// - in both lists: kept, with their health, latency estimate and limit (their weight, key
    ///   and headers are updated);
    /// - new: added in slow start (their share ramps up over the routing's slow-start window,
    ///   in routing and in their adaptive limit), each with the next unused id;
    /// - gone: drained — their calls in flight finish, no new call goes there, and they leave
    ///   [`endpoints()`](Client::endpoints) when their last call ends.
    ///
    /// The client-wide concurrency limit and the calls waiting for a slot follow at once. An
    /// empty list, or an endpoint whose URL, key or header cannot be sent, changes nothing
    /// and is an error. Calls of clients derived from this one (`with_options`, …) share the
    /// list.
    ///
    /// ```no_run
    /// # fn run(client: vllm_client_core::client::Client<impl vllm_client_core::client::ManageEndpoints>) -> Result<(), vllm_client_core::VllmError> {
    /// let update = client.set_endpoints(["http://10.0.0.1:8000/v1", "http://10.0.0.4:8000/v1"])?;
    /// println!("added {:?}, draining {:?}", update.added, update.draining);
    /// # Ok(()) }
    /// ```
    pub fn set_endpoints<I>(&self, endpoints: I) -> Result<EndpointsUpdate, VllmError>
    where
        I: IntoIterator,
        I::Item: Into<EndpointConfig>,
    {
        let list = endpoints.into_iter().map(Into::into).collect();
        self.executor().set_endpoints(list)
    }

    /// Follows a DNS name from now on: its addresses are resolved at once, then every
    /// `discovery.every` (10 s by default), and each time the set of addresses changes the
    /// endpoint list becomes one endpoint per address (as [`set_endpoints`](Self::set_endpoints)
    /// does: new ones in slow start, gone ones drained). A failed or empty resolution keeps
    /// the list. Resolution happens in the background (the system resolver, on a thread of its
    /// own), when a call starts or from the [`upkeep`](Self::upkeep); calls made before the
    /// first one completes use the endpoints the client was built with.
    ///
    /// For a Kubernetes headless service, build the client with the service's URL and
    /// discover it:
    ///
    /// ```no_run
    /// # fn run(client: vllm_client_core::client::Client<impl vllm_client_core::client::ManageEndpoints>) -> Result<(), vllm_client_core::VllmError> {
    /// use vllm_client_core::pool::DnsDiscovery;
    ///
    /// client.discover(DnsDiscovery::new("http://vllm.default.svc.cluster.local:8000/v1"))?;
    /// # Ok(()) }
    /// ```
    pub fn discover(&self, discovery: DnsDiscovery) -> Result<(), VllmError> {
        self.executor().discover(discovery)
    }

    /// The pool's background upkeep, for clients whose calls may pause: it sends the health
    /// probes of ejected endpoints when they are due and re-resolves a discovered name on time,
    /// so the pool is current when calls resume. Calls do both themselves while they flow, so
    /// this is optional. Async clients get a future to spawn
    /// (`tokio::spawn(client.upkeep())`); the blocking client a function to run on a thread
    /// (`std::thread::spawn(client.upkeep())`). It ends once the client and all its clones are
    /// dropped.
    pub fn upkeep(&self) -> E::Upkeep {
        self.executor().upkeep()
    }
}
