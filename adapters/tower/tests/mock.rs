//! The tower transport against `tower-test`'s mock service: what reaches the service, how its
//! responses, readiness and errors come back to the client.

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::json;
use tower_test::mock::{self, Handle};
use vllm_client_core::policy::Jitter;
use vllm_client_core::{StreamEvent, VllmError};
use vllm_client_tower::VllmClient;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;
type Mock = mock::Mock<http::Request<Bytes>, http::Response<Body>>;

type MockHandle = Handle<http::Request<Bytes>, http::Response<Body>>;
type Answer = Result<vllm_client_core::api::ChatCompletionResponse, VllmError>;

fn pair() -> (Mock, MockHandle) {
    mock::pair()
}

/// A chat "hi" on the test client, on a task of its own, and the service's side of it.
fn chat_call() -> (MockHandle, tokio::task::JoinHandle<Answer>) {
    let (service, handle) = pair();
    (handle, spawn_chat(client(service)))
}

/// The text of a chat call's answer.
async fn content_of(call: tokio::task::JoinHandle<Answer>) -> Option<String> {
    call.await.expect("joined").expect("the answer").content
}

fn client(service: Mock) -> VllmClient<Mock> {
    VllmClient::builder()
        .base_url("http://vllm.test:8000/v1")
        .api_key("sk-test")
        .exponential_backoff(
            Duration::from_millis(5),
            Duration::from_millis(20),
            Jitter::None,
        )
        .retry_budget(None)
        .timeout(Duration::from_secs(10))
        .http_client(service)
        .build()
}

fn full(status: u16, json: serde_json::Value) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(json.to_string()))
                .map_err(|e| match e {})
                .boxed(),
        )
        .expect("a response")
}

fn completion(text: &str) -> serde_json::Value {
    json!({"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
}

fn hi() -> serde_json::Value {
    json!([{"role": "user", "content": "hi"}])
}

/// A chat "hi" to model `m`.
async fn send_hi(c: &VllmClient<Mock>) -> Answer {
    c.chat
        .completions()
        .create()
        .model("m")
        .messages(hi())
        .send()
        .await
}

/// A chat "hi" to model `m`, sent on a task of its own (the test answers for the service).
fn spawn_chat(c: VllmClient<Mock>) -> tokio::task::JoinHandle<Answer> {
    tokio::spawn(async move { send_hi(&c).await })
}

#[tokio::test]
async fn a_chat_reaches_the_service_and_its_answer_the_caller() {
    let (mut handle, call) = chat_call();
    let (request, respond) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(
        request.uri().to_string(),
        "http://vllm.test:8000/v1/chat/completions"
    );
    assert_eq!(request.headers()["authorization"], "Bearer sk-test");
    let body: serde_json::Value = serde_json::from_slice(request.body()).expect("JSON");
    assert_eq!(body["model"], "m");
    assert_eq!(body["messages"], hi());
    respond.send_response(full(200, completion("hello")));
    assert_eq!(content_of(call).await.as_deref(), Some("hello"));
}

#[tokio::test]
async fn a_503_with_retry_after_is_retried_through_the_service() {
    let (mut handle, call) = chat_call();
    let (_, respond) = handle.next_request().await.expect("first attempt");
    let mut busy = full(503, json!({"error": {"message": "busy"}}));
    busy.headers_mut()
        .insert("retry-after-ms", http::HeaderValue::from_static("50"));
    let sent = Instant::now();
    respond.send_response(busy);
    let (_, respond) = handle.next_request().await.expect("the retry");
    assert!(
        sent.elapsed() >= Duration::from_millis(45),
        "Retry-After honoured"
    );
    respond.send_response(full(200, completion("second")));
    assert_eq!(content_of(call).await.as_deref(), Some("second"));
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_after_the_retries() {
    let (mut handle, call) = chat_call();
    for _ in 0..3 {
        let (_, respond) = handle.next_request().await.expect("an attempt");
        respond.send_error(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
    }
    let e = call.await.expect("joined").expect_err("refused");
    assert!(e.is_connect(), "{e:?}");
    assert!(e.to_string().contains("refused"), "{e}");
}

#[tokio::test]
async fn readiness_is_waited_for() {
    let (service, mut handle) = pair();
    handle.allow(0);
    let c = client(service);
    let call = spawn_chat(c);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!call.is_finished());
    assert!(
        futures_util::FutureExt::now_or_never(handle.next_request()).is_none(),
        "no request while the service is not ready"
    );
    handle.allow(1);
    let (_, respond) = handle.next_request().await.expect("a request once ready");
    respond.send_response(full(200, completion("ready")));
    assert_eq!(content_of(call).await.as_deref(), Some("ready"));
}

#[tokio::test]
async fn a_service_that_never_gets_ready_times_out() {
    let (service, mut handle) = pair();
    handle.allow(0);
    let c = VllmClient::builder()
        .base_url("http://vllm.test/v1")
        .max_retries(0)
        .timeout(Duration::from_millis(200))
        .http_client(service)
        .build();
    let e = send_hi(&c).await.expect_err("never ready");
    assert!(matches!(e, VllmError::Timeout), "{e:?}");
}

fn sse(frames: Vec<Result<Frame<Bytes>, BoxError>>) -> http::Response<Body> {
    http::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
            frames,
        ))))
        .expect("a response")
}

/// A streamed chat "hi" on a task of its own, collected to its end.
fn spawn_stream(
    c: VllmClient<Mock>,
) -> tokio::task::JoinHandle<Result<Vec<StreamEvent>, VllmError>> {
    tokio::spawn(async move {
        let stream = c
            .chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .send_stream()
            .await?;
        Ok::<_, VllmError>(stream.collect::<Vec<_>>().await)
    })
}

/// A streamed chat "hi" on the test client, on a task of its own, and the service's side.
fn stream_call() -> (
    MockHandle,
    tokio::task::JoinHandle<Result<Vec<StreamEvent>, VllmError>>,
) {
    let (service, handle) = pair();
    (handle, spawn_stream(client(service)))
}

fn data(text: &[u8]) -> Result<Frame<Bytes>, BoxError> {
    Ok(Frame::data(Bytes::copy_from_slice(text)))
}

#[tokio::test]
async fn a_stream_is_read_frame_by_frame() {
    let (mut handle, call) = stream_call();
    let (_, respond) = handle.next_request().await.expect("a request");
    let event = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"你好\"}}]}\n\n";
    let bytes = event.as_bytes();
    // Split inside "你", an empty frame and trailers on the way.
    let cut = event.find('你').expect("你") + 1;
    respond.send_response(sse(vec![
        data(&bytes[..cut]),
        data(b""),
        data(&bytes[cut..]),
        Ok(Frame::trailers(http::HeaderMap::new())),
        data(b"data: [DONE]\n\n"),
    ]));
    let events = call.await.expect("joined").expect("a stream");
    assert!(
        matches!(events.as_slice(), [StreamEvent::Content(t), StreamEvent::Done] if t == "你好"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_body_error_mid_stream_ends_it_with_an_error() {
    let (mut handle, call) = stream_call();
    let (_, respond) = handle.next_request().await.expect("a request");
    respond.send_response(sse(vec![
        data(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"),
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset").into()),
    ]));
    let events = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the stream ends")
        .expect("joined")
        .expect("a stream");
    assert!(
        matches!(events.as_slice(), [StreamEvent::Content(t), StreamEvent::Error(_)] if t == "a"),
        "{events:?}"
    );
    // A retry would be sent within the backoff (at most 20 ms); none comes.
    let next = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
    let next = next.map(|r| r.map(|(req, _)| req.uri().to_string()));
    assert!(
        !matches!(next, Ok(Some(_))),
        "no retry after text reached the caller: {next:?}"
    );
}

#[tokio::test]
async fn a_client_without_a_service_refuses_clearly() {
    let c: VllmClient<Mock> = VllmClient::builder()
        .base_url("http://vllm.test/v1")
        .build();
    let e = send_hi(&c).await.expect_err("no service");
    assert!(matches!(e, VllmError::InvalidRequest(_)), "{e:?}");
    assert!(e.to_string().contains("http_client"), "{e}");
}
