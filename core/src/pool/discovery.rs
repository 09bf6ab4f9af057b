//! DNS discovery: the endpoint list follows a hostname that resolves to one address per
//! replica — a Kubernetes headless service, a Consul name, a round-robin DNS record.
//!
//! The core decides everything but the lookup itself: when a resolution is due
//! ([`Discovery::due`]), and what a resolved address list means for the pool
//! ([`Discovery::resolved`]: the endpoint list to set, or nothing). A transport resolves the
//! name (the runner does it on a thread of its own with the system resolver, as
//! `std::net::ToSocketAddrs` does) and reports the addresses.
//!
//! ```text
//!   due (every `every`, from the first call) ──▶ the runner resolves host:port
//!   resolved(addresses) ── the same set as before ──────────▶ nothing changes
//!                       ── a new set ──▶ one endpoint per address: scheme://ip:port/path,
//!                                        with the template's key, headers, weight
//!                                        ──▶ set_endpoints (new ones in slow start,
//!                                            gone ones drain)
//!                       ── an error, or no address ─────────▶ the list is kept (a DNS hiccup
//!                                        must not empty a pool); retried after `every`
//! ```
//!
//! A lookup that never reports (a resolver thread that hangs) is given up after `every`, so
//! discovery never stops for good.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::error::VllmError;
use crate::policy::clock::saturating_add;
use crate::request::EndpointConfig;

/// What to discover: a URL whose host is resolved (`http://vllm.default.svc.cluster.local:8000/v1`)
/// and how often. Every address found becomes an endpoint with the URL's scheme, port and path,
/// and the template's key, headers and weight.
#[derive(Debug, Clone)]
pub struct DnsDiscovery {
    /// The URL whose host is resolved.
    pub url: String,
    /// How often it is resolved again (default 10 s; at least 100 ms).
    pub every: Duration,
    /// The key, headers and weight each endpoint found gets (its URL is replaced).
    pub template: EndpointConfig,
}

impl DnsDiscovery {
    /// Discovery of `url`'s host every 10 s.
    pub fn new(url: impl Into<String>) -> DnsDiscovery {
        let url = url.into();
        DnsDiscovery {
            template: EndpointConfig::new(url.clone()),
            url,
            every: Duration::from_secs(10),
        }
    }

    /// Resolves again every `every`.
    pub fn every(mut self, every: Duration) -> DnsDiscovery {
        self.every = every;
        self
    }

    /// The key, headers and weight of each endpoint found.
    pub fn template(mut self, template: EndpointConfig) -> DnsDiscovery {
        self.template = template;
        self
    }
}

/// A name to resolve, from [`Discovery::due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The host name.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// The state of DNS discovery (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Discovery {
    scheme: String,
    host: String,
    port: u16,
    path: String,
    every: Duration,
    template: EndpointConfig,
    next: Option<Instant>,
    /// When the lookup in flight started.
    pending: Option<Instant>,
    /// The addresses last set, sorted.
    last: Vec<SocketAddr>,
}

impl Discovery {
    /// Discovery as `config` says, or why its URL cannot be discovered (no host, a scheme
    /// other than http and https).
    pub fn new(config: DnsDiscovery) -> Result<Discovery, VllmError> {
        let uri: http::Uri = config.url.trim().parse().map_err(|e| {
            VllmError::InvalidRequest(format!("cannot discover {:?}: {e}", config.url))
        })?;
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            other => {
                return Err(VllmError::InvalidRequest(format!(
                    "cannot discover a {other}:// URL: http or https only"
                )))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| VllmError::InvalidRequest(format!("no host in {:?}", config.url)))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let path = match uri.path() {
            "" | "/" => "/v1".to_owned(),
            p => p.trim_end_matches('/').to_owned(),
        };
        Ok(Discovery {
            scheme,
            host,
            port: uri.port_u16().unwrap_or(default_port),
            path,
            every: config.every.max(Duration::from_millis(100)),
            template: config.template,
            next: None,
            pending: None,
            last: Vec::new(),
        })
    }

    /// A lookup to make now, when one is due (the first at once); nothing while one is in
    /// flight (unless it was started `every` ago: given up).
    pub fn due(&mut self, now: Instant) -> Option<Lookup> {
        if let Some(started) = self.pending {
            if now.saturating_duration_since(started) < self.every {
                return None;
            }
        }
        if self.next.is_some_and(|n| now < n) {
            return None;
        }
        self.pending = Some(now);
        self.next = Some(saturating_add(now, self.every));
        Some(Lookup {
            host: self.host.clone(),
            port: self.port,
        })
    }

    /// When the next lookup is due (`None`: at once).
    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }

    /// What a lookup found: the endpoint list to set when the set of addresses changed;
    /// `None` when it did not, or when the lookup failed or found nothing (the list is kept).
    pub fn resolved(
        &mut self,
        now: Instant,
        found: Result<Vec<SocketAddr>, String>,
    ) -> Option<Vec<EndpointConfig>> {
        self.pending = None;
        if self.next.is_none() {
            self.next = Some(saturating_add(now, self.every));
        }
        let mut addrs: Vec<SocketAddr> = found.ok()?;
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() || addrs == self.last {
            return None;
        }
        self.last = addrs;
        Some(self.last.iter().map(|a| self.endpoint(a.ip())).collect())
    }

    /// The endpoint of one address.
    fn endpoint(&self, ip: IpAddr) -> EndpointConfig {
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let mut e = self.template.clone();
        e.url = format!("{}://{host}:{}{}", self.scheme, self.port, self.path);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn due_at_once_then_every_period_one_lookup_at_a_time() {
        let t0 = Instant::now();
        let mut d = Discovery::new(
            DnsDiscovery::new("http://vllm.ns.svc:8000/v1").every(Duration::from_secs(10)),
        )
        .unwrap();
        let l = d.due(t0).expect("at once");
        assert_eq!((l.host.as_str(), l.port), ("vllm.ns.svc", 8000));
        assert_eq!(d.due(t0 + Duration::from_secs(3)), None, "one in flight");
        d.resolved(t0 + Duration::from_secs(1), Ok(vec![addr("10.0.0.1:8000")]));
        assert_eq!(d.due(t0 + Duration::from_secs(9)), None);
        assert!(d.due(t0 + Duration::from_secs(10)).is_some());
        // A lookup that never reports is given up after a period.
        assert!(d.due(t0 + Duration::from_secs(19)).is_none());
        assert!(d.due(t0 + Duration::from_secs(20)).is_some());
    }

    #[test]
    fn a_new_set_of_addresses_is_a_new_list_the_same_set_changes_nothing() {
        let t0 = Instant::now();
        let mut d = Discovery::new(
            DnsDiscovery::new("https://llm.internal/v1/")
                .template(EndpointConfig::new("unused").api_key("k").weight(2)),
        )
        .unwrap();
        d.due(t0);
        let list = d
            .resolved(
                t0,
                Ok(vec![
                    addr("10.0.0.2:443"),
                    addr("[fd00::1]:443"),
                    addr("10.0.0.2:443"),
                ]),
            )
            .unwrap();
        let urls: Vec<&str> = list.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(
            urls,
            ["https://10.0.0.2:443/v1", "https://[fd00::1]:443/v1"]
        );
        assert!(list.iter().all(|e| e.weight == 2 && e.api_key.is_some()));
        d.due(t0 + Duration::from_secs(10));
        let same = d.resolved(
            t0 + Duration::from_secs(10),
            Ok(vec![addr("[fd00::1]:443"), addr("10.0.0.2:443")]),
        );
        assert!(same.is_none(), "the same set in another order");
        d.due(t0 + Duration::from_secs(20));
        assert!(
            d.resolved(t0 + Duration::from_secs(20), Ok(vec![]))
                .is_none(),
            "kept"
        );
        d.due(t0 + Duration::from_secs(30));
        let failed = d.resolved(t0 + Duration::from_secs(30), Err("NXDOMAIN".into()));
        assert!(failed.is_none());
        d.due(t0 + Duration::from_secs(40));
        let moved = d
            .resolved(t0 + Duration::from_secs(40), Ok(vec![addr("10.0.0.3:443")]))
            .expect("a new set");
        assert_eq!(moved[0].url, "https://10.0.0.3:443/v1");
    }

    #[test]
    fn urls_it_cannot_discover() {
        assert!(Discovery::new(DnsDiscovery::new("ftp://x/v1")).is_err());
        assert!(Discovery::new(DnsDiscovery::new("/v1")).is_err());
        let d = Discovery::new(DnsDiscovery::new("http://vllm")).unwrap();
        assert_eq!((d.port, d.path.as_str()), (80, "/v1"));
    }
}
