//! [`CallOptions`]: what one request may change about the client's policy — its timeouts,
//! retries and deadline, and headers of its own — without leaving the client's shared state.

use std::fmt;
use std::time::{Duration, Instant};

use http::HeaderMap;

use crate::config::PolicyConfig;
use crate::request::header_pair;

/// Options of one request, set with `.options(…)` (or the shortcuts `.timeout(…)`,
/// `.max_retries(…)`, `.header(…)`) on any request builder, or for every call of a derived
/// client with [`Client::with_options`](super::Client::with_options).
///
/// They change only this call: its timers, its retry count and its headers. The client's
/// shared state — the retry budget, the circuit breaker, the rate and concurrency limits, the
/// endpoints and their health, the connection pool — is the same one every other call uses,
/// so a request with a longer timeout still counts against the breaker and waits for a
/// concurrency slot like the others. Unset options keep the client's value.
///
/// ```
/// use std::time::Duration;
/// use vllm_client_core::client::CallOptions;
///
/// let options = CallOptions::new()
///     .timeout(Duration::from_secs(30))
///     .first_token_timeout(Duration::from_secs(5))
///     .max_retries(0)
///     .idempotency_key("order-42")
///     .header("x-tenant", "acme");
/// assert_eq!(options.max_retries, Some(0));
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// The timeout of each attempt (the client's `timeout`).
    pub timeout: Option<Duration>,
    /// The time to a stream's first data event (the client's `first_token_timeout`).
    pub first_token_timeout: Option<Duration>,
    /// The time between data events (the client's `idle_timeout`).
    pub idle_timeout: Option<Duration>,
    /// One deadline over all attempts and sleeps of this call, counted from its start (the
    /// client's `total_timeout`).
    pub total_timeout: Option<Duration>,
    /// A deadline at an instant: the call ends with [`VllmError::Timeout`](crate::VllmError)
    /// by then, whatever its other timers say (with `total_timeout` too, the earlier wins).
    pub deadline: Option<Instant>,
    /// Retries after the first attempt (the client's `max_retries`; 0 turns them off).
    pub max_retries: Option<u32>,
    /// Headers of this request, sent after the client's (replacing those of the same name).
    pub headers: HeaderMap,
    /// Set when a header given could not be used: the call then fails with
    /// [`VllmError::InvalidRequest`](crate::VllmError::InvalidRequest) naming it.
    pub(crate) invalid: Option<String>,
}

impl fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be secrets: only their names are shown.
        f.debug_struct("CallOptions")
            .field("timeout", &self.timeout)
            .field("first_token_timeout", &self.first_token_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("deadline", &self.deadline)
            .field("max_retries", &self.max_retries)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The header carrying an idempotency key (OpenAI's and Stripe's name).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header carrying a request id (vLLM uses it as the request's id, and echoes it with
/// `--enable-request-id-headers`).
pub const REQUEST_ID: &str = "x-request-id";

impl CallOptions {
    /// No option set: the client's policy as it is.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.timeout.is_none()
            && self.first_token_timeout.is_none()
            && self.idle_timeout.is_none()
            && self.total_timeout.is_none()
            && self.deadline.is_none()
            && self.max_retries.is_none()
            && self.headers.is_empty()
            && self.invalid.is_none()
    }

    /// The timeout of each attempt.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// The time from sending a stream request to its first data event.
    pub fn first_token_timeout(mut self, d: Duration) -> Self {
        self.first_token_timeout = Some(d);
        self
    }

    /// The time between data events.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }

    /// One deadline over all attempts and sleeps, from the call's start.
    pub fn total_timeout(mut self, d: Duration) -> Self {
        self.total_timeout = Some(d);
        self
    }

    /// A deadline at an instant (e.g. the one of the request your server is answering).
    pub fn deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(at);
        self
    }

    /// Retries after the first attempt (0: none).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// A header of this request (visible ASCII only; anything else makes the call fail with
    /// [`VllmError::InvalidRequest`](crate::VllmError::InvalidRequest) naming the header,
    /// never its value). Replaces a client header of the same name.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match header_pair(name, value) {
            Ok((n, v)) => {
                self.headers.append(n, v);
            }
            Err(e) => self.invalid = Some(e.to_string()),
        }
        self
    }

    /// `Idempotency-Key: key`. The request is built once, so every retry of the call sends
    /// the same key: a gateway that deduplicates by it answers a retried request once.
    pub fn idempotency_key(self, key: &str) -> Self {
        self.set(IDEMPOTENCY_KEY, key)
    }

    /// `X-Request-Id: id`: vLLM takes it as the request's id (in its logs, and echoed with
    /// `--enable-request-id-headers`), and gateways log it.
    pub fn request_id(self, id: &str) -> Self {
        self.set(REQUEST_ID, id)
    }

    fn set(mut self, name: &str, value: &str) -> Self {
        match header_pair(name, value) {
            Ok((n, v)) => {
                self.headers.insert(n, v);
            }
            Err(e) => self.invalid = Some(e.to_string()),
        }
        self
    }

    /// These options, then `other`'s over them (its headers replace these of the same name).
    pub fn merged(mut self, other: &CallOptions) -> CallOptions {
        self.timeout = other.timeout.or(self.timeout);
        self.first_token_timeout = other.first_token_timeout.or(self.first_token_timeout);
        self.idle_timeout = other.idle_timeout.or(self.idle_timeout);
        self.total_timeout = other.total_timeout.or(self.total_timeout);
        self.deadline = match (self.deadline, other.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_retries = other.max_retries.or(self.max_retries);
        for name in other.headers.keys() {
            self.headers.remove(name);
        }
        for (name, value) in &other.headers {
            self.headers.append(name.clone(), value.clone());
        }
        if other.invalid.is_some() {
            self.invalid.clone_from(&other.invalid);
        }
        self
    }

    /// Why the options cannot be used (a bad header), if so.
    pub fn invalid(&self) -> Option<&str> {
        self.invalid.as_deref()
    }
}

impl PolicyConfig {
    /// This policy with one call's `options` applied, for a call starting at `now`: its
    /// timers and retry count replaced where set; a `deadline` becomes the overall deadline
    /// (the earlier of it and `total_timeout`; an instant already past gives a call that
    /// ends with a timeout at once). Everything shared — budget, breaker, limits, pool — is
    /// untouched.
    pub fn with_options(&self, options: &super::CallOptions, now: Instant) -> PolicyConfig {
        let mut policy = self.clone();
        if options.is_empty() {
            return policy;
        }
        let t = &mut policy.timeouts;
        if let Some(d) = options.timeout {
            t.attempt = Some(d);
        }
        if let Some(d) = options.first_token_timeout {
            t.first_token = Some(d);
        }
        if let Some(d) = options.idle_timeout {
            t.idle = Some(d);
        }
        if let Some(d) = options.total_timeout {
            t.total = Some(d);
        }
        if let Some(at) = options.deadline {
            let left = at.saturating_duration_since(now);
            t.total = Some(t.total.map_or(left, |d| d.min(left)));
        }
        if let Some(n) = options.max_retries {
            policy.retry.max_retries = n;
        }
        policy
    }
}

/// The per-request option setters every request builder has (it keeps a field
/// `options: CallOptions`).
macro_rules! option_setters {
    () => {
        /// Options of this request alone: timeouts, retries, deadline, headers (see
        /// [`CallOptions`](crate::client::CallOptions)); merged over the client's.
        pub fn options(mut self, options: crate::client::CallOptions) -> Self {
            self.options = std::mem::take(&mut self.options).merged(&options);
            self
        }

        /// The timeout of each attempt of this request.
        pub fn timeout(mut self, d: std::time::Duration) -> Self {
            self.options.timeout = Some(d);
            self
        }

        /// Retries of this request after its first attempt (0: none).
        pub fn max_retries(mut self, n: u32) -> Self {
            self.options.max_retries = Some(n);
            self
        }

        /// A header of this request (replacing a client header of the same name).
        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.options = std::mem::take(&mut self.options).header(name, value);
            self
        }

        /// `Idempotency-Key` for this request: the same on every retry.
        pub fn idempotency_key(mut self, key: &str) -> Self {
            self.options = std::mem::take(&mut self.options).idempotency_key(key);
            self
        }
    };
}
pub(crate) use option_setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_replace_only_what_they_set() {
        let base = PolicyConfig::default();
        let now = Instant::now();
        let same = base.with_options(&CallOptions::new(), now);
        assert_eq!(same.timeouts, base.timeouts);
        assert_eq!(same.retry.max_retries, base.retry.max_retries);

        let o = CallOptions::new()
            .timeout(Duration::from_secs(3))
            .first_token_timeout(Duration::from_secs(1))
            .max_retries(0);
        let p = base.with_options(&o, now);
        assert_eq!(p.timeouts.attempt, Some(Duration::from_secs(3)));
        assert_eq!(p.timeouts.first_token, Some(Duration::from_secs(1)));
        assert_eq!(p.timeouts.idle, base.timeouts.idle);
        assert_eq!(p.retry.max_retries, 0);
        assert_eq!(p.budget, base.budget);
    }

    #[test]
    fn a_deadline_becomes_the_overall_deadline() {
        let base = PolicyConfig::default();
        let now = Instant::now();
        let o = CallOptions::new().deadline(now + Duration::from_secs(5));
        let p = base.with_options(&o, now);
        assert_eq!(p.timeouts.total, Some(Duration::from_secs(5)));
        // The earlier of total_timeout and the deadline.
        let o = o.total_timeout(Duration::from_secs(2));
        assert_eq!(
            base.with_options(&o, now).timeouts.total,
            Some(Duration::from_secs(2))
        );
        // Already past: a zero budget, the call times out at once.
        let o = CallOptions::new().deadline(now);
        assert_eq!(
            base.with_options(&o, now + Duration::from_secs(1))
                .timeouts
                .total,
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn headers_and_secrets() {
        let o = CallOptions::new()
            .idempotency_key("k-1")
            .request_id("r-1")
            .header("x-api-key", "sk-secret");
        assert_eq!(o.headers[IDEMPOTENCY_KEY], "k-1");
        assert_eq!(o.headers[REQUEST_ID], "r-1");
        assert!(!format!("{o:?}").contains("sk-secret"));
        let bad = CallOptions::new().header("x-bad", "é");
        assert!(bad.invalid().unwrap().contains("x-bad"));
        assert!(!bad.invalid().unwrap().contains('é'));
    }

    #[test]
    fn merged_options_take_the_later() {
        let a = CallOptions::new()
            .timeout(Duration::from_secs(1))
            .header("x-a", "1")
            .header("x-b", "1");
        let b = CallOptions::new().max_retries(5).header("x-b", "2");
        let m = a.merged(&b);
        assert_eq!(m.timeout, Some(Duration::from_secs(1)));
        assert_eq!(m.max_retries, Some(5));
        assert_eq!(m.headers["x-a"], "1");
        assert_eq!(m.headers.get_all("x-b").iter().count(), 1);
        assert_eq!(m.headers["x-b"], "2");
    }
}
