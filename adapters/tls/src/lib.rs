//! The trust story of `vllm-client`, written once for its adapters.
//!
//! Two decisions live here, and nowhere else:
//!
//! - **Which rustls crypto provider** ([`crypto_provider`]): the process-wide default when the
//!   application installed one with [`CryptoProvider::install_default`] (so a FIPS or custom
//!   provider chosen by the application is used by this client too), otherwise ring with the
//!   `ring` feature, otherwise aws-lc-rs (the `aws-lc-rs` feature, the default). It never asks
//!   rustls to pick a provider from its crate features, which panics when both are compiled
//!   in, and it never installs a process-wide default itself.
//! - **Which roots** ([`client_config`], [`OsTrustStore`]): the operating system's trust store,
//!   through `rustls-platform-verifier` (the system verifier on macOS, Windows, iOS and
//!   Android; on Linux and the BSDs the CA bundle that OpenSSL would use, honouring
//!   `SSL_CERT_FILE` and `SSL_CERT_DIR`). It is loaded on the first handshake, not when a
//!   client is built: a client that only speaks `http://` never reads it, and a machine with no
//!   CA bundle gets a handshake error that says so instead of a panic.
//!
//! ```
//! # #[cfg(any(feature = "aws-lc-rs", feature = "ring"))] {
//! let config = vllm_client_tls::client_config(&[b"http/1.1"]);
//! assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("vllm-client-tls needs a crypto provider: enable its `aws-lc-rs` or `ring` feature");

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

pub use rustls;

/// The crypto provider the adapters use: the process-wide default if the application
/// installed one, otherwise ring (`ring` feature), otherwise aws-lc-rs (`aws-lc-rs` feature).
///
/// With both features on, ring wins: `ring` is never on by default, so it was asked for.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    feature_provider()
}

/// The provider named by the crate features, ignoring any process-wide default.
pub fn feature_provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "ring")]
    let provider = rustls::crypto::ring::default_provider();
    #[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    Arc::new(provider)
}

/// The name of the provider [`feature_provider`] returns: `"ring"` or `"aws-lc-rs"`.
pub const FEATURE_PROVIDER: &str = if cfg!(feature = "ring") {
    "ring"
} else {
    "aws-lc-rs"
};

/// A rustls client configuration with [`crypto_provider`], every protocol version it supports
/// (TLS 1.2 and 1.3), the OS trust store ([`OsTrustStore`]), no client certificate, and these
/// ALPN protocols (e.g. `[b"h2", b"http/1.1"]`).
pub fn client_config(alpn: &[&[u8]]) -> rustls::ClientConfig {
    let installed = crypto_provider();
    // An installed provider with no cipher suite for TLS 1.2 or 1.3 cannot make a client
    // configuration at all: the features' provider is used instead (it supports both).
    let (provider, builder) = match rustls::ClientConfig::builder_with_provider(installed.clone())
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => (installed, builder),
        Err(_) => {
            let provider = feature_provider();
            let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("rustls' own providers support TLS 1.2 and 1.3");
            (provider, builder)
        }
    };
    let mut config = builder
        .dangerous()
        // Not dangerous: the platform verifier, only loaded lazily (see `OsTrustStore`).
        .with_custom_certificate_verifier(Arc::new(OsTrustStore::new(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// The operating system's trust store as a rustls certificate verifier, loaded on first use.
///
/// `rustls_platform_verifier::Verifier::new` reads the system's roots (on Linux the CA
/// bundle, which can take a few milliseconds) and fails on a machine that has none. This
/// wrapper defers that to the first certificate it verifies, and turns a failure into that
/// handshake's error: "the OS trust store could not be loaded: …".
pub struct OsTrustStore {
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<rustls_platform_verifier::Verifier, String>>,
}

impl OsTrustStore {
    /// A verifier over the OS trust store, with `provider`'s signature algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        OsTrustStore {
            provider,
            inner: OnceLock::new(),
        }
    }

    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(self.provider.clone())
                    .map_err(|e| format!("the OS trust store could not be loaded: {e}"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl fmt::Debug for OsTrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner.get() {
            None => "not loaded yet",
            Some(Ok(_)) => "loaded",
            Some(Err(_)) => "failed to load",
        };
        f.debug_struct("OsTrustStore")
            .field("roots", &state)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for OsTrustStore {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
