//! Rate-limit headers: what a server says about its limits, in every format servers send,
//! read into one [`RateLimitSnapshot`].
//!
//! | format | names | reset |
//! |---|---|---|
//! | OpenAI, LiteLLM proxy | `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` | Go duration (`17ms`, `1s`, `6m0s`, `1h2m3.5s`) or plain seconds |
//! | LiteLLM proxy's own limiter (per key, user, team…) | `x-ratelimit-{scope}-{limit,remaining}-{requests,tokens}`, e.g. `x-ratelimit-api_key-remaining-requests` | none sent |
//! | Anthropic | `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` | RFC 3339 instant |
//! | IETF draft (structured) | `RateLimit: "name";r=<remaining>;t=<seconds>`, `RateLimit-Policy: "name";q=<limit>;w=<window>` | seconds |
//! | IETF draft (older), Envoy, GitHub-style | `RateLimit-{Limit,Remaining,Reset}`, `X-RateLimit-{Limit,Remaining,Reset}` | seconds, or epoch seconds when larger than 10⁹ |
//!
//! Rules: numbers are whole (a fraction in a reset is kept to the millisecond); a negative
//! number, an unparsable value or a limit of zero means *unknown* (servers use `-1` and `0`
//! as sentinels); a remaining count of zero is real (the quota is spent). Of LiteLLM's scoped
//! quotas the most restrictive scope (the least remaining) stands for the quota, and only
//! where the unscoped names said nothing. Values are read with
//! saturating arithmetic and bounded length, so a hostile header cannot panic or overflow.
//! Resets are durations from the moment the response head was received.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// One quota the server announced (requests or tokens).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// The quota per window, if announced.
    pub limit: Option<u64>,
    /// What is left of it, if announced.
    pub remaining: Option<u64>,
    /// When it is refilled, from the moment the head was received.
    pub reset: Option<Duration>,
}

impl Quota {
    fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }

    /// How long until the quota allows another request, when it is spent and the server said
    /// when it refills.
    pub fn wait(&self) -> Option<Duration> {
        match (self.remaining, self.reset) {
            (Some(0), Some(reset)) if !reset.is_zero() => Some(reset),
            _ => None,
        }
    }
}

/// What a response's headers said about the server's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitSnapshot {
    /// The request quota.
    pub requests: Quota,
    /// The token quota.
    pub tokens: Quota,
}

impl RateLimitSnapshot {
    /// Reads every known format; `None` when the headers say nothing about limits.
    /// `received_at` is the wall-clock time the head arrived (for absolute resets).
    pub fn parse(headers: &HeaderMap, received_at: SystemTime) -> Option<RateLimitSnapshot> {
        // Every format's names contain "ratelimit" (header names are lowercase): most servers
        // (vLLM, llama.cpp) send none, and then one pass over the names is all it costs.
        if !headers.keys().any(|k| k.as_str().contains("ratelimit")) {
            return None;
        }
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut s = RateLimitSnapshot::default();
        // OpenAI and LiteLLM.
        for (quota, kind) in [(&mut s.requests, "requests"), (&mut s.tokens, "tokens")] {
            fill(
                quota,
                get(&format!("x-ratelimit-limit-{kind}")),
                get(&format!("x-ratelimit-remaining-{kind}")),
            );
            quota.reset = quota
                .reset
                .or_else(|| get(&format!("x-ratelimit-reset-{kind}")).and_then(go_duration));
            // LiteLLM's own limiter names the scope: `x-ratelimit-api_key-remaining-requests`.
            merge(quota, litellm_scoped(headers, kind));
            // Anthropic.
            fill(
                quota,
                get(&format!("anthropic-ratelimit-{kind}-limit")),
                get(&format!("anthropic-ratelimit-{kind}-remaining")),
            );
            quota.reset = quota.reset.or_else(|| {
                get(&format!("anthropic-ratelimit-{kind}-reset"))
                    .and_then(|v| rfc3339_after(v, received_at))
            });
        }
        // IETF structured fields: remaining and reset of the first policy.
        if let Some(v) = get("ratelimit") {
            let r = sf_param(v, "r");
            let t = sf_param(v, "t").map(Duration::from_secs);
            let limit = get("ratelimit-policy")
                .and_then(|p| sf_param(p, "q"))
                .filter(|q| *q > 0);
            merge(
                &mut s.requests,
                Quota {
                    limit,
                    remaining: r,
                    reset: t,
                },
            );
        }
        // Older IETF draft, Envoy, GitHub-style.
        for prefix in ["ratelimit", "x-ratelimit"] {
            fill(
                &mut s.requests,
                get(&format!("{prefix}-limit")),
                get(&format!("{prefix}-remaining")),
            );
            s.requests.reset = s.requests.reset.or_else(|| {
                get(&format!("{prefix}-reset")).and_then(|v| seconds_or_epoch(v, received_at))
            });
        }
        (!s.requests.is_empty() || !s.tokens.is_empty()).then_some(s)
    }

    /// How long the next request should wait: the longest wait of a spent quota.
    pub fn wait(&self) -> Option<Duration> {
        self.requests.wait().max(self.tokens.wait())
    }
}

/// At most this many scopes of LiteLLM's scoped headers are read per kind.
const MAX_SCOPES: usize = 16;

/// LiteLLM's proxy limiter (`parallel_request_limiter_v3`) announces each quota it enforces
/// under its scope: `x-ratelimit-{scope}-{remaining,limit}-{kind}` with scopes like
/// `api_key`, `user`, `team`, `end_user`, `model_per_key`. The scope with the least remaining
/// (its limit with it) is the one that binds.
fn litellm_scoped(headers: &HeaderMap, kind: &str) -> Quota {
    // (scope, limit, remaining)
    let mut scopes: Vec<(&str, Option<u64>, Option<u64>)> = Vec::new();
    for (name, value) in headers {
        let Some(rest) = name.as_str().strip_prefix("x-ratelimit-") else {
            continue;
        };
        let Some(field) = rest.strip_suffix(kind).and_then(|r| r.strip_suffix('-')) else {
            continue;
        };
        let (scope, is_limit) = if let Some(scope) = field.strip_suffix("-remaining") {
            (scope, false)
        } else if let Some(scope) = field.strip_suffix("-limit") {
            (scope, true)
        } else {
            continue;
        };
        let Some(n) = value.to_str().ok().and_then(whole) else {
            continue;
        };
        let i = match scopes.iter().position(|(s, _, _)| *s == scope) {
            Some(i) => i,
            None if scope.is_empty() || scopes.len() == MAX_SCOPES => continue,
            None => {
                scopes.push((scope, None, None));
                scopes.len() - 1
            }
        };
        if is_limit {
            scopes[i].1 = Some(n).filter(|l| *l > 0);
        } else {
            scopes[i].2 = Some(n);
        }
    }
    scopes
        .into_iter()
        .min_by_key(|(_, _, remaining)| remaining.unwrap_or(u64::MAX))
        .map(|(_, limit, remaining)| Quota {
            limit,
            remaining,
            reset: None,
        })
        .unwrap_or_default()
}

fn merge(into: &mut Quota, from: Quota) {
    into.limit = into.limit.or(from.limit);
    into.remaining = into.remaining.or(from.remaining);
    into.reset = into.reset.or(from.reset);
}

fn fill(quota: &mut Quota, limit: Option<&str>, remaining: Option<&str>) {
    let limit = limit.and_then(whole).filter(|l| *l > 0);
    let remaining = remaining.and_then(whole);
    merge(
        quota,
        Quota {
            limit,
            remaining,
            reset: None,
        },
    );
}

/// A whole, non-negative number; negatives and garbage are unknown.
fn whole(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Seconds with an optional fraction, to the millisecond (`"1.5"` → 1.5 s).
fn seconds(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs = whole(int)?;
    let frac = frac.get(..frac.len().min(3)).unwrap_or("");
    let millis = if frac.is_empty() {
        0
    } else {
        whole(frac)? * 10u64.pow(3 - frac.len() as u32)
    };
    Some(Duration::from_secs(secs).saturating_add(Duration::from_millis(millis)))
}

/// A Go duration (`"17ms"`, `"1s"`, `"6m0s"`, `"1h2m3.5s"`, `"250us"`) or plain seconds.
fn go_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() || v.len() > 64 {
        return None;
    }
    if let Some(d) = seconds(v) {
        return Some(d);
    }
    let mut total = Duration::ZERO;
    let mut rest = v;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let n = seconds(num)?; // as if seconds, then scaled
        let part = match unit {
            "h" => n.checked_mul(3600)?,
            "m" => n.checked_mul(60)?,
            "s" => n,
            "ms" => n / 1000,
            "us" | "µs" => n / 1_000_000,
            "ns" => n / 1_000_000_000,
            _ => return None,
        };
        total = total.saturating_add(part);
        rest = next;
    }
    Some(total)
}

/// Delta seconds, or epoch seconds (values above 10⁹) as a delay from `received_at`.
fn seconds_or_epoch(v: &str, received_at: SystemTime) -> Option<Duration> {
    let d = seconds(v)?;
    if d.as_secs() < 1_000_000_000 {
        return Some(d);
    }
    let at = SystemTime::UNIX_EPOCH.checked_add(d)?;
    Some(at.duration_since(received_at).unwrap_or(Duration::ZERO))
}

/// An RFC 3339 instant (`2026-12-01T23:20:42Z`, fractions and offsets allowed) as a delay
/// from `received_at` (zero when it is past).
fn rfc3339_after(v: &str, received_at: SystemTime) -> Option<Duration> {
    let v = v.trim();
    let b = v.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| v.get(r).and_then(whole);
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &v[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let end = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        millis = seconds(&format!("0.{}", &frac[..end]))?.as_millis() as u64;
        rest = &frac[end..];
    }
    let offset: i64 = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && matches!(&o[..1], "+" | "-") && &o[3..4] == ":" => {
            let m = (whole(&o[1..3])? * 60 + whole(&o[4..6])?) as i64 * 60;
            if o.starts_with('-') {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm), in 64-bit arithmetic.
    let (y, mo, d) = (y as i64, mo as i64, d as i64);
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (h * 3600 + mi * 60 + s) as i64 - offset;
    let secs = u64::try_from(secs).ok()?;
    let at = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(secs) + Duration::from_millis(millis))?;
    Some(at.duration_since(received_at).unwrap_or(Duration::ZERO))
}

/// A parameter of the first item of a structured field: `"x";r=50;t=30` → `r` = 50.
fn sf_param(v: &str, key: &str) -> Option<u64> {
    let first = v.split(',').next()?;
    first.split(';').skip(1).find_map(|p| {
        let (k, val) = p.split_once('=')?;
        (k.trim() == key).then(|| whole(val)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn openai_go_durations() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-tokens", "17ms"),
        ]);
        let s = RateLimitSnapshot::parse(&h, at(0)).unwrap();
        assert_eq!(
            s.requests,
            Quota {
                limit: Some(60),
                remaining: Some(0),
                reset: Some(Duration::from_secs(360))
            }
        );
        assert_eq!(s.tokens.reset, Some(ms(17)));
        assert_eq!(s.wait(), Some(Duration::from_secs(360)));
        for (v, d) in [
            ("1s", ms(1000)),
            ("1h2m3.5s", ms(3_723_500)),
            ("250us", Duration::from_micros(250)),
            ("0.5", ms(500)),
        ] {
            assert_eq!(go_duration(v), Some(d), "{v}");
        }
        for bad in ["", "1x", "s", "-1s", "1.2.3s", "99999999999999999999999h"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn litellm_integer_resets_and_sentinels() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "-1"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "2"),
            ("x-ratelimit-limit-tokens", "0"),
            ("x-ratelimit-remaining-tokens", "-1"),
        ]);
        let s = RateLimitSnapshot::parse(&h, at(0)).unwrap();
        assert_eq!(
            s.requests,
            Quota {
                limit: None,
                remaining: Some(0),
                reset: Some(ms(2000))
            }
        );
        assert_eq!(s.tokens, Quota::default());
    }

    #[test]
    fn litellm_scoped_quotas() {
        // What LiteLLM 1.108's proxy sends on a 200 for a key limited to 1 request per window.
        let h = headers(&[
            ("x-litellm-key-rpm-limit", "1"),
            ("x-ratelimit-api_key-remaining-requests", "0"),
            ("x-ratelimit-api_key-limit-requests", "1"),
        ]);
        let s = RateLimitSnapshot::parse(&h, at(0)).unwrap();
        assert_eq!(
            s.requests,
            Quota {
                limit: Some(1),
                remaining: Some(0),
                reset: None
            }
        );
        assert_eq!(s.tokens, Quota::default());
        assert_eq!(s.wait(), None, "no reset announced: nothing to pace on");

        // Several scopes: the least remaining binds, with its own limit.
        let h = headers(&[
            ("x-ratelimit-api_key-remaining-requests", "40"),
            ("x-ratelimit-api_key-limit-requests", "100"),
            ("x-ratelimit-team-remaining-requests", "3"),
            ("x-ratelimit-team-limit-requests", "10"),
            ("x-ratelimit-user-limit-tokens", "5000"),
            ("x-ratelimit-user-remaining-tokens", "4990"),
        ]);
        let s = RateLimitSnapshot::parse(&h, at(0)).unwrap();
        assert_eq!(
            (s.requests.limit, s.requests.remaining),
            (Some(10), Some(3))
        );
        assert_eq!(
            (s.tokens.limit, s.tokens.remaining),
            (Some(5000), Some(4990))
        );

        // The unscoped names win; they are never read as a scope.
        let h = headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-api_key-remaining-requests", "0"),
            ("x-ratelimit-api_key-limit-requests", "1"),
        ]);
        let s = RateLimitSnapshot::parse(&h, at(0)).unwrap();
        assert_eq!(
            (s.requests.limit, s.requests.remaining),
            (Some(60), Some(59))
        );

        // Garbage, sentinels and an empty scope are unknown, never a panic.
        let h = headers(&[
            ("x-ratelimit--remaining-requests", "0"),
            ("x-ratelimit-api_key-remaining-requests", "-1"),
            ("x-ratelimit-api_key-limit-requests", "0"),
            ("x-ratelimit-remaining-tokens-requests", "x"),
        ]);
        assert_eq!(RateLimitSnapshot::parse(&h, at(0)), None);
    }

    #[test]
    fn anthropic_rfc3339_instants() {
        let received = at(1_764_631_242); // 2025-12-01T23:20:42Z
        let h = headers(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            (
                "anthropic-ratelimit-requests-reset",
                "2025-12-01T23:20:44.500Z",
            ),
            (
                "anthropic-ratelimit-tokens-reset",
                "2025-12-02T00:20:42+01:00",
            ),
        ]);
        let s = RateLimitSnapshot::parse(&h, received).unwrap();
        assert_eq!(s.requests.reset, Some(ms(2500)));
        assert_eq!(s.tokens.reset, Some(Duration::ZERO));
        assert_eq!(rfc3339_after("2025-13-01T00:00:00Z", received), None);
        assert_eq!(rfc3339_after("not a date at all....", received), None);
    }

    #[test]
    fn ietf_fields_and_envoy_epochs() {
        let h = headers(&[
            ("ratelimit", "\"default\";r=0;t=30"),
            ("ratelimit-policy", "\"default\";q=100;w=60"),
        ]);
        let s = RateLimitSnapshot::parse(&h, at(0)).unwrap();
        assert_eq!(
            s.requests,
            Quota {
                limit: Some(100),
                remaining: Some(0),
                reset: Some(Duration::from_secs(30))
            }
        );
        let h = headers(&[
            ("ratelimit-limit", "10"),
            ("ratelimit-remaining", "3"),
            ("ratelimit-reset", "7"),
        ]);
        assert_eq!(
            RateLimitSnapshot::parse(&h, at(0)).unwrap().requests.reset,
            Some(Duration::from_secs(7))
        );
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1764631250"),
        ]);
        let s = RateLimitSnapshot::parse(&h, at(1_764_631_242)).unwrap();
        assert_eq!(s.wait(), Some(Duration::from_secs(8)));
    }

    #[test]
    fn nothing_or_garbage_is_none_never_a_panic() {
        assert_eq!(RateLimitSnapshot::parse(&HeaderMap::new(), at(0)), None);
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "18446744073709551616999"),
            ("x-ratelimit-reset-requests", "9999999999999999999h"),
            ("anthropic-ratelimit-requests-reset", "9999-99-99T99:99:99Z"),
            ("ratelimit", ";;;=;r=;t=-5"),
            ("x-ratelimit-reset", "99999999999999999999.999"),
        ]);
        let s = RateLimitSnapshot::parse(&h, at(0));
        assert!(s.is_none_or(|s| s.wait().is_none()), "{s:?}");
    }
}
