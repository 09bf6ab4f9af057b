//! The TLS an adapter's own HTTP client was built with, named the same way by every adapter,
//! and the one rule that follows from it: without a TLS feature an `https` URL is refused
//! before anything is sent, with an error that names the features.

use bytes::Bytes;
use http::Request;
use vllm_client_core::call::TransportErrorKind;

use crate::Failed;

/// What an `https` request says when no TLS feature is on.
pub const NO_TLS: &str = "an https:// URL needs a TLS feature of vllm-client: `rustls` (the \
                          default), `rustls-ring` or `native-tls`";

/// The name of the TLS library an adapter built with these features uses: `"native-tls"`
/// (it wins when on), `"rustls"` or `"none"`. Adapters call it with their own `cfg!`s.
pub const fn tls_backend(native_tls: bool, rustls: bool) -> &'static str {
    if native_tls {
        "native-tls"
    } else if rustls {
        "rustls"
    } else {
        "none"
    }
}

/// Refuses `request` when it is `https` and the adapter's own client (`own`: not one the user
/// gave, whose TLS is the user's) was built with `backend` `"none"`.
pub fn refuse_https_without_tls(
    backend: &str,
    own: bool,
    request: &Request<Bytes>,
) -> Result<(), Failed> {
    if own && backend == "none" && request.uri().scheme_str() == Some("https") {
        return Err(Failed::new(TransportErrorKind::Rejected, NO_TLS));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_tls_wins_and_none_refuses_only_its_own_https() {
        assert_eq!(tls_backend(true, true), "native-tls");
        assert_eq!(tls_backend(false, true), "rustls");
        assert_eq!(tls_backend(false, false), "none");
        let https = Request::new(Bytes::new());
        let https = {
            let mut r = https;
            *r.uri_mut() = "https://example.test/v1".parse().unwrap();
            r
        };
        let http = {
            let mut r = Request::new(Bytes::new());
            *r.uri_mut() = "http://127.0.0.1/v1".parse().unwrap();
            r
        };
        assert!(refuse_https_without_tls("none", true, &https).is_err());
        assert!(refuse_https_without_tls("none", false, &https).is_ok());
        assert!(refuse_https_without_tls("none", true, &http).is_ok());
        assert!(refuse_https_without_tls("rustls", true, &https).is_ok());
    }
}
