//! W3C Trace Context (`traceparent`, `tracestate`) on every request sent, from the attempt's
//! span, so that a server that continues traces (vLLM with `--otlp-traces-endpoint`, a
//! gateway) puts its spans under the client's.
//!
//! Only with the `opentelemetry` feature: the span's OpenTelemetry context comes from the
//! `tracing-opentelemetry` layer when one is installed (the attempt span is then the parent
//! of the server's), otherwise from OpenTelemetry's current context. Without a valid span
//! context nothing is added; a `traceparent` the request already carries (a header the user
//! set) is never replaced. Without the feature, requests go out as they are.

use bytes::Bytes;
use http::Request;
use tracing::Span;

/// `request` with the trace context of `span` injected (see the [module docs](self)).
#[cfg(feature = "opentelemetry")]
pub(crate) fn inject(span: &Span, request: &mut Request<Bytes>) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    if request.headers().contains_key(TRACEPARENT) {
        return;
    }
    let from_span = span.context();
    let cx = if from_span.span().span_context().is_valid() {
        from_span
    } else {
        opentelemetry::Context::current()
    };
    let span_ref = cx.span();
    let sc = span_ref.span_context();
    if let Some((parent, state)) = headers(
        sc.is_valid(),
        &sc.trace_id().to_string(),
        &sc.span_id().to_string(),
        sc.trace_flags().to_u8(),
        &sc.trace_state().header(),
    ) {
        request.headers_mut().insert(TRACEPARENT, parent);
        if let Some(state) = state {
            request.headers_mut().insert(TRACESTATE, state);
        }
    }
}

/// Without the `opentelemetry` feature: the request as it is.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn inject(_span: &Span, _request: &mut Request<Bytes>) {}

#[cfg(feature = "opentelemetry")]
const TRACEPARENT: &str = "traceparent";
#[cfg(feature = "opentelemetry")]
const TRACESTATE: &str = "tracestate";

/// The `traceparent` (version 00) and `tracestate` values of a span context, when it is
/// valid; a `tracestate` only when non-empty and sendable.
#[cfg(any(feature = "opentelemetry", test))]
fn headers(
    valid: bool,
    trace_id: &str,
    span_id: &str,
    flags: u8,
    state: &str,
) -> Option<(http::HeaderValue, Option<http::HeaderValue>)> {
    if !valid {
        return None;
    }
    let parent =
        http::HeaderValue::from_str(&format!("00-{trace_id}-{span_id}-{flags:02x}")).ok()?;
    let state = (!state.is_empty())
        .then(|| http::HeaderValue::from_str(state).ok())
        .flatten();
    Some((parent, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w3c_format() {
        let (p, s) = headers(
            true,
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
            1,
            "vendor=x",
        )
        .unwrap();
        assert_eq!(p, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(s.unwrap(), "vendor=x");
        let (_, none) = headers(true, "a", "b", 0, "").unwrap();
        assert!(none.is_none());
        assert!(headers(false, "a", "b", 1, "").is_none());
    }

    #[cfg(feature = "opentelemetry")]
    #[test]
    fn no_span_context_no_header_and_a_given_one_is_kept() {
        let mut r = Request::new(Bytes::new());
        inject(&Span::none(), &mut r);
        assert!(!r.headers().contains_key(TRACEPARENT));
        let mut given = Request::new(Bytes::new());
        given
            .headers_mut()
            .insert(TRACEPARENT, http::HeaderValue::from_static("00-given"));
        inject(&Span::none(), &mut given);
        assert_eq!(given.headers()[TRACEPARENT], "00-given");
    }
}
