//! Observability, on every adapter (tokio, async-std, blocking) against the testkit's fake
//! server on 127.0.0.1: the metrics recorded through the `metrics` facade (captured by
//! `metrics-util`'s `DebuggingRecorder`) and through OpenTelemetry (captured by the SDK's
//! in-memory exporter), and the `tracing` spans (captured by a layer that records names,
//! fields and parents) of a chat, a stream, a retried call, a failed call and a rate-limited
//! call.
//!
//! Every scenario uses its own model name, so that scenarios running in parallel in one process
//! (with one global recorder) read only their own measurements.

// Shared with the conformance suite; not every helper is used here.
#[allow(dead_code)]
#[path = "conformance/harness.rs"]
mod harness;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use vllm_client_core::client::Client;
use vllm_client_core::StreamEvent;
use vllm_client_runner::observability as names;
use vllm_testkit::server::{FakeServer, Reply};

use harness::Harness;

// --- capture: metrics facade ----------------------------------------------------------------

type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Default)]
struct Measured {
    unit: Option<metrics::Unit>,
    samples: Vec<f64>,
    counter: u64,
}

struct Capture {
    snapshotter: Snapshotter,
    /// Histograms are drained by each snapshot: everything taken is merged here.
    store: Mutex<HashMap<(String, Labels), Measured>>,
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

fn capture() -> &'static Capture {
    static C: OnceLock<Capture> = OnceLock::new();
    C.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder");
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        opentelemetry::global::set_meter_provider(provider.clone());
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(SpanCapture))
            .expect("the only subscriber");
        Capture {
            snapshotter,
            store: Mutex::new(HashMap::new()),
            provider,
            exporter,
        }
    })
}

/// The facade's measurements of `name` whose `gen_ai.request.model` is `model`.
fn facade(name: &str, model: &str) -> Vec<(Labels, Measured)> {
    let c = capture();
    let mut store = c.store.lock().unwrap();
    for (key, unit, _, value) in c.snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let labels: Labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let e = store.entry((key.name().to_owned(), labels)).or_default();
        if unit.is_some() {
            e.unit = unit;
        }
        match (kind, value) {
            (MetricKind::Histogram, DebugValue::Histogram(v)) => {
                e.samples.extend(v.into_iter().map(|f| f.into_inner()))
            }
            // Counters are drained by each snapshot too.
            (MetricKind::Counter, DebugValue::Counter(n)) => e.counter += n,
            // Gauges are reset to 0 by each snapshot: keep every value seen, in order.
            (_, DebugValue::Gauge(g)) => e.samples.push(g.into_inner()),
            _ => {}
        }
    }
    store
        .iter()
        .filter(|((n, l), _)| {
            n == name && l.get("gen_ai.request.model").map(String::as_str) == Some(model)
        })
        .map(|((_, l), m)| (l.clone(), m.clone()))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// --- capture: OpenTelemetry --------------------------------------------------------------------

#[derive(Debug, Clone)]
struct OtelPoint {
    unit: String,
    attrs: BTreeMap<String, String>,
    count: u64,
    sum: f64,
    bounds: Vec<f64>,
}

/// The OpenTelemetry points of `name` whose `gen_ai.request.model` is `model` (cumulative).
fn otel(name: &str, model: &str) -> Vec<OtelPoint> {
    otel_where(name, |a| {
        a.get("gen_ai.request.model").map(String::as_str) == Some(model)
    })
}

/// The OpenTelemetry points of `name` whose attributes pass `keep` (a gauge's value is its
/// `sum`).
fn otel_where(name: &str, keep: impl Fn(&BTreeMap<String, String>) -> bool) -> Vec<OtelPoint> {
    let c = capture();
    c.provider.force_flush().expect("flush");
    let exported = c.exporter.get_finished_metrics().expect("metrics");
    let Some(last) = exported.last() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for scope in last.scope_metrics() {
        for m in scope.metrics().filter(|m| m.name() == name) {
            let attrs = |it: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                it.map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect::<BTreeMap<_, _>>()
            };
            let unit = m.unit().to_owned();
            match m.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        out.push(OtelPoint {
                            unit: unit.clone(),
                            attrs: attrs(&mut p.attributes()),
                            count: p.count(),
                            sum: p.sum(),
                            bounds: p.bounds().collect(),
                        });
                    }
                }
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        out.push(OtelPoint {
                            unit: unit.clone(),
                            attrs: attrs(&mut p.attributes()),
                            count: p.count(),
                            sum: p.sum() as f64,
                            bounds: p.bounds().collect(),
                        });
                    }
                }
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    for p in s.data_points() {
                        out.push(OtelPoint {
                            unit: unit.clone(),
                            attrs: attrs(&mut p.attributes()),
                            count: p.value(),
                            sum: p.value() as f64,
                            bounds: Vec::new(),
                        });
                    }
                }
                AggregatedMetrics::I64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        out.push(OtelPoint {
                            unit: unit.clone(),
                            attrs: attrs(&mut p.attributes()),
                            count: 1,
                            sum: p.value() as f64,
                            bounds: Vec::new(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    out.retain(|p| keep(&p.attrs));
    out
}

// --- capture: tracing --------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct SpanRec {
    name: &'static str,
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
    closed: bool,
}

#[derive(Debug, Clone)]
struct EventRec {
    span: Option<usize>,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Spans {
    spans: Vec<SpanRec>,
    ids: HashMap<u64, usize>,
    events: Vec<EventRec>,
}

fn spans() -> &'static Mutex<Spans> {
    static S: OnceLock<Mutex<Spans>> = OnceLock::new();
    S.get_or_init(Mutex::default)
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

struct SpanCapture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanCapture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent_id = match attrs.parent() {
            Some(p) => Some(p.clone()),
            None if attrs.is_contextual() => ctx.current_span().id().cloned(),
            None => None,
        };
        let mut s = spans().lock().unwrap();
        let parent = parent_id.and_then(|p| s.ids.get(&p.into_u64()).copied());
        let index = s.spans.len();
        s.spans.push(SpanRec {
            name: attrs.metadata().name(),
            parent,
            fields,
            closed: false,
        });
        s.ids.insert(id.into_u64(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut s = spans().lock().unwrap();
        if let Some(&i) = s.ids.get(&id.into_u64()) {
            values.record(&mut Fields(&mut s.spans[i].fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span_id = ctx.event_span(event).map(|s| s.id().into_u64());
        let mut s = spans().lock().unwrap();
        let span = span_id.and_then(|id| s.ids.get(&id).copied());
        s.events.push(EventRec {
            span,
            level: *event.metadata().level(),
            fields,
        });
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut s = spans().lock().unwrap();
        if let Some(i) = s.ids.remove(&id.into_u64()) {
            s.spans[i].closed = true;
        }
    }
}

/// The call span of `model` (exactly one), its attempt spans and the events under them.
fn call_spans(model: &str) -> (SpanRec, Vec<SpanRec>, Vec<EventRec>) {
    let s = spans().lock().unwrap();
    let calls: Vec<usize> = (0..s.spans.len())
        .filter(|&i| {
            s.spans[i].parent.is_none()
                && s.spans[i]
                    .fields
                    .get("gen_ai.request.model")
                    .map(String::as_str)
                    == Some(model)
        })
        .collect();
    assert_eq!(calls.len(), 1, "one call span for {model}: {:?}", s.spans);
    let call = calls[0];
    let attempts: Vec<usize> = (0..s.spans.len())
        .filter(|&i| s.spans[i].parent == Some(call))
        .collect();
    let events = s
        .events
        .iter()
        .filter(|e| e.span.is_some_and(|i| i == call || attempts.contains(&i)))
        .cloned()
        .collect();
    (
        s.spans[call].clone(),
        attempts.iter().map(|&i| s.spans[i].clone()).collect(),
        events,
    )
}

// --- scenarios ---------------------------------------------------------------------------------

fn client<H: Harness>(server: &FakeServer) -> Client<H::E> {
    capture();
    H::builder(&server.base_url()).build()
}

fn port(server: &FakeServer) -> String {
    server.addr().port().to_string()
}

/// The GenAI attributes every measurement of a call to `model` carries.
fn common(model: &str, server: &FakeServer) -> Labels {
    labels(&[
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "vllm"),
        ("gen_ai.request.model", model),
        ("gen_ai.response.model", model),
        ("server.address", "127.0.0.1"),
        ("server.port", &port(server)),
    ])
}

fn chat<H: Harness>(tag: &str) {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let model = format!("obs-{tag}-chat");
    let r = H::wait(
        c.chat
            .completions()
            .create()
            .model(model.as_str())
            .messages(json!([{"role": "user", "content": "hi there"}]))
            .temperature(0.5)
            .max_tokens(64)
            .send(),
    )
    .expect("a chat");
    let usage = r.usage.clone().expect("the fake server reports usage");

    // The conventions' duration histogram: one sample, in seconds, with every attribute.
    let d = facade(names::OPERATION_DURATION, &model);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].0, common(&model, &server));
    assert_eq!(d[0].1.unit, Some(metrics::Unit::Seconds));
    assert_eq!(d[0].1.samples.len(), 1);
    assert!(d[0].1.samples[0] > 0.0 && d[0].1.samples[0] < 20.0);

    // Token usage, by type, with the values the server reported.
    let t = facade(names::TOKEN_USAGE, &model);
    let by_type = |ty: &str| {
        let mut l = common(&model, &server);
        l.insert("gen_ai.token.type".into(), ty.into());
        t.iter()
            .find(|(k, _)| *k == l)
            .map(|(_, m)| m.samples.clone())
            .unwrap_or_default()
    };
    assert_eq!(by_type("input"), vec![usage.prompt_tokens as f64]);
    assert_eq!(by_type("output"), vec![usage.completion_tokens as f64]);
    assert!(facade(names::TIME_TO_FIRST_CHUNK, &model).is_empty());

    // One attempt, answered 200.
    let a = facade(names::ATTEMPTS, &model);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        a[0].0.get("http.response.status_code").map(String::as_str),
        Some("200")
    );
    assert_eq!(a[0].1.counter, 1);

    // OpenTelemetry: the same, with the conventions' explicit buckets.
    let o = otel(names::OPERATION_DURATION, &model);
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!((o[0].unit.as_str(), o[0].count), ("s", 1));
    assert_eq!(o[0].bounds, names::DURATION_BUCKETS.to_vec());
    assert_eq!(o[0].attrs.get("server.port"), Some(&port(&server)));
    assert!(!o[0].attrs.contains_key("error.type"));
    let o = otel(names::TOKEN_USAGE, &model);
    assert_eq!(o.len(), 2, "{o:?}");
    assert!(o
        .iter()
        .all(|p| p.unit == "{token}" && p.bounds == names::TOKEN_BUCKETS.to_vec() && p.count == 1));
    let total: f64 = o.iter().map(|p| p.sum).sum();
    assert_eq!(
        total,
        (usage.prompt_tokens + usage.completion_tokens) as f64
    );

    // Spans: "chat" with the GenAI fields, one attempt child, both closed.
    let (call, attempts, _) = call_spans(&model);
    assert_eq!(call.name, "chat");
    let f = &call.fields;
    assert_eq!(f["otel.name"], format!("chat {model}"));
    assert_eq!(f["otel.kind"], "client");
    assert_eq!(f["gen_ai.operation.name"], "chat");
    assert_eq!(f["gen_ai.provider.name"], "vllm");
    assert_eq!(f["gen_ai.response.model"], model);
    assert_eq!(f["gen_ai.request.temperature"], "0.5");
    assert_eq!(f["gen_ai.request.max_tokens"], "64");
    assert!(
        !f.contains_key("gen_ai.request.top_p"),
        "not set, not recorded"
    );
    assert_eq!(f["server.address"], "127.0.0.1");
    assert_eq!(f["server.port"], port(&server));
    assert_eq!(
        f["gen_ai.usage.input_tokens"],
        usage.prompt_tokens.to_string()
    );
    assert_eq!(
        f["gen_ai.usage.output_tokens"],
        usage.completion_tokens.to_string()
    );
    assert!(
        f["gen_ai.response.finish_reasons"].contains("stop"),
        "{f:?}"
    );
    assert!(!f.contains_key("error.type"));
    assert!(call.closed);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].name, "attempt");
    assert_eq!(attempts[0].fields["http.response.status_code"], "200");
    assert!(attempts[0].closed);
    // No secret: no header or key in any field.
    assert!(!format!("{call:?}{attempts:?}").contains("authorization"));
}

fn stream<H: Harness>(tag: &str) {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let model = format!("obs-{tag}-stream");
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model(model.as_str())
            .messages(json!([{"role": "user", "content": "one two three four"}]))
            .include_usage(true)
            .send_stream(),
    )
    .expect("a stream");
    let events = H::collect(s);
    assert!(
        matches!(events.last(), Some(StreamEvent::Done)),
        "{events:?}"
    );
    let chunks = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Content(_)))
        .count();
    assert!(chunks >= 3, "{events:?}");

    let ttfc = facade(names::TIME_TO_FIRST_CHUNK, &model);
    assert_eq!(ttfc.len(), 1, "{ttfc:?}");
    assert_eq!(ttfc[0].0, common(&model, &server));
    assert_eq!(ttfc[0].1.samples.len(), 1);
    let tpoc = facade(names::TIME_PER_OUTPUT_CHUNK, &model);
    assert_eq!(tpoc.len(), 1, "{tpoc:?}");
    assert_eq!(
        tpoc[0].1.samples.len(),
        chunks - 1,
        "one per chunk after the first"
    );
    assert_eq!(tpoc[0].1.unit, Some(metrics::Unit::Seconds));
    let d = facade(names::OPERATION_DURATION, &model);
    assert_eq!(d.len(), 1);
    assert!(d[0].1.samples[0] >= ttfc[0].1.samples[0]);
    let usage = events.iter().find_map(|e| match e {
        StreamEvent::Usage(u) => Some(u.clone()),
        _ => None,
    });
    let usage = usage.expect("usage was asked for");
    let t = facade(names::TOKEN_USAGE, &model);
    let mut values: Vec<f64> = t.iter().flat_map(|(_, m)| m.samples.clone()).collect();
    values.sort_by(f64::total_cmp);
    let mut want = vec![usage.prompt_tokens as f64, usage.completion_tokens as f64];
    want.sort_by(f64::total_cmp);
    assert_eq!(values, want);

    let o = otel(names::TIME_TO_FIRST_CHUNK, &model);
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].unit.as_str(), o[0].count), ("s", 1));
    assert_eq!(o[0].bounds, names::DURATION_BUCKETS.to_vec());

    let (call, attempts, _) = call_spans(&model);
    assert_eq!(call.name, "chat");
    assert!(call.closed, "the stream ended: its span closed");
    assert_eq!(
        call.fields["gen_ai.response.finish_reasons"],
        format!("{:?}", [finish(&events)])
    );
    assert_eq!(attempts.len(), 1);
}

fn finish(events: &[StreamEvent]) -> String {
    events
        .iter()
        .find_map(|e| match e {
            StreamEvent::Finish { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("a finish reason")
}

fn retried<H: Harness>(tag: &str) {
    let server = FakeServer::start();
    server.push(Reply::vllm_error(503, "overloaded"));
    let c = client::<H>(&server);
    let model = format!("obs-{tag}-retried");
    H::wait(
        c.chat
            .completions()
            .create()
            .model(model.as_str())
            .messages(json!([{"role": "user", "content": "hi"}]))
            .send(),
    )
    .expect("retried");

    let r = facade(names::RETRIES, &model);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0.get("error.type").map(String::as_str), Some("503"));
    assert_eq!(
        r[0].0.get("vllm_client.retry.hinted").map(String::as_str),
        Some("false")
    );
    assert_eq!(r[0].1.counter, 1);
    let mut a: Vec<(Option<String>, Option<String>, u64)> = facade(names::ATTEMPTS, &model)
        .into_iter()
        .map(|(l, m)| {
            (
                l.get("http.response.status_code").cloned(),
                l.get("error.type").cloned(),
                m.counter,
            )
        })
        .collect();
    a.sort();
    assert_eq!(
        a,
        vec![
            (Some("200".into()), None, 1),
            (Some("503".into()), Some("503".into()), 1)
        ]
    );
    let d = facade(names::OPERATION_DURATION, &model);
    assert_eq!(d.len(), 1);
    assert!(!d[0].0.contains_key("error.type"), "the call succeeded");
    let o = otel(names::RETRIES, &model);
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].unit.as_str(), o[0].count), ("{retry}", 1));

    let (call, attempts, events) = call_spans(&model);
    assert_eq!(call.fields["vllm_client.attempts"], "2");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].fields["error.type"], "503");
    assert_eq!(attempts[0].fields["http.response.status_code"], "503");
    assert_eq!(attempts[1].fields["http.response.status_code"], "200");
    let retry = events
        .iter()
        .find(|e| e.fields.contains_key("vllm_client.retry.delay_ms"))
        .expect("a retry event");
    assert_eq!(retry.level, tracing::Level::WARN);
    assert_eq!(retry.fields["error.type"], "503");
    assert_eq!(retry.fields["vllm_client.attempt"], "1");
    assert!(retry.fields["message"].starts_with("retrying after attempt 1 failed"));
}

fn failed<H: Harness>(tag: &str) {
    let server = FakeServer::start();
    server.push(Reply::vllm_error(400, "bad request"));
    let c = client::<H>(&server);
    let model = format!("obs-{tag}-failed");
    let e = H::wait(
        c.chat
            .completions()
            .create()
            .model(model.as_str())
            .messages(json!([{"role": "user", "content": "hi"}]))
            .send(),
    )
    .expect_err("a 400");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));

    let d = facade(names::OPERATION_DURATION, &model);
    assert_eq!(d.len(), 1, "{d:?}");
    let mut want = common(&model, &server);
    want.remove("gen_ai.response.model");
    want.insert("error.type".into(), "400".into());
    assert_eq!(d[0].0, want);
    assert!(facade(names::TOKEN_USAGE, &model).is_empty());
    assert!(facade(names::RETRIES, &model).is_empty());
    let o = otel(names::OPERATION_DURATION, &model);
    assert_eq!(o.len(), 1);
    assert_eq!(
        o[0].attrs.get("error.type").map(String::as_str),
        Some("400")
    );

    let (call, attempts, _) = call_spans(&model);
    assert_eq!(call.fields["error.type"], "400");
    assert_eq!(call.fields["otel.status_code"], "ERROR");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].fields["error.type"], "400");
}

fn rate_limited<H: Harness>(tag: &str) {
    let server = FakeServer::start();
    capture();
    let c = H::builder(&server.base_url())
        .rate_limit(1, Duration::from_millis(300), 1)
        .build();
    let model = format!("obs-{tag}-rate");
    for _ in 0..2 {
        H::wait(
            c.chat
                .completions()
                .create()
                .model(model.as_str())
                .messages(json!([{"role": "user", "content": "hi"}]))
                .send(),
        )
        .expect("paced, not refused");
    }
    let w = facade(names::LIMITER_WAIT, &model);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        w[0].0.get("vllm_client.limiter").map(String::as_str),
        Some("client_rate")
    );
    assert_eq!(w[0].1.samples.len(), 1);
    // The second call waited for the rest of the 300 ms interval (minus the first call's time).
    assert!(w[0].1.samples[0] > 0.0 && w[0].1.samples[0] <= 0.3, "{w:?}");

    // The server's announced quota: spent for 200 ms, so the next call waits for it.
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .header("x-ratelimit-remaining-requests", "0")
            .header("x-ratelimit-reset-requests", "200ms"),
    );
    let c = H::builder(&server.base_url()).build();
    let model = format!("obs-{tag}-server-rate");
    for _ in 0..2 {
        H::wait(
            c.chat
                .completions()
                .create()
                .model(model.as_str())
                .messages(json!([{"role": "user", "content": "hi"}]))
                .send(),
        )
        .expect("paced by the server's quota");
    }
    let w = facade(names::LIMITER_WAIT, &model);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        w[0].0.get("vllm_client.limiter").map(String::as_str),
        Some("server_rate")
    );
    assert!(w[0].1.samples[0] > 0.0 && w[0].1.samples[0] <= 0.2, "{w:?}");
    // An INFO event in the waiting call's span says so.
    let s = spans().lock().unwrap();
    let waited = s.events.iter().any(|e| {
        e.level == tracing::Level::INFO
            && e.fields.get("vllm_client.limiter").map(String::as_str) == Some("server_rate")
            && e.span
                .is_some_and(|i| s.spans[i].fields.get("gen_ai.request.model") == Some(&model))
    });
    assert!(waited, "no server_rate wait event for {model}");
}

/// The facade's measurements of `name` that carry `label = value`.
fn facade_by(name: &str, label: &str, value: &str) -> Vec<(Labels, Measured)> {
    // Merge the latest snapshot into the store (any model).
    let _ = facade(name, "");
    let store = capture().store.lock().unwrap();
    store
        .iter()
        .filter(|((n, l), _)| n == name && l.get(label).map(String::as_str) == Some(value))
        .map(|((_, l), m)| (l.clone(), m.clone()))
        .collect()
}

/// Breaker transitions and the concurrency gauges belong to the client, not to a call: the
/// only scenario with a breaker and a concurrency limit, so its counts are exact. (They are
/// recorded by the runner, the same for every adapter; the blocking one drives it here.)
#[test]
fn breaker_transitions_and_concurrency_gauges() {
    use vllm_client_core::policy::{BreakerConfig, SlidingWindow};
    type H = harness::BlockingH;
    let server = FakeServer::start();
    capture();
    let c = H::builder(&server.base_url())
        .max_retries(0)
        .max_concurrency(3)
        .circuit_breaker(BreakerConfig {
            window: SlidingWindow::Count { size: 4 },
            minimum_calls: 2,
            failure_rate_threshold: 50,
            break_duration: Duration::from_millis(300),
            ..BreakerConfig::default()
        })
        .build();
    let model = "obs-breaker";
    let call = || {
        H::wait(
            c.chat
                .completions()
                .create()
                .model(model)
                .messages(json!([{"role": "user", "content": "hi"}]))
                .send(),
        )
    };
    server.push_n(2, Reply::vllm_error(500, "down"));
    call().expect_err("500");
    call().expect_err("500");
    let e = call().expect_err("open");
    assert!(
        matches!(e, vllm_client_core::VllmError::CircuitOpen { .. }),
        "{e:?}"
    );

    let opened = facade_by(names::BREAKER_TRANSITIONS, "vllm_client.breaker.to", "Open");
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].0["vllm_client.breaker.scope"], "client");
    assert_eq!(opened[0].0["vllm_client.breaker.from"], "Closed");
    assert_eq!(opened[0].1.counter, 1);
    assert_eq!(opened[0].1.unit, Some(metrics::Unit::Count));
    let state = facade_by(names::BREAKER_STATE, "vllm_client.breaker.scope", "client");
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].1.samples.first(), Some(&2.0), "open: {state:?}");
    let o = otel_where(names::BREAKER_STATE, |_| true);
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!((o[0].sum, o[0].unit.as_str()), (2.0, "1"));
    assert_eq!(o[0].attrs["vllm_client.breaker.scope"], "client");
    // The refusal is the call's outcome: `circuit_open`.
    let d = facade(names::OPERATION_DURATION, model);
    assert!(
        d.iter()
            .any(|(l, _)| l.get("error.type").map(String::as_str) == Some("circuit_open")),
        "{d:?}"
    );

    // After the break a probe succeeds: Open -> HalfOpen -> Closed.
    std::thread::sleep(Duration::from_millis(400));
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model(model)
            .messages(json!([{"role": "user", "content": "hi"}]))
            .send_stream(),
    )
    .expect("the probe");
    // While the stream is open it holds one concurrency slot (OpenTelemetry keeps a gauge's
    // last value; the facade's debugging recorder resets it at each snapshot).
    let gauge = |n: &str| {
        otel_where(n, |_| true)
            .iter()
            .map(|p| p.sum)
            .collect::<Vec<_>>()
    };
    assert_eq!(gauge(names::CONCURRENCY_IN_FLIGHT), vec![1.0]);
    assert_eq!(gauge(names::CONCURRENCY_WAITING), vec![0.0]);
    let events = H::collect(s);
    assert!(matches!(events.last(), Some(StreamEvent::Done)));
    let closed = facade_by(
        names::BREAKER_TRANSITIONS,
        "vllm_client.breaker.to",
        "Closed",
    );
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].0["vllm_client.breaker.from"], "HalfOpen");
    assert_eq!(gauge(names::BREAKER_STATE), vec![0.0], "closed again");
    assert_eq!(
        gauge(names::CONCURRENCY_IN_FLIGHT),
        vec![0.0],
        "the slot came back"
    );
    let o = otel_where(names::BREAKER_TRANSITIONS, |_| true);
    assert_eq!(
        o.len(),
        3,
        "Closed->Open, Open->HalfOpen, HalfOpen->Closed: {o:?}"
    );
    assert!(o.iter().all(|p| p.count == 1 && p.unit == "{transition}"));
}

macro_rules! on_every_adapter {
    ($($scenario:ident),* $(,)?) => {
        mod tokio {
            $( #[test] fn $scenario() { crate::$scenario::<crate::harness::TokioH>("tokio") } )*
        }
        mod async_std {
            $( #[test] fn $scenario() { crate::$scenario::<crate::harness::AsyncStdH>("async-std") } )*
        }
        mod blocking {
            $( #[test] fn $scenario() { crate::$scenario::<crate::harness::BlockingH>("blocking") } )*
        }
    };
}

on_every_adapter!(chat, stream, retried, failed, rate_limited);

/// A pool's ejections and hedges are client events: the only scenario with several endpoints,
/// so its counts are exact.
#[test]
fn endpoint_ejections_and_hedges() {
    use vllm_client_core::policy::HedgeConfig;
    type H = harness::TokioH;
    let busy = FakeServer::start();
    let slow = FakeServer::start();
    capture();
    busy.push_n(
        20,
        Reply::vllm_error(503, "busy").header("retry-after", "30"),
    );
    slow.push_n(20, Reply::generate().delay(Duration::from_secs(2)));
    let c = H::builder("http://unused.invalid/v1")
        .endpoints([busy.base_url(), slow.base_url()])
        .build();
    // Routing draws between equals: call until the busy server answered (and was ejected).
    for _ in 0..40 {
        if busy.request_count() > 0 {
            break;
        }
        let _ = H::wait(
            c.chat
                .completions()
                .create()
                .model("obs-pool")
                .messages(json!([{"role": "user", "content": "hi"}]))
                .send(),
        );
    }
    assert_eq!(busy.request_count(), 1);
    let ejections = facade_by(names::ENDPOINT_EJECTIONS, "server.port", &port(&busy));
    assert_eq!(ejections.len(), 1, "{ejections:?}");
    assert_eq!(ejections[0].1.counter, 1);
    assert_eq!(ejections[0].0["server.address"], "127.0.0.1");
    assert!(ejections[0].0["vllm_client.endpoint.reason"].contains("asked"));
    let o = otel_where(names::ENDPOINT_EJECTIONS, |a| {
        a.get("server.port").map(String::as_str) == Some(port(&busy).as_str())
    });
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!((o[0].sum, o[0].unit.as_str()), (1.0, "{ejection}"));
    // The attempt that went to the busy server says so in its span.
    {
        let s = spans().lock().unwrap();
        let to_busy: Vec<&SpanRec> = s
            .spans
            .iter()
            .filter(|sp| sp.name == "attempt")
            .filter(|sp| sp.fields.get("server.port") == Some(&port(&busy)))
            .collect();
        assert_eq!(to_busy.len(), 1, "{:?}", s.spans);
        assert_eq!(to_busy[0].fields["vllm_client.endpoint.index"], "0");
        assert_eq!(to_busy[0].fields["server.address"], "127.0.0.1");
    }

    // Hedges: a client whose first choice is slow hedges onto the other endpoint and wins.
    let slow = FakeServer::start();
    slow.push_n(20, Reply::generate().delay(Duration::from_secs(2)));
    let fast = FakeServer::start();
    let c = H::builder("http://unused.invalid/v1")
        .endpoints([slow.base_url(), fast.base_url()])
        .hedge(HedgeConfig::after(Duration::from_millis(100)).max_extra_percent(100))
        .build();
    for _ in 0..40 {
        if slow.request_count() > 0 {
            break;
        }
        let s = H::wait(
            c.chat
                .completions()
                .create()
                .model("obs-hedge")
                .messages(json!([{"role": "user", "content": "hi"}]))
                .send_stream(),
        )
        .expect("a stream");
        assert!(matches!(H::collect(s).last(), Some(StreamEvent::Done)));
    }
    assert_eq!(
        slow.request_count(),
        1,
        "the slow server was chosen first once"
    );
    let started = facade_by(names::HEDGES, "vllm_client.hedge.event", "started");
    let won = facade_by(names::HEDGES, "vllm_client.hedge.event", "backup_won");
    assert_eq!((started.len(), won.len()), (1, 1), "{started:?} {won:?}");
    assert_eq!((started[0].1.counter, won[0].1.counter), (1, 1));
}
