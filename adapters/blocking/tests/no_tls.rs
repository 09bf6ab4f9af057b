//! Built without a TLS feature (`cargo test -p vllm-client-blocking --no-default-features --test
//! no_tls`, as `.ci/run` does), an `https://` URL is refused before anything is sent, with an
//! error naming the features; with one, this file is empty.
#![cfg(not(any(feature = "rustls", feature = "rustls-ring", feature = "native-tls")))]

use vllm_client_core::VllmError;

#[test]
fn https_without_a_tls_feature_is_refused_clearly() {
    assert_eq!(vllm_client_blocking::TLS_BACKEND, "none");
    // Nothing listens on port 1: without the refusal this would be a connect error.
    let client = vllm_client_blocking::VllmClient::builder()
        .base_url("https://127.0.0.1:1/v1")
        .max_retries(3)
        .build();
    let e = client.models().expect_err("refused");
    assert!(matches!(e, VllmError::InvalidRequest(_)), "{e:?}");
    let message = e.to_string();
    assert!(
        message.contains("rustls") && message.contains("native-tls"),
        "{message}"
    );
}
