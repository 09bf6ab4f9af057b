//! Every code block of the seed page (`tests/seed/page.txt`, the "timeouts and retries" page
//! our users know) compiled unchanged against `vllm_client`, and run against the fake server
//! where it can run.
//!
//! Each block sits between `seed-block-start` / `seed-block-end` markers; the test
//! `blocks_are_the_page_verbatim` checks that, whitespace aside, each is exactly the page's
//! text. The page wraps blocks without a `main` in `#![allow(unused)] fn main() { … }` (the
//! mdbook rendering); blocks 2–8 are kept at module level so their functions can be called,
//! and the check adds that wrapper back before comparing.
//!
//! Blocks 1 and 2 hard-code `http://localhost:8000/v1`, so they are compiled and run only as
//! far as they can without a server (block 2's timeout path is exercised against the fake
//! server by `chat_with_timeout_shape_matches_timeout` instead).

#![allow(dead_code)]

use std::time::Duration;

use vllm_testkit::server::{FakeServer, Reply};

#[rustfmt::skip]
mod block1 {
    // seed-block-start wrapped
    #![allow(unused)]
    fn main() {
        use vllm_client::VllmClient;
        // 简单超时
        let client = VllmClient::new("http://localhost:8000/v1").timeout_secs(120);
        // 使用构建器
        let client = VllmClient::builder()
            .base_url("http://localhost:8000/v1")
            .timeout_secs(300) // 5 分钟
            .build();
    }
    // seed-block-end

    #[test]
    fn builds_clients_without_a_server() {
        main();
    }
}

#[rustfmt::skip]
mod block2 {
    // seed-block-start
    #![allow(unused)]
    use vllm_client::{VllmClient, json, VllmError};
    async fn chat_with_timeout(prompt: &str) -> Result<String, VllmError> {
        let client = VllmClient::new("http://localhost:8000/v1").timeout_secs(60);
        let result = client
            .chat
            .completions()
            .create()
            .model("Qwen/Qwen2.5-7B-Instruct")
            .messages(json!([{"role": "user", "content": prompt}]))
            .send()
            .await;
        match result {
            Ok(response) => Ok(response.content.unwrap_or_default()),
            Err(VllmError::Timeout) => {
                eprintln!("请求在 60 秒后超时");
                Err(VllmError::Timeout)
            }
            Err(e) => Err(e),
        }
    }
    // seed-block-end
}

#[rustfmt::skip]
mod block3 {
    // seed-block-start
    #![allow(unused)]
    use vllm_client::{VllmClient, json, VllmError};
    use std::time::Duration;
    use tokio::time::sleep;
    async fn send_with_retry(
        client: &VllmClient,
        prompt: &str,
        max_retries: u32,
    ) -> Result<String, VllmError> {
        let mut attempts = 0;
        loop {
            match client
                .chat
                .completions()
                .create()
                .model("Qwen/Qwen2.5-7B-Instruct")
                .messages(json!([{"role": "user", "content": prompt}]))
                .send()
                .await
            {
                Ok(response) => {
                    return Ok(response.content.unwrap_or_default());
                }
                Err(e) if e.is_retryable() && attempts < max_retries => {
                    attempts += 1;
                    let delay = Duration::from_millis(100 * 2u64.pow(attempts - 1));
                    eprintln!("第 {} 次重试,等待 {:?}: {}", attempts, delay, e);
                    sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    // seed-block-end

    use super::{client, FakeServer, Reply};

    #[tokio::test]
    async fn block3_send_with_retry_gets_the_answer() {
        let server = FakeServer::start();
        let c = client(&server);
        let text = send_with_retry(&c, "hello", 2).await.unwrap();
        assert_eq!(text, "Echo: hello");
    }
    #[tokio::test]
    async fn block3_never_retries_a_400() {
        let server = FakeServer::start();
        server.push(Reply::vllm_error(400, "bad temperature"));
        let c = client(&server);
        let e = send_with_retry(&c, "hello", 3).await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
        assert_eq!(server.request_count(), 1);
    }
    #[tokio::test]
    async fn block3_over_the_builtin_retries_recovers_from_503s() {
        let server = FakeServer::start();
        server.push_n(2, Reply::vllm_error(503, "overloaded"));
        let c = client(&server);
        // The client's own retries absorb both 503s; the page's loop never runs.
        let text = send_with_retry(&c, "hi", 0).await.unwrap();
        assert_eq!(text, "Echo: hi");
        assert_eq!(server.request_count(), 3);
    }
}

#[rustfmt::skip]
mod block4 {
    // seed-block-start
    #![allow(unused)]
    use rand::Rng;
    use std::time::Duration;
    use tokio::time::sleep;
    fn backoff_with_jitter(attempt: u32, base_ms: u64, max_ms: u64) -> Duration {
        let exponential = base_ms * 2u64.pow(attempt);
        let jitter = rand::thread_rng().gen_range(0..base_ms);
        let delay = (exponential + jitter).min(max_ms);
        Duration::from_millis(delay)
    }
    async fn retry_with_jitter<F, T, E>(mut f: F, max_retries: u32,) -> Result<T, E>
    where
        F: FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>,
        E: std::fmt::Debug,
    {
        let mut attempts = 0;
        loop {
            match f().await {
                Ok(result) => return Ok(result),
                Err(e) if attempts < max_retries => {
                    attempts += 1;
                    let delay = backoff_with_jitter(attempts, 100, 10_000);
                    eprintln!("第 {} 次重试,等待 {:?}: {:?}", attempts, delay, e);
                    sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    // seed-block-end

    use super::{client, FakeServer, Reply};

    #[tokio::test]
    async fn block4_retry_with_jitter_drives_the_client() {
        assert!(backoff_with_jitter(1, 100, 10_000) >= Duration::from_millis(200));
        let server = FakeServer::start();
        let c = client(&server);
        let text = retry_with_jitter(
            || {
                let c = c.clone();
                Box::pin(async move {
                    c.chat
                        .completions()
                        .create()
                        .model("m")
                        .messages(vllm_client::json!([{"role": "user", "content": "x"}]))
                        .send()
                        .await
                        .map(|r| r.content.unwrap_or_default())
                })
            },
            0,
        )
        .await
        .unwrap();
        assert_eq!(text, "Echo: x");
    }
}

#[rustfmt::skip]
mod block5 {
    // seed-block-start
    #![allow(unused)]
    use vllm_client::{VllmClient, json, VllmError};
    async fn smart_retry(client: &VllmClient, prompt: &str,) -> Result<String, VllmError> {
        let mut attempts = 0;
        let max_retries = 3;
        loop {
            let result = client
                .chat
                .completions()
                .create()
                .model("Qwen/Qwen2.5-7B-Instruct")
                .messages(json!([{"role": "user", "content": prompt}]))
                .send()
                .await;
            match result {
                Ok(response) => return Ok(response.content.unwrap_or_default()),
                Err(e) => {
                    // 检查错误是否可重试
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    if attempts >= max_retries {
                        return Err(e);
                    }
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(2u64.pow(attempts))).await;
                }
            }
        }
    }
    // seed-block-end

    use super::{client, FakeServer, Reply};

    #[tokio::test]
    async fn block5_smart_retry_stops_on_client_errors() {
        let server = FakeServer::start();
        server.push(Reply::vllm_error(401, "no"));
        let c = client(&server);
        let e = smart_retry(&c, "p").await.unwrap_err();
        assert!(!e.is_retryable());
        assert_eq!(server.request_count(), 1);
        assert_eq!(smart_retry(&c, "p").await.unwrap(), "Echo: p");
    }
}

#[rustfmt::skip]
mod block6 {
    // seed-block-start
    #![allow(unused)]
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};
    use std::sync::Mutex;
    struct CircuitBreaker {
        failures: AtomicU32,
        last_failure: Mutex<Option<Instant>>,
        threshold: u32,
        reset_duration: Duration,
    }
    impl CircuitBreaker {
        fn new(threshold: u32, reset_duration: Duration) -> Self {
            Self {
                failures: AtomicU32::new(0),
                last_failure: Mutex::new(None),
                threshold,
                reset_duration,
            }
        }
        fn can_attempt(&self) -> bool {
            let failures = self.failures.load(Ordering::Relaxed);
            if failures < self.threshold {
                return true;
            }
            let last = self.last_failure.lock().unwrap();
            if let Some(time) = *last {
                if time.elapsed() > self.reset_duration {
                    // 重置断路器
                    self.failures.store(0, Ordering::Relaxed);
                    return true;
                }
            }
            false
        }
        fn record_success(&self) {
            self.failures.store(0, Ordering::Relaxed);
        }
        fn record_failure(&self) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            *self.last_failure.lock().unwrap() = Some(Instant::now());
        }
    }
    // seed-block-end

    use super::*;

    #[test]
    fn block6_circuit_breaker_opens_after_the_threshold() {
        let b = CircuitBreaker::new(2, Duration::from_secs(60));
        assert!(b.can_attempt());
        b.record_failure();
        b.record_failure();
        assert!(!b.can_attempt());
        b.record_success();
        assert!(b.can_attempt());
    }
}

#[rustfmt::skip]
mod block7 {
    // seed-block-start
    #![allow(unused)]
    use vllm_client::{VllmClient, json, StreamEvent};
    use futures::StreamExt;
    use tokio::time::{timeout, Duration};
    async fn stream_with_timeout(
        client: &VllmClient,
        prompt: &str,
        per_event_timeout: Duration,
    ) -> Result<String, vllm_client::VllmError> {
        let mut stream = client
            .chat
            .completions()
            .create()
            .model("Qwen/Qwen2.5-7B-Instruct")
            .messages(json!([{"role": "user", "content": prompt}]))
            .stream(true)
            .send_stream()
            .await?;
        let mut content = String::new();
        loop {
            match timeout(per_event_timeout, stream.next()).await {
                Ok(Some(event)) => {
                    match event {
                        StreamEvent::Content(delta) => content.push_str(&delta),
                        StreamEvent::Done => break,
                        StreamEvent::Error(e) => return Err(e),
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    return Err(vllm_client::VllmError::Timeout);
                }
            }
        }
        Ok(content)
    }
    // seed-block-end

    use super::{client, FakeServer, Reply};

    #[tokio::test]
    async fn block7_stream_with_timeout_collects_the_stream() {
        let server = FakeServer::start();
        let c = client(&server);
        let text = stream_with_timeout(&c, "stream me", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(text, "Echo: stream me");
    }
    #[tokio::test]
    async fn block7_gets_the_in_band_error() {
        let server = FakeServer::start();
        server.push(Reply::generate().error_after_tokens(2, "engine died"));
        let c = client(&server);
        let e = stream_with_timeout(&c, "a b c d", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("engine died"), "{e}");
    }
}

#[rustfmt::skip]
mod block8 {
    // seed-block-start
    #![allow(unused)]
    use tokio::sync::Semaphore;
    use std::sync::Arc;
    struct RateLimitedClient {
        client: vllm_client::VllmClient,
        semaphore: Arc<Semaphore>,
    }
    impl RateLimitedClient {
        fn new(base_url: &str, max_concurrent: usize) -> Self {
            Self {
                client: vllm_client::VllmClient::new(base_url),
                semaphore: Arc::new(Semaphore::new(max_concurrent)),
            }
        }
        async fn chat(&self, prompt: &str) -> Result<String, vllm_client::VllmError> {
            let _permit = self.semaphore.acquire().await.unwrap();
            self.client
                .chat
                .completions()
                .create()
                .model("Qwen/Qwen2.5-7B-Instruct")
                .messages(vllm_client::json!([{"role": "user", "content": prompt}]))
                .send()
                .await
                .map(|r| r.content.unwrap_or_default())
        }
    }
    // seed-block-end

    use super::{FakeServer};

    #[tokio::test]
    async fn block8_rate_limited_client() {
        let server = FakeServer::start();
        let c = RateLimitedClient::new(&server.base_url(), 2);
        assert_eq!(c.chat("one").await.unwrap(), "Echo: one");
    }
}

#[rustfmt::skip]
mod block9 {
    // seed-block-start full
    use vllm_client::{VllmClient, json, VllmError};
    use std::time::Duration;
    use tokio::time::sleep;
    struct RobustClient {
        client: VllmClient,
        max_retries: u32,
        base_backoff_ms: u64,
        max_backoff_ms: u64,
    }
    impl RobustClient {
        fn new(base_url: &str, timeout_secs: u64) -> Self {
            Self {
                client: VllmClient::builder()
                    .base_url(base_url)
                    .timeout_secs(timeout_secs)
                    .build(),
                max_retries: 3,
                base_backoff_ms: 100,
                max_backoff_ms: 10_000,
            }
        }
        async fn chat(&self, prompt: &str) -> Result<String, VllmError> {
            let mut attempts = 0;
            loop {
                match self.send_request(prompt).await {
                    Ok(response) => return Ok(response),
                    Err(e) if self.should_retry(&e, attempts) => {
                        attempts += 1;
                        let delay = self.calculate_backoff(attempts);
                        eprintln!("第 {} 次重试,等待 {:?}: {}", attempts, delay, e);
                        sleep(delay).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        async fn send_request(&self, prompt: &str) -> Result<String, VllmError> {
            self.client
                .chat
                .completions()
                .create()
                .model("Qwen/Qwen2.5-7B-Instruct")
                .messages(json!([{"role": "user", "content": prompt}]))
                .send()
                .await
                .map(|r| r.content.unwrap_or_default())
        }
        fn should_retry(&self, error: &VllmError, attempts: u32) -> bool {
            attempts < self.max_retries && error.is_retryable()
        }
        fn calculate_backoff(&self, attempt: u32) -> Duration {
            let delay = self.base_backoff_ms * 2u64.pow(attempt);
            Duration::from_millis(delay.min(self.max_backoff_ms))
        }
    }
    #[tokio::main]
    async fn main() -> Result<(), Box<dyn std::error::Error>> {
        let client = RobustClient::new("http://localhost:8000/v1", 300);
        match client.chat("你好!").await {
            Ok(response) => println!("响应: {}", response),
            Err(e) => eprintln!("重试后仍然失败: {}", e),
        }
        Ok(())
    }
    // seed-block-end

    use super::{FakeServer, Reply};

    #[tokio::test]
    async fn block9_robust_client() {
        let server = FakeServer::start();
        server.push(Reply::vllm_error(502, "bad gateway"));
        let c = RobustClient::new(&server.base_url(), 30);
        assert_eq!(c.chat("你好!").await.unwrap(), "Echo: 你好!");
    }
}

// ---------------------------------------------------------------------------------------------
// The check that the blocks above are the page's text.

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn blocks_are_the_page_verbatim() {
    let page = squash(include_str!("seed/page.txt"));
    let source = include_str!("seed_page.rs");
    let mut blocks = 0;
    let mut rest = source;
    let start_marker = concat!("// seed-block-", "start");
    let end_marker = concat!("// seed-block-", "end");
    while let Some(i) = rest.find(start_marker) {
        let after = &rest[i + start_marker.len()..];
        let (kind, body) = after.split_once('\n').unwrap();
        let j = body.find(end_marker).expect("unterminated block");
        let code = &body[..j];
        let expected = match kind.trim() {
            // Kept exactly as rendered.
            "wrapped" | "full" => squash(code),
            // Items at module level: the page wraps them in `fn main() { … }`.
            _ => {
                let inner = code.trim_start().strip_prefix("#![allow(unused)]").unwrap();
                format!("#![allow(unused)]fnmain(){{{}}}", squash(inner))
            }
        };
        assert!(
            page.contains(&expected),
            "block {} differs from the page:\n{code}",
            blocks + 1
        );
        blocks += 1;
        rest = &body[j..];
    }
    assert_eq!(
        blocks, 9,
        "the page has 8 wrapped blocks and one full example"
    );
    assert_eq!(page.matches("#![allow(unused)]fnmain(){").count(), 8);
}

// ---------------------------------------------------------------------------------------------
// Running against the fake server.

fn client(server: &FakeServer) -> vllm_client::VllmClient {
    // Short backoff so the built-in retries under the page's own loops stay quick.
    vllm_client::VllmClient::builder()
        .base_url(server.base_url())
        .exponential_backoff(
            Duration::from_millis(1),
            Duration::from_millis(5),
            vllm_client::Jitter::Full,
        )
        .build()
}

/// Block 2's `Err(VllmError::Timeout)` arm, against a server slower than the timeout.
#[tokio::test]
async fn chat_with_timeout_shape_matches_timeout() {
    use vllm_client::{json, VllmError};
    let server = FakeServer::start();
    server.push_n(3, Reply::generate().delay(Duration::from_secs(3)));
    let client = vllm_client::VllmClient::builder()
        .base_url(server.base_url())
        .timeout(Duration::from_millis(200))
        .exponential_backoff(
            Duration::from_millis(1),
            Duration::from_millis(2),
            vllm_client::Jitter::None,
        )
        .build();
    let result = client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "slow"}]))
        .send()
        .await;
    match result {
        Err(VllmError::Timeout) => {}
        other => panic!("expected VllmError::Timeout, got {other:?}"),
    }
    assert_eq!(
        server.request_count(),
        3,
        "two retries after the first timeout"
    );
}
