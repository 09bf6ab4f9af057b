//! TLS on every adapter against a local HTTPS server (an HTTPS front on 127.0.0.1 for the
//! fake server, with a CA made at run time), without touching the process's trust store:
//!
//! - a server whose CA the OS trust store does not hold is refused: `VllmError::Connect`
//!   naming the certificate, never a response;
//! - the other documented way to trust a private CA — your own HTTP client with the CA added,
//!   given to `http_client(..)` — works on every adapter.
//!
//! `tls_os_trust_store.rs` checks the OS trust store way (it sets `SSL_CERT_FILE`, which is
//! process-wide, so it is a binary of its own). Both run with the default features and, in
//! `.ci/run`, with `--features rustls-ring` and `--features native-tls`.

#[allow(dead_code)]
#[path = "conformance/harness.rs"]
mod harness;

use std::sync::Arc;

use harness::{AsyncStdH, BlockingH, Harness, TokioH};
use serde_json::json;
use vllm_client_core::client::Client;
use vllm_client_core::VllmError;
use vllm_client_suite::tls::{Handshake, HttpsFront, TestPki};
use vllm_testkit::server::FakeServer;

fn chat<H: Harness>(client: &Client<H::E>) -> Result<String, VllmError> {
    let answer = H::wait(
        client
            .chat
            .completions()
            .create()
            .model("m")
            .messages(json!([{"role": "user", "content": "hi"}]))
            .send(),
    )?;
    Ok(answer.content.unwrap_or_default())
}

fn refused<H: Harness>(adapter: &str) {
    let pki = TestPki::new(adapter);
    let server = FakeServer::start();
    let front = HttpsFront::start(&pki, &server.base_url());
    let client = H::builder(&front.base_url()).max_retries(0).build();
    let e = chat::<H>(&client).expect_err("an unknown CA is refused");
    assert!(e.is_connect(), "{adapter}: {e:?}");
    let message = e.to_string().to_lowercase();
    assert!(
        message.contains("certificate") || message.contains("unknownissuer"),
        "{adapter}: the error names the certificate: {e}"
    );
    assert_eq!(server.request_count(), 0, "{adapter}: nothing was sent");
    let handshakes = front.handshakes();
    assert!(
        handshakes.iter().all(|h| matches!(h, Handshake::Failed(_))),
        "{adapter}: {handshakes:?}"
    );
}

#[test]
fn tokio_refuses_an_unknown_ca() {
    refused::<TokioH>("tokio");
}

#[test]
fn async_std_refuses_an_unknown_ca() {
    refused::<AsyncStdH>("async-std");
}

#[test]
fn blocking_refuses_an_unknown_ca() {
    refused::<BlockingH>("blocking");
}

/// The server's answer through a client built with `build`, and the handshakes it made.
fn own_client<H: Harness>(
    adapter: &str,
    build: impl FnOnce(&TestPki) -> <H::E as vllm_client_core::client::Execute>::HttpClient,
) {
    let pki = TestPki::new(adapter);
    let server = FakeServer::start();
    let front = HttpsFront::start(&pki, &server.base_url());
    let client = H::builder(&front.base_url())
        .max_retries(0)
        .http_client(build(&pki))
        .build();
    let text = chat::<H>(&client).unwrap_or_else(|e| panic!("{adapter}: {e}"));
    assert_eq!(text, "Echo: hi", "{adapter}");
    assert_eq!(server.request_count(), 1, "{adapter}");
    let handshakes = front.handshakes();
    assert!(
        matches!(handshakes.as_slice(), [Handshake::Done { .. }]),
        "{adapter}: {handshakes:?}"
    );
}

/// rustls with the crate's provider and only the test CA as root.
fn rustls_config(pki: &TestPki) -> vllm_client_tls::rustls::ClientConfig {
    use vllm_client_tls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).expect("the CA");
    rustls::ClientConfig::builder_with_provider(vllm_client_tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[test]
fn tokio_with_an_own_reqwest_client_trusting_the_ca() {
    own_client::<TokioH>("tokio", |pki| {
        let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("PEM");
        let builder = reqwest::Client::builder().add_root_certificate(ca);
        #[cfg(feature = "native-tls")]
        let builder = builder.tls_backend_native();
        builder.build().expect("a reqwest client")
    });
}

#[test]
fn async_std_with_an_own_http1_backend_trusting_the_ca() {
    own_client::<AsyncStdH>("async-std", |pki| {
        #[cfg(feature = "native-tls")]
        let http1 = {
            use vllm_client_async_std::async_native_tls::{Certificate, TlsConnector};
            let ca = Certificate::from_pem(pki.ca_pem.as_bytes()).expect("PEM");
            vllm_client_async_std::Http1::with_native_tls(
                TlsConnector::new().add_root_certificate(ca),
            )
        };
        #[cfg(not(feature = "native-tls"))]
        let http1 = vllm_client_async_std::Http1::with_rustls(Arc::new(rustls_config(pki)));
        surf::Client::with_http_client(http1)
    });
}

#[test]
fn blocking_with_an_own_ureq_agent_trusting_the_ca() {
    own_client::<BlockingH>("blocking", |pki| {
        use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
        let roots =
            RootCerts::Specific(Arc::new(
                vec![Certificate::from_der(&pki.ca_der).to_owned()],
            ));
        let tls = TlsConfig::builder().root_certs(roots);
        #[cfg(feature = "native-tls")]
        let tls = tls.provider(TlsProvider::NativeTls);
        #[cfg(not(feature = "native-tls"))]
        let tls = tls
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(vllm_client_tls::crypto_provider());
        let config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .build();
        ureq::Agent::new_with_config(config)
    });
}

/// The own rustls configuration is used as given: with no root at all, the same server is
/// refused (so the tests above pass because of the CA they add).
#[test]
fn an_own_client_without_the_ca_is_refused() {
    let pki = TestPki::new("no-root");
    let server = FakeServer::start();
    let front = HttpsFront::start(&pki, &server.base_url());
    let other = TestPki::new("another CA");
    let http1 = vllm_client_async_std::Http1::with_rustls(Arc::new(rustls_config(&other)));
    let client = AsyncStdH::builder(&front.base_url())
        .max_retries(0)
        .http_client(surf::Client::with_http_client(http1))
        .build();
    let e = chat::<AsyncStdH>(&client).expect_err("another CA's root does not help");
    assert!(e.is_connect(), "{e:?}");
}
