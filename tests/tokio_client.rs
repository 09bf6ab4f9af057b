//! The tokio client against the fake server: every endpoint, and what bad input and a
//! misbehaving server get (a clear error, never a panic or a hang).

use std::time::Duration;

use futures::StreamExt;
use vllm_client::{
    json, DetokenizeRequest, EmbeddingRequest, Jitter, StreamEvent, TokenizeRequest, VllmClient,
    VllmError,
};
use vllm_testkit::server::{free_port_url, FakeServer, Reply};

fn fast(url: &str) -> VllmClient {
    VllmClient::builder()
        .base_url(url)
        .exponential_backoff(
            Duration::from_millis(1),
            Duration::from_millis(5),
            Jitter::Full,
        )
        .build()
}

async fn chat(client: &VllmClient) -> Result<vllm_client::ChatCompletionResponse, VllmError> {
    client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "hi"}]))
        .send()
        .await
}

#[tokio::test]
async fn every_endpoint() {
    let server = FakeServer::start();
    let client = fast(&server.base_url());
    assert_eq!(
        chat(&client).await.unwrap().content.as_deref(),
        Some("Echo: hi")
    );
    let models = client.models().await.unwrap();
    assert_eq!(models.data[0].id, "fake/vllm-model");
    let e = client
        .embeddings(EmbeddingRequest::new("m", json!(["a", "b"])))
        .await
        .unwrap();
    assert_eq!(e.data.len(), 2);
    let t = client
        .tokenize(TokenizeRequest::new("m", "hello world"))
        .await
        .unwrap();
    assert_eq!(t.count as usize, t.tokens.len());
    let d = client
        .detokenize(DetokenizeRequest::new("m", t.tokens.clone()))
        .await
        .unwrap();
    assert_eq!(d.prompt, "hello world");
    client.health().await.unwrap();
    assert_eq!(client.version().await.unwrap().version, "0.11.0-fake");
    let c = client
        .completions
        .create()
        .model("m")
        .prompt("once upon")
        .send()
        .await
        .unwrap();
    assert_eq!(c.content.as_deref(), Some("Echo: once upon"));
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v1/chat/completions",
            "/v1/models",
            "/v1/embeddings",
            "/tokenize",
            "/detokenize",
            "/health",
            "/version",
            "/v1/completions"
        ]
    );
}

#[tokio::test]
async fn base_url_without_v1_and_with_trailing_slash() {
    let server = FakeServer::start();
    for url in [server.root_url(), format!("{}/", server.base_url())] {
        let client = fast(&url);
        assert_eq!(
            chat(&client).await.unwrap().content.as_deref(),
            Some("Echo: hi")
        );
        client.health().await.unwrap();
    }
}

#[tokio::test]
async fn typed_parameters_and_extra_reach_the_server() {
    let server = FakeServer::start();
    let client = fast(&server.base_url());
    client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "x"}]))
        .temperature(0.5)
        .top_k(20)
        .min_p(0.05)
        .repetition_penalty(1.1)
        .seed(7)
        .structured_outputs(json!({"choice": ["a", "b"]}))
        .chat_template_kwargs(json!({"enable_thinking": false}))
        .priority(-1)
        .extra(json!({"temperature": 0.25, "cache_salt": "s"}))
        .send()
        .await
        .unwrap();
    let body = server.last_request().unwrap().json.unwrap();
    assert_eq!(body["temperature"], json!(0.25), "extra is merged last");
    assert_eq!(body["top_k"], json!(20));
    assert_eq!(body["seed"], json!(7));
    assert_eq!(body["structured_outputs"]["choice"][1], "b");
    assert_eq!(
        body["chat_template_kwargs"]["enable_thinking"],
        json!(false)
    );
    assert_eq!(body["priority"], json!(-1));
    assert_eq!(body["cache_salt"], "s");
    assert_ne!(body.get("stream"), Some(&json!(true)));
    assert!(body.get("max_tokens").is_none());
}

#[tokio::test]
async fn unparsable_base_url_is_a_clear_error() {
    for url in ["not a url", "localhost:8000", "ftp://x/v1", ""] {
        let client = VllmClient::new(url);
        let e = chat(&client).await.unwrap_err();
        assert!(matches!(e, VllmError::InvalidRequest(_)), "{url}: {e:?}");
        assert!(e.to_string().contains("base URL"), "{e}");
        assert!(!e.is_retryable());
    }
}

#[tokio::test]
async fn connection_refused_is_retried_then_a_connect_error() {
    let client = fast(&free_port_url());
    let reported = client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "hi"}]))
        .send_with_report()
        .await
        .unwrap();
    let e = reported.result.unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(reported.report.attempts, 3);
}

#[tokio::test]
async fn bodies_that_are_not_what_the_endpoint_promises() {
    let server = FakeServer::start();
    let client = fast(&server.base_url());
    let cases = [
        (Reply::text(200, "definitely not json"), "not JSON"),
        (
            Reply::json_status(200, &json!({"unexpected": true})),
            "not a chat completion",
        ),
        (
            Reply::html(200, "<html><body>Welcome to nginx!</body></html>"),
            "Welcome to nginx",
        ),
        (Reply::status(200), "empty body"),
    ];
    for (reply, needle) in cases {
        server.push(reply);
        let e = chat(&client).await.unwrap_err();
        assert!(matches!(e, VllmError::Decode { .. }), "{e:?}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
        assert!(!e.is_retryable());
    }
    assert_eq!(server.request_count(), 4, "decode errors are not retried");
}

#[tokio::test]
async fn error_statuses_carry_what_the_server_said() {
    let server = FakeServer::start();
    let client = fast(&server.base_url()).max_retries_for_test();
    server.push(Reply::vllm_error(400, "temperature must be non-negative"));
    let e = chat(&client).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 400);
    let api = e.api_error().unwrap();
    assert_eq!(api.message, "temperature must be non-negative");
    assert_eq!(api.kind.as_deref(), Some("BadRequestError"));

    server.push(Reply::status(500));
    let e = chat(&client).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 500);
    assert!(e.to_string().contains("empty body"), "{e}");

    server.push(Reply::html(502, "<html>Bad Gateway</html>"));
    let e = chat(&client).await.unwrap_err();
    assert!(e.to_string().contains("Bad Gateway"), "{e}");
}

trait NoRetry {
    fn max_retries_for_test(self) -> Self;
}

impl NoRetry for VllmClient {
    fn max_retries_for_test(self) -> Self {
        VllmClient::builder()
            .config(self.config().clone())
            .max_retries(0)
            .build()
    }
}

#[tokio::test]
async fn api_key_is_sent_and_never_printed() {
    let server = FakeServer::builder().api_key("sk-top-secret").start();
    let client = fast(&server.base_url()).with_api_key("sk-top-secret");
    chat(&client).await.unwrap();
    assert_eq!(
        server.last_request().unwrap().header("authorization"),
        Some("Bearer sk-top-secret")
    );
    assert!(!format!("{client:?}").contains("sk-top-secret"));

    let wrong = fast(&server.base_url()).with_api_key("sk-wrong-secret");
    let e = chat(&wrong).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 401);
    assert_eq!(e.api_error().unwrap().message, "Unauthorized");
    assert!(!format!("{e:?} {e}").contains("sk-wrong-secret"));
}

#[tokio::test]
async fn stream_events_in_order() {
    let server = FakeServer::start();
    let client = fast(&server.base_url());
    let mut stream = client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "a b c"}]))
        .include_usage(true)
        .send_stream()
        .await
        .unwrap();
    let mut text = String::new();
    let mut saw_usage = false;
    let mut saw_finish = false;
    let mut last = None;
    while let Some(ev) = stream.next().await {
        match &ev {
            StreamEvent::Content(s) => text.push_str(s),
            StreamEvent::Usage(u) => saw_usage = u.completion_tokens > 0,
            StreamEvent::Finish { reason, .. } => saw_finish = reason == "stop",
            _ => {}
        }
        last = Some(ev);
    }
    assert_eq!(text, "Echo: a b c");
    assert!(saw_usage && saw_finish);
    assert!(matches!(last, Some(StreamEvent::Done)));
}

#[tokio::test]
async fn stream_failing_before_output_is_an_error_from_send_stream() {
    let server = FakeServer::start();
    let client = fast(&server.base_url());
    server.push(Reply::vllm_error(404, "The model `x` does not exist."));
    let e = client
        .chat
        .completions()
        .create()
        .model("x")
        .messages(json!([{"role": "user", "content": "a"}]))
        .send_stream()
        .await
        .unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 404);
}

#[tokio::test]
async fn stream_cut_after_output_ends_with_truncated_and_is_not_retried() {
    let server = FakeServer::start();
    let client = fast(&server.base_url());
    server.push(Reply::generate().cut_after_tokens(2));
    let stream = client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "one two three four"}]))
        .send_stream()
        .await
        .unwrap();
    let events: Vec<StreamEvent> = stream.collect().await;
    assert!(
        matches!(
            events.last(),
            Some(StreamEvent::Error(VllmError::Truncated))
        ),
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|e| e.is_terminal()).count(), 1);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn stall_mid_stream_hits_the_idle_timeout_once() {
    let server = FakeServer::start();
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .idle_timeout(Duration::from_millis(300))
        .build();
    server.push(
        Reply::generate()
            .keep_alives_after_tokens(2, 20, Duration::from_millis(50))
            .stall_after_tokens(2, Duration::from_secs(10)),
    );
    let stream = client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "one two three four"}]))
        .send_stream()
        .await
        .unwrap();
    let events: Vec<StreamEvent> = tokio::time::timeout(Duration::from_secs(5), stream.collect())
        .await
        .expect("the idle timeout must end the stream");
    assert!(
        matches!(events.last(), Some(StreamEvent::Error(VllmError::Timeout))),
        "{events:?}"
    );
    assert_eq!(server.request_count(), 1, "no retry after output");
}

#[tokio::test]
async fn dropping_a_stream_closes_its_connection() {
    let server = FakeServer::start();
    let client = fast(&server.base_url());
    server.push(Reply::generate().token_delay(Duration::from_millis(100)));
    let mut stream = client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "a b c d e f g h i j"}]))
        .send_stream()
        .await
        .unwrap();
    let _ = stream.next().await;
    drop(stream);
    let seen =
        tokio::task::spawn_blocking(move || server.wait_for_disconnects(1, Duration::from_secs(5)))
            .await
            .unwrap();
    assert!(seen, "the server saw the client go away");
}

#[tokio::test]
async fn a_concurrency_limit_of_zero_is_a_clear_error_not_a_hang() {
    let server = FakeServer::start();
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .max_concurrency(0)
        .build();
    let e = tokio::time::timeout(Duration::from_secs(5), chat(&client))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(e.to_string().contains("max_concurrency"), "{e}");
    assert_eq!(server.request_count(), 0);
}

/// A transport whose stream stalls after its first event and whose timer fires a few
/// milliseconds early (as a millisecond timer wheel that rounds down would): the run loop
/// does not poll its timer again while the timer holds the task's waker, and must still see
/// it fire — the idle timeout ends the stream instead of a hang.
mod early_timer {
    use std::time::{Duration, Instant, SystemTime};

    use futures::StreamExt;
    use vllm_client::core::bytes::Bytes;
    use vllm_client::core::call::ResponseHead;
    use vllm_client::core::client::Client;
    use vllm_client::core::config::ClientConfig;
    use vllm_client::core::http;
    use vllm_client::{json, StreamEvent, VllmError};
    use vllm_client_runner::{AsyncExec, Failed, Transport};

    struct EarlyTimer;

    const CHUNK: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";

    impl Transport for EarlyTimer {
        type HttpClient = ();
        type Response = bool;

        fn new(_: &ClientConfig, _: Option<()>) -> Self {
            EarlyTimer
        }
        fn reconfigure(&self, _: &ClientConfig) -> Self {
            EarlyTimer
        }
        async fn send(
            &self,
            _request: http::Request<Bytes>,
            _connect_timeout: Option<Duration>,
        ) -> Result<(ResponseHead, bool), Failed> {
            let mut headers = http::HeaderMap::new();
            headers.insert("content-type", "text/event-stream".parse().unwrap());
            let head = ResponseHead::new(http::StatusCode::OK, headers, SystemTime::now());
            Ok((head, false))
        }
        async fn read(sent: &mut bool) -> Result<Option<Bytes>, Failed> {
            if *sent {
                // Stalled: no more bytes, ever.
                std::future::pending::<()>().await;
            }
            *sent = true;
            Ok(Some(Bytes::from_static(CHUNK.as_bytes())))
        }
        async fn sleep_until(deadline: Instant) {
            let early = deadline
                .checked_sub(Duration::from_millis(3))
                .unwrap_or(deadline);
            tokio::time::sleep_until(early.into()).await
        }
    }

    #[tokio::test]
    async fn a_timer_that_fires_early_still_ends_a_stalled_stream() {
        let client = Client::<AsyncExec<EarlyTimer>>::builder()
            .base_url("http://early-timer/v1")
            .idle_timeout(Duration::from_millis(200))
            .build();
        let mut stream = client
            .chat
            .completions()
            .create()
            .model("m")
            .messages(json!([{"role": "user", "content": "hi"}]))
            .stream(true)
            .send_stream()
            .await
            .unwrap();
        assert!(matches!(stream.next().await, Some(StreamEvent::Content(t)) if t == "hi"));
        let stalled = Instant::now();
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the idle timeout must end the stalled stream, early timer or not");
        assert!(
            matches!(next, Some(StreamEvent::Error(VllmError::Timeout))),
            "{next:?}"
        );
        // At the idle timeout (200 ms), not when something else happens to poll the stream.
        let waited = stalled.elapsed();
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }
}
