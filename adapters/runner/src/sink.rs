//! Where metrics go: the `metrics` facade and/or the OpenTelemetry API, each behind its
//! feature. With both features off, [`Sink`] is empty and [`Sink::ENABLED`] is `false`, so the
//! callers skip building attributes at all.

use std::borrow::Cow;

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
use crate::observability as names;

/// An attribute value.
#[derive(Debug, Clone)]
#[cfg_attr(
    not(any(feature = "metrics", feature = "opentelemetry")),
    allow(dead_code)
)]
pub(crate) enum Value {
    Str(Cow<'static, str>),
    Int(i64),
}

/// Attributes of one measurement.
pub(crate) type Attrs = Vec<(&'static str, Value)>;

/// The instruments, by what they measure.
///
/// To record a new one: add a variant here, its `describe_*` and macro arm in `facade`, and its
/// instrument in `otel::Instruments`; then call `Sink::record` where the runner learns of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metric {
    Duration,
    TokenUsage,
    TimeToFirstChunk,
    TimePerOutputChunk,
    Attempts,
    Retries,
    Timeouts,
    LimiterWait,
    BreakerTransitions,
    BreakerState,
    InFlight,
    Waiting,
    Ejections,
    Hedges,
    Limit,
}

/// The metric backends of one client.
#[derive(Debug)]
pub(crate) struct Sink {
    #[cfg(feature = "opentelemetry")]
    otel: otel::Instruments,
}

impl Sink {
    /// Whether anything is recorded at all.
    pub(crate) const ENABLED: bool = cfg!(any(feature = "metrics", feature = "opentelemetry"));

    pub(crate) fn new() -> Sink {
        #[cfg(feature = "metrics")]
        facade::describe();
        Sink {
            #[cfg(feature = "opentelemetry")]
            otel: otel::Instruments::new(),
        }
    }

    /// The histogram `metric` with `attrs` fixed, for recording many values cheaply (a
    /// stream's time per chunk): no attribute is built or looked up again.
    #[allow(unused_variables)]
    pub(crate) fn bind(&self, metric: Metric, attrs: &Attrs) -> Bound {
        Bound {
            #[cfg(feature = "metrics")]
            facade: facade::histogram(metric, attrs),
            #[cfg(feature = "opentelemetry")]
            otel: self.otel.bind(metric, attrs),
        }
    }

    /// Records `value` into the histogram, counter (added) or gauge (set) `metric`.
    #[allow(unused_variables)]
    pub(crate) fn record(&self, metric: Metric, value: f64, attrs: &Attrs) {
        #[cfg(feature = "metrics")]
        facade::record(metric, value, attrs);
        #[cfg(feature = "opentelemetry")]
        self.otel.record(metric, value, attrs);
    }
}

/// A histogram with its attributes fixed (see [`Sink::bind`]).
pub(crate) struct Bound {
    #[cfg(feature = "metrics")]
    facade: metrics::Histogram,
    #[cfg(feature = "opentelemetry")]
    otel: Option<(
        opentelemetry::metrics::Histogram<f64>,
        Vec<opentelemetry::KeyValue>,
    )>,
}

impl Bound {
    #[allow(unused_variables)]
    pub(crate) fn record(&self, value: f64) {
        #[cfg(feature = "metrics")]
        self.facade.record(value);
        #[cfg(feature = "opentelemetry")]
        if let Some((h, kv)) = &self.otel {
            h.record(value, kv);
        }
    }
}

#[cfg(feature = "metrics")]
mod facade {
    use super::{names, Attrs, Metric, Value};
    use metrics::{Label, Unit};

    pub(super) fn describe() {
        use metrics::{describe_counter, describe_gauge, describe_histogram};
        describe_histogram!(
            names::OPERATION_DURATION,
            Unit::Seconds,
            "GenAI operation duration"
        );
        describe_histogram!(
            names::TOKEN_USAGE,
            Unit::Count,
            "Number of input and output tokens used"
        );
        describe_histogram!(
            names::TIME_TO_FIRST_CHUNK,
            Unit::Seconds,
            "Time to receive the first chunk of a streamed response"
        );
        describe_histogram!(
            names::TIME_PER_OUTPUT_CHUNK,
            Unit::Seconds,
            "Time between consecutive chunks of a streamed response"
        );
        describe_counter!(names::ATTEMPTS, Unit::Count, "Requests sent (attempts)");
        describe_counter!(names::RETRIES, Unit::Count, "Retries, by cause");
        describe_counter!(names::TIMEOUTS, Unit::Count, "Timers that fired, by kind");
        describe_histogram!(
            names::LIMITER_WAIT,
            Unit::Seconds,
            "Time a call waited for a limiter"
        );
        describe_counter!(
            names::BREAKER_TRANSITIONS,
            Unit::Count,
            "Circuit-breaker state changes"
        );
        describe_gauge!(
            names::BREAKER_STATE,
            "Circuit-breaker state (0 closed, 1 half-open, 2 open)"
        );
        describe_gauge!(
            names::CONCURRENCY_IN_FLIGHT,
            Unit::Count,
            "Calls holding a concurrency slot"
        );
        describe_gauge!(
            names::CONCURRENCY_WAITING,
            Unit::Count,
            "Calls waiting for a concurrency slot"
        );
        describe_counter!(
            names::ENDPOINT_EJECTIONS,
            Unit::Count,
            "Endpoints taken out of rotation, by endpoint and reason"
        );
        describe_gauge!(
            names::CONCURRENCY_LIMIT,
            Unit::Count,
            "The adaptive concurrency limit in force"
        );
        describe_counter!(
            names::HEDGES,
            Unit::Count,
            "Hedged first tokens: backups started, and which leg won"
        );
    }

    fn labels(attrs: &Attrs) -> Vec<Label> {
        attrs
            .iter()
            .map(|(k, v)| match v {
                Value::Str(s) => Label::new(*k, s.clone().into_owned()),
                Value::Int(i) => Label::new(*k, i.to_string()),
            })
            .collect()
    }

    /// The facade's histogram `metric` with `attrs` (a no-op handle for other kinds).
    pub(super) fn histogram(metric: Metric, attrs: &Attrs) -> metrics::Histogram {
        let l = labels(attrs);
        match metric {
            Metric::Duration => metrics::histogram!(names::OPERATION_DURATION, l),
            Metric::TokenUsage => metrics::histogram!(names::TOKEN_USAGE, l),
            Metric::TimeToFirstChunk => metrics::histogram!(names::TIME_TO_FIRST_CHUNK, l),
            Metric::TimePerOutputChunk => metrics::histogram!(names::TIME_PER_OUTPUT_CHUNK, l),
            Metric::LimiterWait => metrics::histogram!(names::LIMITER_WAIT, l),
            _ => metrics::Histogram::noop(),
        }
    }

    pub(super) fn record(metric: Metric, value: f64, attrs: &Attrs) {
        let l = labels(attrs);
        match metric {
            Metric::Duration => metrics::histogram!(names::OPERATION_DURATION, l).record(value),
            Metric::TokenUsage => metrics::histogram!(names::TOKEN_USAGE, l).record(value),
            Metric::TimeToFirstChunk => {
                metrics::histogram!(names::TIME_TO_FIRST_CHUNK, l).record(value)
            }
            Metric::TimePerOutputChunk => {
                metrics::histogram!(names::TIME_PER_OUTPUT_CHUNK, l).record(value)
            }
            Metric::LimiterWait => metrics::histogram!(names::LIMITER_WAIT, l).record(value),
            Metric::Attempts => metrics::counter!(names::ATTEMPTS, l).increment(value as u64),
            Metric::Retries => metrics::counter!(names::RETRIES, l).increment(value as u64),
            Metric::Timeouts => metrics::counter!(names::TIMEOUTS, l).increment(value as u64),
            Metric::BreakerTransitions => {
                metrics::counter!(names::BREAKER_TRANSITIONS, l).increment(value as u64)
            }
            Metric::BreakerState => metrics::gauge!(names::BREAKER_STATE, l).set(value),
            Metric::InFlight => metrics::gauge!(names::CONCURRENCY_IN_FLIGHT, l).set(value),
            Metric::Waiting => metrics::gauge!(names::CONCURRENCY_WAITING, l).set(value),
            Metric::Ejections => {
                metrics::counter!(names::ENDPOINT_EJECTIONS, l).increment(value as u64)
            }
            Metric::Hedges => metrics::counter!(names::HEDGES, l).increment(value as u64),
            Metric::Limit => metrics::gauge!(names::CONCURRENCY_LIMIT, l).set(value),
        }
    }
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use super::{names, Attrs, Metric, Value};
    use opentelemetry::metrics::{Counter, Gauge, Histogram};
    use opentelemetry::KeyValue;

    /// The instruments, created from the global meter provider when the client is built.
    pub(super) struct Instruments {
        duration: Histogram<f64>,
        tokens: Histogram<u64>,
        ttfc: Histogram<f64>,
        tpoc: Histogram<f64>,
        attempts: Counter<u64>,
        retries: Counter<u64>,
        timeouts: Counter<u64>,
        limiter_wait: Histogram<f64>,
        transitions: Counter<u64>,
        breaker_state: Gauge<i64>,
        in_flight: Gauge<i64>,
        waiting: Gauge<i64>,
        ejections: Counter<u64>,
        hedges: Counter<u64>,
        limit: Gauge<i64>,
    }

    fn key_values(attrs: &Attrs) -> Vec<KeyValue> {
        attrs
            .iter()
            .map(|(k, v)| match v {
                Value::Str(s) => KeyValue::new(*k, s.clone().into_owned()),
                Value::Int(i) => KeyValue::new(*k, *i),
            })
            .collect()
    }

    impl std::fmt::Debug for Instruments {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Instruments").finish_non_exhaustive()
        }
    }

    impl Instruments {
        pub(super) fn new() -> Instruments {
            let meter = opentelemetry::global::meter("vllm-client");
            let seconds = |name: &'static str, description: &'static str| {
                meter
                    .f64_histogram(name)
                    .with_unit("s")
                    .with_description(description)
                    .with_boundaries(names::DURATION_BUCKETS.to_vec())
                    .build()
            };
            let counter = |name: &'static str, unit: &'static str, description: &'static str| {
                meter
                    .u64_counter(name)
                    .with_unit(unit)
                    .with_description(description)
                    .build()
            };
            let gauge = |name: &'static str, unit: &'static str, description: &'static str| {
                meter
                    .i64_gauge(name)
                    .with_unit(unit)
                    .with_description(description)
                    .build()
            };
            Instruments {
                duration: seconds(names::OPERATION_DURATION, "GenAI operation duration"),
                tokens: meter
                    .u64_histogram(names::TOKEN_USAGE)
                    .with_unit("{token}")
                    .with_description("Number of input and output tokens used")
                    .with_boundaries(names::TOKEN_BUCKETS.to_vec())
                    .build(),
                ttfc: seconds(
                    names::TIME_TO_FIRST_CHUNK,
                    "Time to receive the first chunk of a streamed response",
                ),
                tpoc: seconds(
                    names::TIME_PER_OUTPUT_CHUNK,
                    "Time between consecutive chunks of a streamed response",
                ),
                attempts: counter(names::ATTEMPTS, "{attempt}", "Requests sent (attempts)"),
                retries: counter(names::RETRIES, "{retry}", "Retries, by cause"),
                timeouts: counter(names::TIMEOUTS, "{timeout}", "Timers that fired, by kind"),
                limiter_wait: seconds(names::LIMITER_WAIT, "Time a call waited for a limiter"),
                transitions: counter(
                    names::BREAKER_TRANSITIONS,
                    "{transition}",
                    "Circuit-breaker state changes",
                ),
                breaker_state: gauge(
                    names::BREAKER_STATE,
                    "1",
                    "Circuit-breaker state (0 closed, 1 half-open, 2 open)",
                ),
                in_flight: gauge(
                    names::CONCURRENCY_IN_FLIGHT,
                    "{call}",
                    "Calls holding a concurrency slot",
                ),
                waiting: gauge(
                    names::CONCURRENCY_WAITING,
                    "{call}",
                    "Calls waiting for a concurrency slot",
                ),
                ejections: counter(
                    names::ENDPOINT_EJECTIONS,
                    "{ejection}",
                    "Endpoints taken out of rotation, by endpoint and reason",
                ),
                hedges: counter(
                    names::HEDGES,
                    "{hedge}",
                    "Hedged first tokens: backups started, and which leg won",
                ),
                limit: gauge(
                    names::CONCURRENCY_LIMIT,
                    "{call}",
                    "The adaptive concurrency limit in force",
                ),
            }
        }

        /// The f64 histogram `metric` with its attributes (`None` for other instruments).
        pub(super) fn bind(
            &self,
            metric: Metric,
            attrs: &Attrs,
        ) -> Option<(Histogram<f64>, Vec<KeyValue>)> {
            let h = match metric {
                Metric::Duration => &self.duration,
                Metric::TimeToFirstChunk => &self.ttfc,
                Metric::TimePerOutputChunk => &self.tpoc,
                Metric::LimiterWait => &self.limiter_wait,
                _ => return None,
            };
            Some((h.clone(), key_values(attrs)))
        }

        pub(super) fn record(&self, metric: Metric, value: f64, attrs: &Attrs) {
            let kv = key_values(attrs);
            let n = value as u64;
            match metric {
                Metric::Duration => self.duration.record(value, &kv),
                Metric::TokenUsage => self.tokens.record(n, &kv),
                Metric::TimeToFirstChunk => self.ttfc.record(value, &kv),
                Metric::TimePerOutputChunk => self.tpoc.record(value, &kv),
                Metric::LimiterWait => self.limiter_wait.record(value, &kv),
                Metric::Attempts => self.attempts.add(n, &kv),
                Metric::Retries => self.retries.add(n, &kv),
                Metric::Timeouts => self.timeouts.add(n, &kv),
                Metric::BreakerTransitions => self.transitions.add(n, &kv),
                Metric::BreakerState => self.breaker_state.record(value as i64, &kv),
                Metric::InFlight => self.in_flight.record(value as i64, &kv),
                Metric::Waiting => self.waiting.record(value as i64, &kv),
                Metric::Ejections => self.ejections.add(n, &kv),
                Metric::Hedges => self.hedges.add(n, &kv),
                Metric::Limit => self.limit.record(value as i64, &kv),
            }
        }
    }
}
