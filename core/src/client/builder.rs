//! [`ClientBuilder`]: every knob of a client, with its default.

use std::marker::PhantomData;
use std::time::Duration;

use http::HeaderMap;

use super::{Client, Execute};
use crate::config::{BreakerScope, ClientConfig, Concurrency, RateLimit};
use crate::policy::{Backoff, BreakerConfig, Jitter, RetryBudgetConfig};
use crate::request::{header_pair, ApiKey};

/// Builds a [`Client`]. `build()` never fails: a bad base URL or header is reported by the
/// first request, as a clear [`VllmError::InvalidRequest`](crate::VllmError::InvalidRequest).
///
/// | knob | default | what it does |
/// |---|---|---|
/// | [`base_url`](Self::base_url) | `http://localhost:8000/v1` | where the server is |
/// | [`api_key`](Self::api_key) | none | `Authorization: Bearer` |
/// | [`timeout_secs`](Self::timeout_secs) / [`timeout`](Self::timeout) | 600 s | one whole attempt, body included |
/// | [`connect_timeout`](Self::connect_timeout) | 10 s | establishing the connection |
/// | [`first_token_timeout`](Self::first_token_timeout) | off | from sending a stream request to its first data event (response head included); before that event it is the only per-event timer: idle does not run |
/// | [`retry_first_token_timeout`](Self::retry_first_token_timeout) | false | whether a first-token timeout is retried against the same server (a retry would queue again at the back) |
/// | [`idle_timeout`](Self::idle_timeout) | 60 s | between data events of a stream, from its first data event on (keep-alive comments do not count), and between body chunks of a JSON answer; never while a stream waits for its first token |
/// | [`total_timeout`](Self::total_timeout) | off | one deadline over all attempts and sleeps |
/// | [`max_retries`](Self::max_retries) | 2 | retries after the first attempt |
/// | [`backoff`](Self::backoff) | 500 ms · 2ⁿ up to 8 s, full jitter | sleep between attempts |
/// | [`max_retry_after`](Self::max_retry_after) | 60 s | the longest server hint honoured; a longer one ends the call at once with the hint in the error |
/// | [`retry_budget`](Self::retry_budget) | 500 tokens, 5 per retry, 10 per timeout retry, +1 per success | stops retry storms; first attempts never wait on it |
/// | [`circuit_breaker`](Self::circuit_breaker) | off | fail fast while the server is failing |
/// | [`rate_limit`](Self::rate_limit) | off | client-side requests per period (GCRA) |
/// | [`rate_limit_tokens`](Self::rate_limit_tokens) | off | client-side tokens per minute: an estimate charged before each call, corrected by the reported usage |
/// | [`max_concurrency`](Self::max_concurrency) | off | calls in flight, admitted first come, first served; a stream holds its slot until it ends. An integer is a fixed limit; [`Concurrency::Auto`] adapts it to the server from time to first token (min 1, max 1000, initial 20 with [`Concurrency::auto`]) |
/// | [`seed`](Self::seed) | from the OS | jitter seed, for replayable runs |
/// | [`endpoints`](Self::endpoints) | one: `base_url` | several servers, routed by load, ejected on failure |
/// | [`ejection`](Self::ejection) | 5 server failures (3 connect failures) in a row; 30 s × times ejected, ≤ 300 s; ≤ 10 % of endpoints | outlier ejection |
/// | [`routing`](Self::routing) | affinity bound 8, latency decay 10 s | power of two choices, session affinity |
/// | [`hedge`](Self::hedge) | off (when on: p95 of recent first tokens, ≤ 5 % extra) | a second attempt when a stream's first token is late |
/// | [`resume_streams`](Self::resume_streams) | background responses | a Responses stream cut after its first event resumes where it stopped (`GET /v1/responses/{id}?stream=true&starting_after=N`) instead of failing; counts as a retry |
/// | [`provider_name`](Self::provider_name) | `"vllm"` | `gen_ai.provider.name` in spans and metrics |
/// | [`from_env`](Self::from_env) | — | base URL and key from `VLLM_BASE_URL` / `VLLM_API_KEY` (else `OPENAI_*`) |
#[must_use]
pub struct ClientBuilder<E: Execute> {
    config: ClientConfig,
    http: Option<E::HttpClient>,
    header_error: Option<String>,
    _exec: PhantomData<fn() -> E>,
}

impl<E: Execute> Default for ClientBuilder<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Execute> ClientBuilder<E> {
    /// A builder with every default.
    pub fn new() -> Self {
        ClientBuilder {
            config: ClientConfig::default(),
            http: None,
            header_error: None,
            _exec: PhantomData,
        }
    }

    /// Starts from a whole configuration.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// Several servers instead of one: URLs (`"http://10.0.0.1:8000/v1"`) or
    /// [`EndpointConfig`](crate::pool::EndpointConfig)s with a weight, a key or headers of
    /// their own. Each attempt goes to the endpoint with the lowest (in flight + 1) × latency
    /// of two drawn at random; failing endpoints are ejected and probed back; a retry before
    /// the first token fails over to an endpoint the call has not tried. Replaces
    /// [`base_url`](Self::base_url). See [`crate::pool`].
    pub fn endpoints<I>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<crate::pool::EndpointConfig>,
    {
        self.config.request.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Outlier ejection across [`endpoints`](Self::endpoints): when an endpoint leaves
    /// rotation and for how long.
    pub fn ejection(mut self, ejection: crate::policy::EjectionConfig) -> Self {
        self.config.policy.pool.ejection = ejection;
        self
    }

    /// Routing across [`endpoints`](Self::endpoints): the affinity bound, the latency
    /// estimate's decay, session keys derived from the conversation prefix.
    pub fn routing(mut self, routing: crate::policy::RoutingConfig) -> Self {
        self.config.policy.pool.routing = routing;
        self
    }

    /// Hedge a stream's first token across [`endpoints`](Self::endpoints) (default off): when
    /// it has not arrived after the delay (fixed, or the p95 of recent first-token times), a
    /// second attempt starts on another healthy endpoint; the first to produce output wins and
    /// the other is cancelled before any of its events is seen. At most `max_extra_percent`
    /// hedges per 100 calls (default 5), each charged to the retry budget.
    pub fn hedge(mut self, hedge: crate::policy::HedgeConfig) -> Self {
        self.config.policy.pool.hedge = Some(hedge);
        self
    }

    /// Derive each chat's session key from its conversation prefix (the messages up to and
    /// including the first user message), so that the turns of one conversation go to one
    /// replica and reuse its prefix cache (default off).
    pub fn session_affinity_from_prefix(mut self, on: bool) -> Self {
        self.config.policy.pool.routing.affinity_from_prefix = on;
        self
    }

    /// Which Responses streams are resumed after a cut instead of failed (default
    /// [`ResumeStreams::Background`](crate::policy::ResumeStreams::Background): the requests
    /// with `"background": true`, whose events vLLM and OpenAI keep). A stream cut after its
    /// first event (connection lost, idle or attempt timeout, body ended early) continues from
    /// the last `sequence_number` handed out, on the same server — no event lost, none twice.
    /// Each resume is a retry: it needs the retry budget and a breaker permit, and stays within
    /// [`max_retries`](Self::max_retries) and the deadline; when the server cannot resume, the
    /// stream ends with the error that cut it.
    pub fn resume_streams(mut self, resume: crate::policy::ResumeStreams) -> Self {
        self.config.policy.resume = resume;
        self
    }

    /// Continue a chat stream cut after its text started, on another server, instead of
    /// ending it with the error (default: off). The server that died, restarted or timed out
    /// mid-answer took the generation with it; the client sends the conversation again with the
    /// text you already received as the start of the assistant's message (vLLM's
    /// `"continue_final_message": true`, `"add_generation_prompt": false`), `max_tokens` less
    /// the chunks received, and hands you only the new text: nothing lost, nothing twice.
    ///
    /// Only plain text is continued: a stream that handed out reasoning, a tool call, several
    /// choices or a finish reason, or whose request asks for log probabilities, a response
    /// format or guided decoding, or continues a message itself, ends with the error as
    /// before. The continuation is a new sample from the cut onwards (with `temperature` 0 the
    /// same text); its usage counts the continuation's request alone. Each continuation is a
    /// retry: it needs the retry budget and a breaker permit, and stays within
    /// [`max_retries`](Self::max_retries) and the deadline. The client keeps a copy of the text
    /// handed out for as long as such a stream is open. A server other than vLLM that does not
    /// know `continue_final_message` may answer with a new message instead: turn this on for
    /// vLLM fleets.
    pub fn continue_cut_chats(mut self, on: bool) -> Self {
        self.config.policy.continue_chats = on;
        self
    }

    /// The server's base URL, e.g. `http://localhost:8000/v1`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.request.base_url = url.into();
        self
    }

    /// The API key (`--api-key` of vLLM, a gateway's key). Never printed.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.request.api_key = Some(ApiKey::new(key));
        self
    }

    /// The timeout of one whole attempt, in seconds.
    pub fn timeout_secs(self, secs: u64) -> Self {
        self.timeout(Duration::from_secs(secs))
    }

    /// The timeout of one whole attempt.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.config.policy.timeouts.attempt = Some(d);
        self
    }

    /// The connect timeout.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.policy.timeouts.connect = Some(d);
        self
    }

    /// The time allowed from sending a stream request to its first data event (response head
    /// included). Until that event this is the only per-event timer (the idle timer starts
    /// with the first data event), beside the attempt timer and the overall deadline.
    pub fn first_token_timeout(mut self, d: Duration) -> Self {
        self.config.policy.timeouts.first_token = Some(d);
        self
    }

    /// Whether a first-token timeout is retried against the same server (default `false`).
    ///
    /// A vLLM server that is slow to start a stream is queueing it; a retry throws away its
    /// place in the queue (and any prefill done) and queues again at the back, so it waits
    /// longer than the first attempt would have. By default the call ends with
    /// [`VllmError::Timeout`](crate::VllmError::Timeout) and its report says
    /// [`GiveUpReason::FirstTokenTimeout`](crate::policy::GiveUpReason::FirstTokenTimeout).
    /// Turn it on for servers that drop requests instead of queueing them.
    pub fn retry_first_token_timeout(mut self, retry: bool) -> Self {
        self.config.policy.retry.retry_first_token_timeout = retry;
        self
    }

    /// The time allowed between data events of a stream (from its first data event on) and
    /// between body chunks of a JSON answer.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.config.policy.timeouts.idle = Some(d);
        self
    }

    /// One deadline over all attempts and sleeps of a call.
    pub fn total_timeout(mut self, d: Duration) -> Self {
        self.config.policy.timeouts.total = Some(d);
        self
    }

    /// How many times a failed attempt is retried (0 turns retries off).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.policy.retry.max_retries = n;
        self
    }

    /// The backoff between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.policy.retry.backoff = backoff;
        self
    }

    /// Shorthand for an exponential backoff from `initial` to `max` with `jitter`.
    pub fn exponential_backoff(mut self, initial: Duration, max: Duration, jitter: Jitter) -> Self {
        let b = &mut self.config.policy.retry.backoff;
        b.initial = initial;
        b.max = max;
        b.jitter = jitter;
        self
    }

    /// The longest `Retry-After` / `retry-after-ms` honoured.
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.config.policy.retry.max_retry_after = d;
        self
    }

    /// The retry budget; `None` turns it off.
    pub fn retry_budget(mut self, budget: Option<RetryBudgetConfig>) -> Self {
        self.config.policy.budget = budget;
        self
    }

    /// Turns on a circuit breaker, one for the whole client.
    pub fn circuit_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.config.policy.breaker = Some(breaker);
        self
    }

    /// Whether the breaker is per client (default) or per endpoint.
    pub fn breaker_scope(mut self, scope: BreakerScope) -> Self {
        self.config.policy.breaker_scope = scope;
        self
    }

    /// At most `requests` per `per` on average, in bursts of up to `burst`.
    pub fn rate_limit(mut self, requests: u32, per: Duration, burst: u32) -> Self {
        self.config.policy.rate_limit = Some(RateLimit {
            requests,
            per,
            burst,
        });
        self
    }

    /// At most `per_minute` tokens a minute (prompt and completion together), on top of
    /// [`rate_limit`](Self::rate_limit) (a call goes when both allow it). Each call is charged
    /// an estimate before it is sent — `ceil(prompt characters / 4) + max_tokens` — and the
    /// difference to the `usage` the server reports is charged or refunded when it ends. A
    /// call whose estimate exceeds a minute's worth is refused at once with
    /// `VllmError::RateLimited`. See `vllm_client_core::policy::token_rate`.
    pub fn rate_limit_tokens(mut self, per_minute: u32) -> Self {
        self.config.policy.token_rate_limit = Some(per_minute);
        self
    }

    /// At most `n` calls in flight (a stream holds its slot until it ends or is dropped).
    /// Calls that find no free slot wait in arrival order: a new call never overtakes a
    /// waiting one, and each call that ends admits exactly the one that waited longest.
    ///
    /// `max_concurrency(8)` is a fixed limit; `max_concurrency(Concurrency::auto())` (or
    /// `Concurrency::Auto { min, max, initial }`) lets the limit follow the server: it grows
    /// while streams' time to first token stays within 4× the best seen for their prompt size
    /// and the client uses its limit, and shrinks when it grows beyond that or the server
    /// refuses calls (429, 503, connection refused, first-token timeout). See
    /// [`AdaptiveLimit`](crate::policy::AdaptiveLimit).
    pub fn max_concurrency(mut self, n: impl Into<Concurrency>) -> Self {
        self.config.policy.set_concurrency(Some(n.into()));
        self
    }

    /// The jitter seed, for reproducible timelines.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.policy.seed = Some(seed);
        self
    }

    /// A header sent with every request. Its value must be visible ASCII (spaces and tabs
    /// allowed): other bytes are refused by some HTTP clients, so every request of a client
    /// given one fails with [`VllmError::InvalidRequest`](crate::VllmError::InvalidRequest)
    /// naming the header (never its value).
    pub fn default_header(mut self, name: &str, value: &str) -> Self {
        match header_pair(name, value) {
            Ok((n, v)) => {
                self.config.request.default_headers.append(n, v);
            }
            Err(e) => self.header_error = Some(e.to_string()),
        }
        self
    }

    /// Headers sent with every request.
    pub fn default_headers(mut self, headers: HeaderMap) -> Self {
        self.config.request.default_headers.extend(headers);
        self
    }

    /// `gen_ai.provider.name` in spans and metrics (default `"vllm"`), for a gateway route to
    /// another provider (`"openai"`, `"anthropic"`, …). An endpoint of a pool may name its
    /// own ([`EndpointConfig::provider_name`](crate::pool::EndpointConfig::provider_name)).
    pub fn provider_name(mut self, name: impl Into<String>) -> Self {
        self.config.request.provider_name = Some(name.into());
        self
    }

    /// The `User-Agent`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.config.request.user_agent = ua.into();
        self
    }

    /// Brings your own HTTP client (`reqwest::Client`, `surf::Client`, `ureq::Agent`); its own
    /// timeouts should be longer than the client's, which are enforced on top.
    pub fn http_client(mut self, http: E::HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// Builds the client. Never fails.
    pub fn build(self) -> Client<E> {
        let mut config = self.config;
        if let Some(e) = self.header_error {
            config.request.invalid = Some(e);
        }
        Client::from_exec(E::from_config(config, self.http))
    }
}
