//! The core's [`Observation`]s turned into `tracing` spans and events (structured fields, and a
//! message a person can read) and, with the `metrics` / `opentelemetry` features, into metrics.
//!
//! One span per call, following the OpenTelemetry GenAI conventions: its `otel.name` is
//! `"{gen_ai.operation.name} {gen_ai.request.model}"` ("chat gpt-x"; `tracing` span names are
//! static, so the span's own name is the operation, and `tracing-opentelemetry` exports
//! `otel.name` as the name), `otel.kind = "client"`. One child span `"attempt"` per request
//! sent. Secrets never appear: no request header, URL query or body is recorded.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;
use tracing::field::Empty;
use tracing::Span;
use vllm_client_core::call::observe::{timeout_label, ErrorType, Limiter};
use vllm_client_core::call::{Call, CallMeta, HedgeEvent, Observation, Purpose};
use vllm_client_core::policy::{ChangeCause, Health, LimitChange, Transition};
use vllm_client_core::pool::EndpointChange;
use vllm_client_core::request::Operation;
use vllm_client_core::StreamEvent;

use crate::observability::PROVIDER_NAME;
use crate::sink::{Attrs, Bound, Metric, Sink, Value};

macro_rules! call_span {
    ($name:literal, $meta:expr, $provider:expr) => {
        tracing::info_span!(
            $name,
            otel.name = Empty,
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = $meta.operation,
            gen_ai.provider.name = $provider,
            gen_ai.request.model = $meta.request_model.as_deref(),
            gen_ai.request.max_tokens = $meta.max_tokens,
            gen_ai.request.temperature = $meta.temperature,
            gen_ai.request.top_p = $meta.top_p,
            server.address = $meta.server_address.as_deref(),
            server.port = $meta.server_port,
            gen_ai.response.id = Empty,
            gen_ai.response.model = Empty,
            gen_ai.response.finish_reasons = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            error.type = Empty,
            vllm_client.attempts = Empty,
        )
    };
}

/// The spans of one call and what its metrics need between observations.
pub(crate) struct Telemetry {
    call: Span,
    /// The attempts in flight (two while a hedge races the first), by number. Room for one
    /// inline: a heap buffer for it would be one more allocation an open stream holds.
    attempts: SmallVec<[(u32, Span); 1]>,
    /// When the last data event handed to the caller arrived (for `time_per_output_chunk`,
    /// recorded for each data event after the first).
    last_chunk: Option<Instant>,
    /// `time_per_output_chunk` with this call's attributes, bound at the second data event.
    per_chunk: Option<Bound>,
    /// The client's endpoints' base URLs, for the attempt spans' `server.address`.
    endpoints: Arc<[String]>,
    /// `gen_ai.provider.name`: the client's, or the endpoint's of the latest attempt (the
    /// default, `"vllm"`, borrowed: nothing allocated per call for it).
    provider: Cow<'static, str>,
}

impl Telemetry {
    pub(crate) fn new(meta: &CallMeta, endpoints: Arc<[String]>) -> Telemetry {
        let provider = match meta.provider_for(None) {
            Some(p) => Cow::Owned(p.to_owned()),
            None => Cow::Borrowed(PROVIDER_NAME),
        };
        let p: &str = &provider;
        let call = match meta.operation {
            "chat" => call_span!("chat", meta, p),
            "text_completion" => call_span!("text_completion", meta, p),
            "embeddings" => call_span!("embeddings", meta, p),
            _ => call_span!("vllm_client", meta, p),
        };
        if !call.is_disabled() {
            call.record("otel.name", meta.span_name());
        }
        Telemetry {
            call,
            attempts: SmallVec::new(),
            last_chunk: None,
            per_chunk: None,
            endpoints,
            provider,
        }
    }

    /// The request of an attempt, with the W3C trace context of its span (see
    /// [`trace_context`](crate::trace_context)).
    pub(crate) fn trace_context(&self, request: &mut http::Request<bytes::Bytes>) {
        let span = self.attempts.last().map_or(&self.call, |(_, s)| s);
        crate::trace_context::inject(span, request);
    }

    /// Handles every observation the call queued.
    pub(crate) fn drain(&mut self, call: &mut Call, sink: &Sink) {
        while let Some(o) = call.poll_observation() {
            self.observe(o, call, sink);
        }
    }

    /// A stream event that arrived at `now` (the time the loop handled its chunk at) is
    /// handed to the caller: the time between data events as they arrived, which is what
    /// `time_per_output_chunk` measures — not how fast the caller asks for them.
    pub(crate) fn on_emit(&mut self, ev: &StreamEvent, now: Instant, call: &Call, sink: &Sink) {
        if !Sink::ENABLED {
            return;
        }
        if !ev.is_output() {
            return;
        }
        if let Some(last) = self.last_chunk.replace(now) {
            let bound = self.per_chunk.get_or_insert_with(|| {
                let attrs = common(
                    call.meta(),
                    &self.provider,
                    call.response_info().model.as_deref(),
                );
                sink.bind(Metric::TimePerOutputChunk, &attrs)
            });
            bound.record(secs(now.saturating_duration_since(last)));
        }
    }

    fn observe(&mut self, o: Observation, call: &Call, sink: &Sink) {
        let meta = call.meta();
        let parent = self.attempts.last().map_or(&self.call, |(_, s)| s);
        match o {
            Observation::Waiting { limiter, delay } => {
                let label = limiter.label();
                match delay {
                    Some(d) => {
                        tracing::info!(
                            parent: parent,
                            vllm_client.limiter = label,
                            vllm_client.wait_ms = d.as_millis() as u64,
                            "{}: waiting {} ms",
                            limiter_text(limiter),
                            d.as_millis()
                        );
                        self.metric_wait(meta, limiter, d, sink);
                    }
                    None => tracing::debug!(
                        parent: parent,
                        vllm_client.limiter = label,
                        "waiting for a concurrency slot"
                    ),
                }
            }
            Observation::Admitted { limiter, waited } => {
                tracing::debug!(
                    parent: parent,
                    vllm_client.limiter = limiter.label(),
                    vllm_client.wait_ms = waited.as_millis() as u64,
                    "got a concurrency slot after {} ms",
                    waited.as_millis()
                );
                self.metric_wait(meta, limiter, waited, sink);
            }
            Observation::AttemptStarted {
                attempt,
                endpoint,
                purpose,
            } => {
                // An endpoint with a provider name of its own names the call's provider.
                if let Some(p) = meta.provider_for(Some(endpoint)) {
                    if p != self.provider {
                        self.provider = Cow::Owned(p.to_owned());
                        self.call.record("gen_ai.provider.name", p);
                    }
                }
                // With several endpoints, where this attempt went.
                let (address, port) = self
                    .endpoints
                    .get(endpoint.index())
                    .map_or(("", 0), |url| split_host(url));
                let span = tracing::info_span!(
                    parent: &self.call,
                    "attempt",
                    otel.kind = "client",
                    vllm_client.attempt = attempt,
                    vllm_client.hedge = purpose == Purpose::Hedge,
                    vllm_client.endpoint.index = endpoint.index(),
                    server.address = address,
                    server.port = port,
                    http.response.status_code = Empty,
                    error.type = Empty,
                );
                tracing::debug!(parent: &span, vllm_client.attempt = attempt, "request sent");
                self.attempts.push((attempt, span));
            }
            Observation::Hedge { event } => hedge(event, sink),
            Observation::FirstChunk {
                attempt,
                since_call_start,
                since_attempt_start,
            } => {
                tracing::debug!(
                    parent: parent,
                    vllm_client.attempt = attempt,
                    vllm_client.first_chunk_ms = since_attempt_start.as_millis() as u64,
                    "first data after {} ms",
                    since_attempt_start.as_millis()
                );
                if Sink::ENABLED && call.is_stream() {
                    let attrs = common(meta, &self.provider, call.response_info().model.as_deref());
                    sink.record(Metric::TimeToFirstChunk, secs(since_call_start), &attrs);
                }
            }
            Observation::TimerFired { kind } => {
                let label = timeout_label(kind);
                tracing::info!(
                    parent: parent,
                    vllm_client.timeout.kind = label,
                    "the {label} timer fired"
                );
                if Sink::ENABLED {
                    let mut attrs = basic(meta);
                    attrs.push(("vllm_client.timeout.kind", Value::Str(label.into())));
                    sink.record(Metric::Timeouts, 1.0, &attrs);
                }
            }
            Observation::AttemptEnded {
                attempt,
                status,
                error,
                duration,
            } => {
                let status = status.map(|s| s.as_u16());
                let label = error.map(|e| e.label());
                let i = self.attempts.iter().position(|(n, _)| *n == attempt);
                if let Some((_, span)) = i.map(|i| self.attempts.remove(i)) {
                    span.record("http.response.status_code", status);
                    span.record("error.type", label.as_deref());
                    let why = label
                        .as_ref()
                        .map(|l| format!(" ({l})"))
                        .unwrap_or_default();
                    tracing::debug!(
                        parent: &span,
                        vllm_client.attempt = attempt,
                        http.response.status_code = status,
                        error.type = label.as_deref(),
                        "attempt {attempt} ended after {} ms{why}",
                        duration.as_millis(),
                    );
                }
                if Sink::ENABLED {
                    let mut attrs = basic(meta);
                    let code = status.map(|s| ("http.response.status_code", Value::Int(s.into())));
                    attrs.extend(code);
                    attrs.extend(label.map(|l| ("error.type", Value::Str(l))));
                    sink.record(Metric::Attempts, 1.0, &attrs);
                }
            }
            Observation::Retry {
                attempt,
                cause,
                delay,
                hinted,
            } => {
                let message = call
                    .report()
                    .retries
                    .last()
                    .map(|r| r.cause.clone())
                    .unwrap_or_else(|| cause.to_string());
                tracing::warn!(
                    parent: &self.call,
                    vllm_client.attempt = attempt,
                    error.type = cause.label().as_ref(),
                    error.message = message.as_str(),
                    vllm_client.retry.delay_ms = delay.as_millis() as u64,
                    vllm_client.retry.hinted = hinted,
                    "retrying after attempt {attempt} failed ({message}); waiting {} ms{}",
                    delay.as_millis(),
                    if hinted { " as the server asked" } else { "" }
                );
                if Sink::ENABLED {
                    let mut attrs = basic(meta);
                    attrs.push(("error.type", Value::Str(cause.label())));
                    attrs.push((
                        "vllm_client.retry.hinted",
                        Value::Str(if hinted { "true" } else { "false" }.into()),
                    ));
                    sink.record(Metric::Retries, 1.0, &attrs);
                }
            }
            Observation::Finished {
                error,
                attempts,
                duration,
            } => self.finished(call, error, attempts, duration, sink),
            _ => {}
        }
    }

    fn finished(
        &mut self,
        call: &Call,
        error: Option<ErrorType>,
        attempts: u32,
        duration: Duration,
        sink: &Sink,
    ) {
        self.attempts.clear();
        let info = call.response_info();
        let span = &self.call;
        span.record("vllm_client.attempts", attempts);
        if let Some(id) = &info.id {
            span.record("gen_ai.response.id", id.as_str());
        }
        if let Some(m) = &info.model {
            span.record("gen_ai.response.model", m.as_str());
        }
        if !info.finish_reasons.is_empty() && !span.is_disabled() {
            span.record(
                "gen_ai.response.finish_reasons",
                format!("{:?}", info.finish_reasons).as_str(),
            );
        }
        if let Some(u) = &info.usage {
            span.record("gen_ai.usage.input_tokens", u.prompt_tokens);
            span.record("gen_ai.usage.output_tokens", u.completion_tokens);
        }
        match error {
            Some(e) => {
                span.record("error.type", e.label().as_ref());
                span.record("otel.status_code", "ERROR");
                tracing::info!(
                    parent: span,
                    error.type = e.label().as_ref(),
                    vllm_client.attempts = attempts,
                    "call failed after {} ms and {attempts} attempt(s): {e}",
                    duration.as_millis()
                );
            }
            None => tracing::debug!(
                parent: span,
                vllm_client.attempts = attempts,
                "call finished after {} ms",
                duration.as_millis()
            ),
        }
        if !Sink::ENABLED {
            return;
        }
        let meta = call.meta();
        let mut attrs = common(meta, &self.provider, info.model.as_deref());
        if let Some(e) = error {
            attrs.push(("error.type", Value::Str(e.label())));
        }
        sink.record(Metric::Duration, secs(duration), &attrs);
        if let Some(u) = &info.usage {
            let mut attrs = common(meta, &self.provider, info.model.as_deref());
            attrs.push(("gen_ai.token.type", Value::Str("input".into())));
            sink.record(Metric::TokenUsage, u.prompt_tokens as f64, &attrs);
            if let Some(last) = attrs.last_mut() {
                *last = ("gen_ai.token.type", Value::Str("output".into()));
            }
            sink.record(Metric::TokenUsage, u.completion_tokens as f64, &attrs);
        }
    }

    fn metric_wait(&self, meta: &CallMeta, limiter: Limiter, waited: Duration, sink: &Sink) {
        if Sink::ENABLED {
            let mut attrs = basic(meta);
            attrs.push(("vllm_client.limiter", Value::Str(limiter.label().into())));
            sink.record(Metric::LimiterWait, secs(waited), &attrs);
        }
    }
}

/// Operation, request model, server.
fn basic(meta: &CallMeta) -> Attrs {
    let mut a: Attrs = Vec::with_capacity(8);
    a.push(("gen_ai.operation.name", Value::Str(meta.operation.into())));
    if let Some(m) = &meta.request_model {
        a.push(("gen_ai.request.model", Value::Str(m.clone().into())));
    }
    if let Some(h) = &meta.server_address {
        a.push(("server.address", Value::Str(h.clone().into())));
    }
    if let Some(p) = meta.server_port {
        a.push(("server.port", Value::Int(p.into())));
    }
    a
}

/// The GenAI conventions' attributes.
fn common(meta: &CallMeta, provider: &str, response_model: Option<&str>) -> Attrs {
    let mut a = basic(meta);
    let provider = if provider == PROVIDER_NAME {
        std::borrow::Cow::Borrowed(PROVIDER_NAME)
    } else {
        std::borrow::Cow::Owned(provider.to_owned())
    };
    a.push(("gen_ai.provider.name", Value::Str(provider)));
    if let Some(m) = response_model {
        a.push(("gen_ai.response.model", Value::Str(m.to_owned().into())));
    }
    a
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn limiter_text(l: Limiter) -> &'static str {
    match l {
        Limiter::Concurrency => "concurrency limit",
        Limiter::ClientRate => "client-side rate limit",
        Limiter::TokenRate => "client-side token rate limit",
        Limiter::ServerRate => "the server's rate limit is spent",
        _ => "a limiter",
    }
}

/// A circuit-breaker transition, from the client's shared state.
pub(crate) fn transition(endpoint: Option<Operation>, t: &Transition, sink: &Sink) {
    let scope = match endpoint {
        Some(e) => vllm_client_core::call::observe::operation_name(e),
        None => "client",
    };
    let from = format!("{:?}", t.from);
    let to = format!("{:?}", t.to);
    tracing::warn!(
        vllm_client.breaker.scope = scope,
        vllm_client.breaker.from = from.as_str(),
        vllm_client.breaker.to = to.as_str(),
        "circuit breaker ({scope}): {from} -> {to}"
    );
    if Sink::ENABLED {
        let scope_attr = ("vllm_client.breaker.scope", Value::Str(scope.into()));
        let attrs: Attrs = vec![
            scope_attr.clone(),
            ("vllm_client.breaker.from", Value::Str(from.into())),
            ("vllm_client.breaker.to", Value::Str(to.into())),
        ];
        sink.record(Metric::BreakerTransitions, 1.0, &attrs);
        sink.record(
            Metric::BreakerState,
            f64::from(t.to.level()),
            &vec![scope_attr],
        );
    }
}

/// The concurrency limiter's gauges, after the shared state changed.
pub(crate) fn concurrency(in_flight: Option<u32>, waiting: Option<usize>, sink: &Sink) {
    if Sink::ENABLED {
        if let Some(n) = in_flight {
            sink.record(Metric::InFlight, f64::from(n), &Vec::new());
        }
        if let Some(n) = waiting {
            sink.record(Metric::Waiting, n as f64, &Vec::new());
        }
    }
}

/// An endpoint of a pool changed health (ejected, probed, readmitted).
pub(crate) fn endpoint_change(c: &EndpointChange, sink: &Sink) {
    let (address, port) = split_host(&c.url);
    match (c.change.to, c.change.reason) {
        (Health::Ejected { until }, reason) => {
            let reason = reason.map(|r| r.to_string()).unwrap_or_default();
            let secs = until
                .saturating_duration_since(std::time::Instant::now())
                .as_secs_f64();
            tracing::warn!(
                server.address = address,
                server.port = port,
                vllm_client.endpoint.index = c.id.index(),
                vllm_client.endpoint.ejected_for_s = secs,
                vllm_client.endpoint.reason = reason.as_str(),
                "endpoint {} ({}) ejected for {secs:.1} s: {reason}",
                c.id.index(),
                c.url
            );
            if Sink::ENABLED {
                let attrs: Attrs = vec![
                    ("server.address", Value::Str(address.to_owned().into())),
                    ("server.port", Value::Int(i64::from(port))),
                    ("vllm_client.endpoint.reason", Value::Str(reason.into())),
                ];
                sink.record(Metric::Ejections, 1.0, &attrs);
            }
        }
        (health, _) => {
            let what = match health {
                Health::Probing => "probed after its ejection",
                _ => "back in rotation",
            };
            tracing::info!(
                server.address = address,
                server.port = port,
                vllm_client.endpoint.index = c.id.index(),
                "endpoint {} ({}) {what}",
                c.id.index(),
                c.url
            )
        }
    }
}

/// A hedged first token: the hedge started, or which attempt won.
fn hedge(event: HedgeEvent, sink: &Sink) {
    let label = event.label();
    match event {
        HedgeEvent::Started => tracing::info!(
            vllm_client.hedge.event = label,
            "the first token is late: hedging with a second attempt on another endpoint"
        ),
        _ => tracing::info!(
            vllm_client.hedge.event = label,
            "hedge: the {} attempt answered first; the other is cancelled",
            if event == HedgeEvent::PrimaryWon {
                "first"
            } else {
                "second"
            }
        ),
    }
    if Sink::ENABLED {
        let attrs: Attrs = vec![("vllm_client.hedge.event", Value::Str(label.into()))];
        sink.record(Metric::Hedges, 1.0, &attrs);
    }
}

/// `host` and `port` of a base URL (the port defaulted by the scheme).
fn split_host(url: &str) -> (&str, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let default = if url.starts_with("https") { 443 } else { 80 };
    // `[v6::addr]:port`, `[v6::addr]`, `host:port`, `host`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => (v6, None),
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    (host, port.and_then(|p| p.parse().ok()).unwrap_or(default))
}

/// The adaptive concurrency limit moved: a loss is worth knowing (`info`), the delay path's
/// and the baseline probes' routine moves are `debug`. The limit is the
/// `vllm_client.concurrency.limit` gauge.
pub(crate) fn limit_change(c: &LimitChange, sink: &Sink) {
    let (from, to) = (c.from, c.to);
    match c.cause {
        ChangeCause::Loss(kind) => {
            let kind = format!("{kind:?}");
            tracing::info!(
                vllm_client.concurrency.from = from,
                vllm_client.concurrency.to = to,
                vllm_client.concurrency.cause = "loss",
                vllm_client.concurrency.loss = kind.as_str(),
                "concurrency limit {from} -> {to} ({kind})"
            );
        }
        ChangeCause::Delay => tracing::debug!(
            vllm_client.concurrency.from = from,
            vllm_client.concurrency.to = to,
            vllm_client.concurrency.cause = "delay",
            vllm_client.concurrency.gradient = c.gradient,
            "concurrency limit {from} -> {to} (time to first token, gradient {:.2})",
            c.gradient
        ),
        ChangeCause::ProbeStart | ChangeCause::ProbeEnd => {
            let cause = if c.cause == ChangeCause::ProbeStart {
                "probe_start"
            } else {
                "probe_end"
            };
            tracing::debug!(
                vllm_client.concurrency.from = from,
                vllm_client.concurrency.to = to,
                vllm_client.concurrency.cause = cause,
                "concurrency limit {from} -> {to} (baseline probe)"
            );
        }
    }
    if Sink::ENABLED {
        sink.record(Metric::Limit, f64::from(to), &Vec::new());
    }
}

#[cfg(test)]
mod split_tests {
    use super::split_host;

    #[test]
    fn hosts_and_ports_of_base_urls() {
        assert_eq!(split_host("http://10.0.0.1:8000/v1"), ("10.0.0.1", 8000));
        assert_eq!(
            split_host("https://gw.example/vllm/v1"),
            ("gw.example", 443)
        );
        assert_eq!(split_host("http://[::1]:9000/v1"), ("::1", 9000));
        assert_eq!(split_host("http://[::1]/v1"), ("::1", 80));
        assert_eq!(split_host("not a url"), ("not a url", 80));
    }
}
