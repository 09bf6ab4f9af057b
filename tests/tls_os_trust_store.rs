//! The documented way to trust a private CA, on every adapter: the operating system's trust
//! store. On Linux that is the CA bundle OpenSSL uses, which `SSL_CERT_FILE` names for one
//! process (rustls-platform-verifier reads it through rustls-native-certs; OpenSSL, under
//! native-tls, reads it itself).
//!
//! This binary has one test: it sets `SSL_CERT_FILE` (process-wide) to a CA made at run time
//! before any client exists, then talks to the fake server through an HTTPS front whose
//! certificate that CA signed. It also checks which TLS library and crypto provider were used:
//! the front runs rustls with aws-lc-rs preferring the post-quantum hybrid `X25519MLKEM768`,
//! which a client on aws-lc-rs (the default) negotiates and one on ring cannot.
//!
//! Run by `cargo test` with the default features (rustls + aws-lc-rs), and by `.ci/run` again
//! with `--features rustls-ring` and with `--features native-tls`.

#[allow(dead_code)]
#[path = "conformance/harness.rs"]
mod harness;

use harness::{AsyncStdH, BlockingH, Harness, TokioH};
use serde_json::json;
use vllm_client_core::StreamEvent;
use vllm_client_suite::tls::{Handshake, HttpsFront, TestPki};
use vllm_testkit::server::FakeServer;

/// The TLS library these features make every adapter use.
fn expected_backend() -> &'static str {
    if cfg!(feature = "native-tls") {
        "native-tls"
    } else {
        "rustls"
    }
}

fn chat_and_stream<H: Harness>(front: &HttpsFront, adapter: &str) {
    let before = front.handshakes().len();
    let client = H::builder(&front.base_url()).max_retries(0).build();
    let hi = json!([{"role": "user", "content": "hi"}]);
    let answer = H::wait(
        client
            .chat
            .completions()
            .create()
            .model("m")
            .messages(hi.clone())
            .send(),
    )
    .unwrap_or_else(|e| panic!("{adapter}: a chat over https: {e}"));
    assert_eq!(answer.content.as_deref(), Some("Echo: hi"), "{adapter}");
    let stream = H::wait(
        client
            .chat
            .completions()
            .create()
            .model("m")
            .messages(hi)
            .send_stream(),
    )
    .unwrap_or_else(|e| panic!("{adapter}: a stream over https: {e}"));
    let events = H::collect(stream);
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Content(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Echo: hi", "{adapter}: {events:?}");
    assert!(
        matches!(events.last(), Some(StreamEvent::Done)),
        "{adapter}: {events:?}"
    );

    let handshakes = front.handshakes()[before..].to_vec();
    assert!(!handshakes.is_empty(), "{adapter}: no TLS handshake");
    for handshake in &handshakes {
        let Handshake::Done { group } = handshake else {
            panic!("{adapter}: {handshake:?}");
        };
        match (expected_backend(), vllm_client_tls::FEATURE_PROVIDER) {
            // aws-lc-rs offers the post-quantum hybrid first (rustls' `prefer-post-quantum`).
            ("rustls", "aws-lc-rs") => assert_eq!(group, "X25519MLKEM768", "{adapter}"),
            // ring has no ML-KEM.
            ("rustls", "ring") => assert_eq!(group, "X25519", "{adapter}"),
            // OpenSSL's groups depend on its version; the handshake completed.
            _ => assert!(!group.is_empty(), "{adapter}"),
        }
    }
}

#[test]
fn every_adapter_trusts_a_ca_installed_in_the_os_trust_store() {
    let pki = TestPki::new("os-trust-store");
    let dir = std::env::temp_dir().join(format!("vllm-client-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let ca = pki.write_ca(&dir);
    // Before any client or TLS configuration exists; this binary's only test.
    std::env::set_var("SSL_CERT_FILE", &ca);
    std::env::remove_var("SSL_CERT_DIR");

    let server = FakeServer::start();
    let front = HttpsFront::start(&pki, &server.base_url());
    assert_eq!(vllm_client_tokio::TLS_BACKEND, expected_backend());
    assert_eq!(vllm_client_blocking::TLS_BACKEND, expected_backend());
    assert_eq!(
        vllm_client_async_std::Http1::new().tls_backend(),
        expected_backend()
    );
    chat_and_stream::<TokioH>(&front, "tokio");
    chat_and_stream::<AsyncStdH>(&front, "async-std");
    chat_and_stream::<BlockingH>(&front, "blocking");
    assert!(
        server.request_count() >= 6,
        "every request went through the front to the fake server"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
