//! The server's retry hints: `retry-after-ms`, `Retry-After`, `llm_provider-retry-after`,
//! and the `x-should-retry` override.
//!
//! [`parse_retry_after`] reads, in this order, the first header that parses:
//!
//! 1. `retry-after-ms` — a non-negative decimal number of milliseconds, possibly fractional
//!    (`"1500"`, `"0.5"`), as OpenAI and openai-python use it;
//! 2. `retry-after` — delta-seconds (`"2"`, also fractional `"1.5"`), else an HTTP-date.
//!    A date is taken relative to the response's own `Date` header when that parses, else
//!    relative to `received_at` (the wall time the caller received the head), so clock skew
//!    between client and server does not distort it. A date in the past means zero;
//! 3. `llm_provider-retry-after` — LiteLLM's non-standard header, decimal seconds.
//!
//! Numbers are parsed exactly (no floats): only ASCII digits with at most one `.`, surrounded by
//! optional whitespace. Garbage, signs, exponents, `NaN`, `inf` and empty values make that
//! header count as absent (the next one is tried). Absurdly large values saturate to
//! `Duration::MAX` — the server clearly asked for "very long", and the retry policy then gives
//! up reporting the hint. Nothing here panics.
//!
//! [`parse_should_retry`] reads `x-should-retry: true|false` (case-insensitive, trimmed);
//! anything else is `None`.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};

const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_MS: u128 = 1_000_000;

/// Which header a hint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintSource {
    /// `retry-after-ms`.
    RetryAfterMs,
    /// `retry-after`, in delta-seconds.
    RetryAfterSeconds,
    /// `retry-after`, as an HTTP-date.
    RetryAfterDate,
    /// LiteLLM's `llm_provider-retry-after`.
    LlmProviderRetryAfter,
}

/// A server's request to wait before retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// How long the server asked the client to wait (zero for a date in the past).
    pub delay: Duration,
    /// The header it came from.
    pub source: HintSource,
}

/// Parses the first usable retry hint from a response head (see the module docs for the order).
///
/// `received_at` is the wall-clock time the head was received; it is only used to resolve an
/// HTTP-date when the response carries no parsable `Date` header.
pub fn parse_retry_after(headers: &HeaderMap, received_at: SystemTime) -> Option<RetryAfter> {
    if let Some(delay) =
        header_str(headers, &RETRY_AFTER_MS).and_then(|v| parse_decimal(v, NANOS_PER_MS))
    {
        return Some(RetryAfter {
            delay,
            source: HintSource::RetryAfterMs,
        });
    }
    if let Some(v) = header_str(headers, &RETRY_AFTER) {
        if let Some(delay) = parse_decimal(v, NANOS_PER_SEC) {
            return Some(RetryAfter {
                delay,
                source: HintSource::RetryAfterSeconds,
            });
        }
        if let Ok(at) = httpdate::parse_http_date(v.trim()) {
            let reference = header_str(headers, &DATE)
                .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
                .unwrap_or(received_at);
            return Some(RetryAfter {
                delay: at.duration_since(reference).unwrap_or(Duration::ZERO),
                source: HintSource::RetryAfterDate,
            });
        }
    }
    if let Some(delay) =
        header_str(headers, &LLM_PROVIDER_RETRY_AFTER).and_then(|v| parse_decimal(v, NANOS_PER_SEC))
    {
        return Some(RetryAfter {
            delay,
            source: HintSource::LlmProviderRetryAfter,
        });
    }
    None
}

/// Parses `x-should-retry: true|false` (case-insensitive). Anything else is `None`.
pub fn parse_should_retry(headers: &HeaderMap) -> Option<bool> {
    let v = header_str(headers, &X_SHOULD_RETRY)?.trim();
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

// Parsed once: looking a header up by `&str` would validate and hash the name every time.
const X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");
const LLM_PROVIDER_RETRY_AFTER: HeaderName = HeaderName::from_static("llm_provider-retry-after");
const DATE: HeaderName = HeaderName::from_static("date");

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parses `digits[.digits]` (or `.digits`, `digits.`) in units of `unit_nanos`, exactly and
/// saturating at `Duration::MAX`.
fn parse_decimal(s: &str, unit_nanos: u128) -> Option<Duration> {
    let s = s.trim();
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut units: u128 = 0;
    for b in int.bytes() {
        // Saturate: anything beyond ~10^30 units is "forever" anyway.
        units = units
            .saturating_mul(10)
            .saturating_add(u128::from(b - b'0'));
    }
    let mut nanos = units.saturating_mul(unit_nanos);
    let mut place = unit_nanos;
    for b in frac.bytes() {
        place /= 10;
        if place == 0 {
            break;
        }
        nanos = nanos.saturating_add(u128::from(b - b'0') * place);
    }
    let secs = nanos / NANOS_PER_SEC;
    Some(match u64::try_from(secs) {
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn now() -> SystemTime {
        httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap()
    }

    fn delay(pairs: &[(&'static str, &str)]) -> Option<Duration> {
        parse_retry_after(&headers(pairs), now()).map(|r| r.delay)
    }

    #[test]
    fn retry_after_ms_first() {
        assert_eq!(
            parse_retry_after(
                &headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]),
                now()
            ),
            Some(RetryAfter {
                delay: Duration::from_millis(1500),
                source: HintSource::RetryAfterMs
            })
        );
        assert_eq!(
            delay(&[("retry-after-ms", "0.5")]),
            Some(Duration::from_micros(500))
        );
        assert_eq!(
            delay(&[("retry-after-ms", " 20 ")]),
            Some(Duration::from_millis(20))
        );
        assert_eq!(delay(&[("retry-after-ms", "0")]), Some(Duration::ZERO));
    }

    #[test]
    fn garbage_falls_through() {
        assert_eq!(
            delay(&[("retry-after-ms", "soon"), ("retry-after", "3")]),
            Some(Duration::from_secs(3))
        );
        for bad in [
            "-1", "NaN", "inf", "1e3", "+5", "", ".", "1.2.3", "0x10", "١",
        ] {
            assert_eq!(delay(&[("retry-after-ms", bad)]), None, "{bad:?}");
            assert_eq!(delay(&[("retry-after", bad)]), None, "{bad:?}");
        }
    }

    #[test]
    fn seconds_fractional() {
        assert_eq!(
            delay(&[("retry-after", "1.25")]),
            Some(Duration::from_millis(1250))
        );
        assert_eq!(
            delay(&[("retry-after", "120")]),
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn absurd_values_saturate() {
        let huge = "9".repeat(400);
        assert_eq!(delay(&[("retry-after", &huge)]), Some(Duration::MAX));
        assert_eq!(delay(&[("retry-after-ms", &huge)]), Some(Duration::MAX));
        assert_eq!(
            delay(&[("retry-after", "18446744073709551616")]),
            Some(Duration::MAX)
        );
    }

    #[test]
    fn http_date_relative_to_received_at() {
        let d = delay(&[("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT")]);
        assert_eq!(d, Some(Duration::from_secs(10)));
    }

    #[test]
    fn http_date_relative_to_date_header() {
        let d = delay(&[
            ("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT"),
            ("date", "Sun, 06 Nov 1994 08:49:45 GMT"),
        ]);
        assert_eq!(d, Some(Duration::from_secs(2)));
        // An unparsable Date falls back to received_at.
        let d = delay(&[
            ("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT"),
            ("date", "yesterday"),
        ]);
        assert_eq!(d, Some(Duration::from_secs(10)));
    }

    #[test]
    fn past_date_is_zero() {
        let d = parse_retry_after(
            &headers(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]),
            now(),
        );
        assert_eq!(
            d,
            Some(RetryAfter {
                delay: Duration::ZERO,
                source: HintSource::RetryAfterDate
            })
        );
    }

    #[test]
    fn litellm_header_last() {
        assert_eq!(
            parse_retry_after(&headers(&[("llm_provider-retry-after", "7")]), now()),
            Some(RetryAfter {
                delay: Duration::from_secs(7),
                source: HintSource::LlmProviderRetryAfter
            })
        );
        assert_eq!(
            delay(&[("llm_provider-retry-after", "7"), ("retry-after", "2")]),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn none_without_headers() {
        assert_eq!(delay(&[]), None);
        assert_eq!(delay(&[("retry-after", "not a date")]), None);
    }

    #[test]
    fn non_utf8_is_ignored() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(parse_retry_after(&h, now()), None);
    }

    #[test]
    fn should_retry() {
        assert_eq!(
            parse_should_retry(&headers(&[("x-should-retry", "true")])),
            Some(true)
        );
        assert_eq!(
            parse_should_retry(&headers(&[("x-should-retry", "TRUE")])),
            Some(true)
        );
        assert_eq!(
            parse_should_retry(&headers(&[("x-should-retry", " False ")])),
            Some(false)
        );
        assert_eq!(
            parse_should_retry(&headers(&[("x-should-retry", "yes")])),
            None
        );
        assert_eq!(parse_should_retry(&headers(&[])), None);
    }
}
