//! The harness: each adapter's API turned into plain synchronous calls, so that every scenario
//! is written once.

use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use vllm_client_core::api::{Chunk, ResponseStreamEvent};
use vllm_client_core::client::{Client, ClientBuilder, Execute, ExecuteExt};
use vllm_client_core::policy::{Jitter, RateLimitSnapshot};
use vllm_client_core::{StreamEvent, VllmError};

/// One adapter, seen synchronously.
pub trait Harness: 'static {
    /// The adapter's executor.
    type E: Execute + ExecuteExt + Send + Sync + 'static;
    /// Whether a dropped leg's pending IO is interrupted at once (async runtimes); a blocking
    /// read is not: the leg is dropped when it returns.
    const INTERRUPTS_IO: bool = true;
    /// Waits for what `send()` returned.
    fn wait<T: Send + 'static>(out: <Self::E as Execute>::Output<T>) -> Result<T, VllmError>;
    /// The next event of a stream.
    fn next(stream: &mut <Self::E as Execute>::Stream) -> Option<StreamEvent>;
    /// The server's rate-limit snapshot a stream carries.
    fn rate_limit(stream: &<Self::E as Execute>::Stream) -> Option<RateLimitSnapshot>;
    /// The next item of a result-shaped chunk stream.
    fn next_chunk(stream: &mut <Self::E as ExecuteExt>::Chunks)
        -> Option<Result<Chunk, VllmError>>;
    /// The next item of a Responses stream.
    fn next_response_event(
        stream: &mut <Self::E as ExecuteExt>::Responses,
    ) -> Option<Result<ResponseStreamEvent, VllmError>>;

    /// Every item of a chunk stream until its end (bounded).
    fn collect_chunks(
        mut stream: <Self::E as ExecuteExt>::Chunks,
    ) -> Vec<Result<Chunk, VllmError>> {
        let mut items = Vec::new();
        while let Some(item) = Self::next_chunk(&mut stream) {
            items.push(item);
            assert!(items.len() < 10_000, "the stream does not end");
        }
        items
    }

    /// Every item of a Responses stream until its end (bounded).
    fn collect_response_events(
        mut stream: <Self::E as ExecuteExt>::Responses,
    ) -> Vec<Result<ResponseStreamEvent, VllmError>> {
        let mut items = Vec::new();
        while let Some(item) = Self::next_response_event(&mut stream) {
            items.push(item);
            assert!(items.len() < 10_000, "the stream does not end");
        }
        items
    }

    /// The HTTP client the adapter needs given (the tower adapter has no default one).
    fn http_client() -> Option<<Self::E as Execute>::HttpClient> {
        None
    }

    /// A builder for `base_url` with test-sized timings: fast backoff, no retry budget.
    fn builder(base_url: &str) -> ClientBuilder<Self::E> {
        // Logs with `RUST_LOG=warn` (or finer), shown for failing tests.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let builder = Client::<Self::E>::builder()
            .base_url(base_url)
            .exponential_backoff(
                Duration::from_millis(20),
                Duration::from_millis(60),
                Jitter::Full,
            )
            .retry_budget(None)
            .timeout(Duration::from_secs(20))
            .seed(7);
        match Self::http_client() {
            Some(http) => builder.http_client(http),
            None => builder,
        }
    }

    /// Every event of a stream until its end (bounded, so a hot loop of errors fails the test
    /// instead of hanging it).
    fn collect(mut stream: <Self::E as Execute>::Stream) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        while let Some(ev) = Self::next(&mut stream) {
            events.push(ev);
            assert!(events.len() < 10_000, "the stream does not end");
        }
        events
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// tokio + reqwest, through a shared runtime's `block_on`.
pub struct TokioH;

impl Harness for TokioH {
    type E = vllm_client_tokio::Tokio;
    fn wait<T: Send + 'static>(out: <Self::E as Execute>::Output<T>) -> Result<T, VllmError> {
        runtime().block_on(out)
    }
    fn next(stream: &mut <Self::E as Execute>::Stream) -> Option<StreamEvent> {
        runtime().block_on(stream.next())
    }
    fn rate_limit(stream: &<Self::E as Execute>::Stream) -> Option<RateLimitSnapshot> {
        stream.rate_limit().copied()
    }
    fn next_chunk(
        stream: &mut <Self::E as ExecuteExt>::Chunks,
    ) -> Option<Result<Chunk, VllmError>> {
        runtime().block_on(stream.next())
    }
    fn next_response_event(
        stream: &mut <Self::E as ExecuteExt>::Responses,
    ) -> Option<Result<ResponseStreamEvent, VllmError>> {
        runtime().block_on(stream.next())
    }
}

/// async-std + surf, through `async_std::task::block_on`.
pub struct AsyncStdH;

impl Harness for AsyncStdH {
    type E = vllm_client_async_std::AsyncStd;
    fn wait<T: Send + 'static>(out: <Self::E as Execute>::Output<T>) -> Result<T, VllmError> {
        async_std::task::block_on(out)
    }
    fn next(stream: &mut <Self::E as Execute>::Stream) -> Option<StreamEvent> {
        async_std::task::block_on(stream.next())
    }
    fn rate_limit(stream: &<Self::E as Execute>::Stream) -> Option<RateLimitSnapshot> {
        stream.rate_limit().copied()
    }
    fn next_chunk(
        stream: &mut <Self::E as ExecuteExt>::Chunks,
    ) -> Option<Result<Chunk, VllmError>> {
        async_std::task::block_on(stream.next())
    }
    fn next_response_event(
        stream: &mut <Self::E as ExecuteExt>::Responses,
    ) -> Option<Result<ResponseStreamEvent, VllmError>> {
        async_std::task::block_on(stream.next())
    }
}

/// The blocking client, as it is.
pub struct BlockingH;

impl Harness for BlockingH {
    type E = vllm_client_blocking::Blocking;
    const INTERRUPTS_IO: bool = false;
    fn wait<T: Send + 'static>(out: <Self::E as Execute>::Output<T>) -> Result<T, VllmError> {
        out
    }
    fn next(stream: &mut <Self::E as Execute>::Stream) -> Option<StreamEvent> {
        stream.next()
    }
    fn rate_limit(stream: &<Self::E as Execute>::Stream) -> Option<RateLimitSnapshot> {
        stream.rate_limit().copied()
    }
    fn next_chunk(
        stream: &mut <Self::E as ExecuteExt>::Chunks,
    ) -> Option<Result<Chunk, VllmError>> {
        stream.next()
    }
    fn next_response_event(
        stream: &mut <Self::E as ExecuteExt>::Responses,
    ) -> Option<Result<ResponseStreamEvent, VllmError>> {
        stream.next()
    }
}

/// hyper-util's client as a tower service (the request body mapped to `Full<Bytes>`).
pub type HyperService = tower::util::MapRequest<
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    fn(http::Request<bytes::Bytes>) -> http::Request<http_body_util::Full<bytes::Bytes>>,
>;

/// The tower adapter over hyper-util's client, on the shared tokio runtime.
pub struct TowerH;

impl Harness for TowerH {
    type E = vllm_client_tower::TowerExec<HyperService>;
    fn http_client() -> Option<HyperService> {
        let hyper =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let to_full: fn(
            http::Request<bytes::Bytes>,
        ) -> http::Request<http_body_util::Full<bytes::Bytes>> =
            |r| r.map(http_body_util::Full::new);
        Some(
            tower::ServiceBuilder::new()
                .map_request(to_full)
                .service(hyper),
        )
    }
    fn wait<T: Send + 'static>(out: <Self::E as Execute>::Output<T>) -> Result<T, VllmError> {
        runtime().block_on(out)
    }
    fn next(stream: &mut <Self::E as Execute>::Stream) -> Option<StreamEvent> {
        runtime().block_on(stream.next())
    }
    fn rate_limit(stream: &<Self::E as Execute>::Stream) -> Option<RateLimitSnapshot> {
        stream.rate_limit().copied()
    }
    fn next_chunk(
        stream: &mut <Self::E as ExecuteExt>::Chunks,
    ) -> Option<Result<Chunk, VllmError>> {
        runtime().block_on(stream.next())
    }
    fn next_response_event(
        stream: &mut <Self::E as ExecuteExt>::Responses,
    ) -> Option<Result<ResponseStreamEvent, VllmError>> {
        runtime().block_on(stream.next())
    }
}
