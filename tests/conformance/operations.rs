//! Scenarios of every operation beyond chat and completions — Responses (JSON, its typed
//! stream, store, background, cancel), rerank, score, classify, pooling, base64 embeddings,
//! audio, LoRA, `client.request(…)`, the result-shaped chunk stream, a tool-calling loop —
//! each through the same policies: a 503 retried, a cut stream, a 400 not retried. Plus
//! per-request options, derived clients sharing the breaker, and errors that keep their cause.

use std::error::Error as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vllm_client_core::api::{
    ClassifyRequest, ContentPart, EmbeddingRequest, InputItem, LoadLoraAdapterRequest, Message,
    OutputItem, PoolingRequest, RerankApi, RerankRequest, ResponseStreamEvent, ScoreRequest, Tool,
    ToolChoice, UnloadLoraAdapterRequest,
};
use vllm_client_core::client::{CallOptions, Client, Json};
use vllm_client_core::http::Method;
use vllm_client_core::policy::{BreakerConfig, SlidingWindow};
use vllm_client_core::{StreamEvent, VllmError};
use vllm_testkit::server::{free_port_url, FakeServer, Part, Reply};

use crate::harness::Harness;

const RESPONSES: &str = "/v1/responses";
const MARGIN: Duration = Duration::from_millis(1500);

fn client<H: Harness>(server: &FakeServer) -> Client<H::E> {
    H::builder(&server.base_url()).build()
}

fn text_of(events: &[Result<ResponseStreamEvent, VllmError>]) -> String {
    events
        .iter()
        .filter_map(|e| e.as_ref().ok().and_then(|e| e.text_delta()))
        .collect()
}

/// The last item, checking that it alone ends the stream: `Completed`/`Incomplete` or `Err`.
fn last_event(
    events: &[Result<ResponseStreamEvent, VllmError>],
) -> &Result<ResponseStreamEvent, VllmError> {
    let last = events.last().expect("events");
    let terminal = |e: &Result<ResponseStreamEvent, VllmError>| match e {
        Ok(ev) => ev.is_terminal(),
        Err(_) => true,
    };
    assert_eq!(
        events.iter().filter(|e| terminal(e)).count(),
        1,
        "exactly one terminal item: {events:?}"
    );
    assert!(terminal(last), "the terminal item is last: {events:?}");
    last
}

// ----- Responses ----------------------------------------------------------------------------

pub fn responses_create_retrieve_and_cancel<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let r = H::wait(c.responses().create().model("m").input("hi there").send()).expect("create");
    assert_eq!(r.output_text(), "Echo: hi there");
    assert_eq!(r.status, "completed");
    assert!(r.id.starts_with("resp_"), "{}", r.id);
    assert!(r.usage.as_ref().expect("usage").output_tokens > 0);
    let seen = server.last_request().expect("a request");
    assert_eq!(seen.path, RESPONSES);
    assert_eq!(seen.json.as_ref().expect("json")["stream"], false);

    let again = H::wait(c.responses().retrieve(&r.id)).expect("retrieve");
    assert_eq!(again.output_text(), r.output_text());
    assert_eq!(server.last_request().expect("a request").method, "GET");

    // A synchronous response cannot be cancelled: a 400, never retried.
    let before = server.request_count();
    let e = H::wait(c.responses().cancel(&r.id)).unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert_eq!(server.request_count(), before + 1);
    // An unknown id: a 404 (and its id is percent-encoded into one path segment).
    let e = H::wait(c.responses().retrieve("no such/id")).unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(404), "{e}");
    assert_eq!(
        server.last_request().expect("a request").path,
        "/v1/responses/no%20such%2Fid"
    );
}

pub fn responses_background_poll_and_cancel<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let queued = H::wait(
        c.responses()
            .create()
            .model("m")
            .input("later")
            .background(true)
            .send(),
    )
    .expect("create");
    assert_eq!(queued.status, "queued");
    assert!(!queued.is_done());
    let first = H::wait(c.responses().retrieve(&queued.id)).expect("poll");
    assert_eq!(first.status, "in_progress");
    let done = H::wait(c.responses().retrieve(&queued.id)).expect("poll");
    assert!(done.is_done());
    assert_eq!(done.output_text(), "Echo: later");
    let cancelled = H::wait(c.responses().cancel(&queued.id)).expect("cancel");
    assert_eq!(cancelled.status, "cancelled");
}

pub fn responses_stream_typed_events<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let s = H::wait(
        c.responses()
            .create()
            .model("m")
            .input(vec![InputItem::message("user", "one two three")])
            .send_stream(),
    )
    .expect("stream");
    let events = H::collect_response_events(s);
    let last = last_event(&events);
    let Ok(ResponseStreamEvent::Completed { response, .. }) = last else {
        panic!("expected Completed, got {last:?}");
    };
    assert_eq!(text_of(&events), "Echo: one two three");
    assert_eq!(response.output_text(), "Echo: one two three");
    assert!(matches!(events[0], Ok(ResponseStreamEvent::Created { .. })));
    // Numbered from 0, strictly increasing, none missing.
    let numbers: Vec<u64> = events
        .iter()
        .map(|e| e.as_ref().expect("ok").sequence_number().expect("numbered"))
        .collect();
    assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>());
    let seen = server.last_request().expect("a request");
    assert_eq!(seen.json.as_ref().expect("json")["stream"], true);
    assert_eq!(seen.header("accept"), Some("text/event-stream"));
}

pub fn responses_stream_503_retried<H: Harness>() {
    let server = FakeServer::start();
    server.push_for(RESPONSES, Reply::vllm_error(503, "warming up"));
    let c = client::<H>(&server);
    let s = H::wait(c.responses().create().model("m").input("hi").send_stream()).expect("stream");
    let events = H::collect_response_events(s);
    assert!(matches!(
        last_event(&events),
        Ok(ResponseStreamEvent::Completed { .. })
    ));
    assert_eq!(text_of(&events), "Echo: hi");
    assert_eq!(server.request_count(), 2);
}

pub fn responses_stream_cut_is_an_error_not_retried<H: Harness>() {
    let server = FakeServer::start();
    // A token delay, so that the first events reach the caller before the cut (a cut before
    // any output would be retried).
    server.push_for(
        RESPONSES,
        Reply::generate()
            .token_delay(Duration::from_millis(50))
            .cut_after_tokens(1),
    );
    let c = client::<H>(&server);
    let s = H::wait(
        c.responses()
            .create()
            .model("m")
            .input("a b c d")
            .send_stream(),
    )
    .expect("stream");
    let events = H::collect_response_events(s);
    assert!(
        matches!(last_event(&events), Err(VllmError::Truncated)),
        "{events:?}"
    );
    assert_eq!(text_of(&events), "Echo:", "the text that came, once");
    // Output had reached the caller: never retried (a retry would duplicate it).
    assert_eq!(server.request_count(), 1);
}

pub fn responses_stream_error_event_and_missing_terminal<H: Harness>() {
    let server = FakeServer::start();
    server.push_for(
        RESPONSES,
        Reply::generate()
            .token_delay(Duration::from_millis(50))
            .error_after_tokens(1, "engine died"),
    );
    let c = client::<H>(&server);
    let s = H::wait(c.responses().create().model("m").input("x y").send_stream()).expect("stream");
    let events = H::collect_response_events(s);
    match last_event(&events) {
        Err(e) => {
            assert!(e.to_string().contains("engine died"), "{e}");
            assert_eq!(
                e.api_error().expect("api").code.as_deref(),
                Some("internal_error")
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // A body that ends cleanly without response.completed: never a silent success.
    server.push_for(
        RESPONSES,
        Reply::generate()
            .token_delay(Duration::from_millis(50))
            .without_done(),
    );
    let s = H::wait(c.responses().create().model("m").input("x y").send_stream()).expect("stream");
    let events = H::collect_response_events(s);
    assert!(
        matches!(last_event(&events), Err(VllmError::Truncated)),
        "{events:?}"
    );
}

pub fn responses_replayed_events_are_not_handed_out_twice<H: Harness>() {
    let server = FakeServer::start();
    let resp = |status: &str| json!({"id": "resp_x", "model": "m", "status": status, "output": []});
    let delta = |n: u64, text: &str| {
        Part::named_event(
            "response.output_text.delta",
            &json!({"type": "response.output_text.delta", "sequence_number": n, "item_id": "msg",
                "output_index": 0, "content_index": 0, "delta": text}),
        )
    };
    server.push_for(
        RESPONSES,
        Reply::sse([
            Part::named_event(
                "response.created",
                &json!({"type": "response.created", "sequence_number": 0, "response": resp("in_progress")}),
            ),
            delta(1, "a"),
            delta(2, "b"),
            delta(2, "b"),
            delta(1, "a"),
            delta(3, "c"),
            Part::named_event(
                "response.completed",
                &json!({"type": "response.completed", "sequence_number": 4, "response": resp("completed")}),
            ),
        ]),
    );
    let c = client::<H>(&server);
    let s = H::wait(c.responses().create().model("m").input("x").send_stream()).expect("stream");
    let events = H::collect_response_events(s);
    assert_eq!(text_of(&events), "abc");
    assert!(matches!(
        last_event(&events),
        Ok(ResponseStreamEvent::Completed { .. })
    ));
}

/// A background Responses stream cut at every byte — by a FIN, a reset or a body that ends
/// before its terminal event — is resumed after its last numbered event
/// (`GET /v1/responses/{id}?stream=true&starting_after=N`): the caller reads the whole text
/// once, and a stream cut before any event is simply retried.
pub fn responses_stream_cut_at_every_byte_is_resumed<H: Harness>() {
    let server = FakeServer::start();
    let resp = |status: &str| json!({"id": "resp_x", "model": "m", "status": status, "output": []});
    let event = |kind: &str, n: u64, extra: Value| {
        let mut v = json!({"type": kind, "sequence_number": n});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        format!("event: {kind}\ndata: {v}\n\n")
    };
    let mut all = vec![event(
        "response.created",
        0,
        json!({"response": resp("in_progress")}),
    )];
    for (i, t) in ["a", "bc", "d"].iter().enumerate() {
        all.push(event(
            "response.output_text.delta",
            i as u64 + 1,
            json!({"item_id": "msg", "output_index": 0, "content_index": 0, "delta": t}),
        ));
    }
    all.push(event(
        "response.completed",
        4,
        json!({"response": resp("completed")}),
    ));
    let whole = all.concat();
    let c = H::builder(&server.base_url())
        .exponential_backoff(
            Duration::from_millis(1),
            Duration::from_millis(1),
            vllm_client_core::policy::Jitter::None,
        )
        .build();
    for at in 0..=whole.len() {
        let complete = whole.as_bytes()[..at]
            .windows(2)
            .filter(|w| w == b"\n\n")
            .count();
        let mut parts = vec![Part::bytes(whole.as_bytes()[..at].to_vec())];
        match at % 3 {
            0 => parts.push(Part::Cut),
            1 => parts.push(Part::Reset),
            _ => {} // the body ends cleanly, before its terminal event
        }
        server.push_for(RESPONSES, Reply::sse(parts));
        let rest = all[complete.min(all.len())..].concat();
        match complete {
            0 => server.push_for(RESPONSES, Reply::stream_bytes(rest)),
            n if n < all.len() => {
                server.push_for("/v1/responses/resp_x", Reply::stream_bytes(rest))
            }
            _ => {}
        }
        let before = server.request_count();
        let s = H::wait(
            c.responses()
                .create()
                .model("m")
                .input("x")
                .background(true)
                .store(true)
                .send_stream(),
        )
        .expect("stream");
        let events = H::collect_response_events(s);
        assert_eq!(text_of(&events), "abcd", "cut at byte {at}: {events:?}");
        assert!(
            matches!(
                last_event(&events),
                Ok(ResponseStreamEvent::Completed { .. })
            ),
            "cut at byte {at}: {events:?}"
        );
        let sent = server.request_count() - before;
        let last = server.last_request().expect("a request");
        match complete {
            0 => assert_eq!(
                (sent, last.method.as_str()),
                (2, "POST"),
                "cut at byte {at}"
            ),
            n if n < all.len() => {
                assert_eq!(sent, 2, "cut at byte {at}");
                assert_eq!(
                    (last.method.as_str(), last.path.as_str()),
                    ("GET", "/v1/responses/resp_x")
                );
                let query = format!("stream=true&starting_after={}", n - 1);
                assert_eq!(
                    last.query.as_deref(),
                    Some(query.as_str()),
                    "cut at byte {at}"
                );
            }
            _ => assert_eq!(sent, 1, "cut at byte {at}"),
        }
    }
}

/// The fake server keeps a streamed background response's events, as vLLM does: a stream cut
/// (or stalled) after its first tokens is resumed from where it stopped, and reads as if it
/// had never been cut.
pub fn responses_background_stream_resumes_on_the_fake_server<H: Harness>() {
    let server = FakeServer::start();
    let whole = {
        let c = client::<H>(&server);
        let s = H::wait(
            c.responses()
                .create()
                .model("m")
                .input("a b c d e")
                .send_stream(),
        )
        .expect("stream");
        text_of(&H::collect_response_events(s))
    };
    assert!(whole.len() > 8, "{whole:?}");
    for reply in [
        Reply::generate()
            .token_delay(Duration::from_millis(20))
            .cut_after_tokens(2),
        Reply::generate()
            .token_delay(Duration::from_millis(20))
            .stall_after_tokens(3, Duration::from_secs(30)),
    ] {
        server.push_for(RESPONSES, reply);
        let c = H::builder(&server.base_url())
            .idle_timeout(Duration::from_millis(300))
            .build();
        let before = server.request_count();
        let s = H::wait(
            c.responses()
                .create()
                .model("m")
                .input("a b c d e")
                .background(true)
                .store(true)
                .send_stream(),
        )
        .expect("stream");
        let events = H::collect_response_events(s);
        assert_eq!(text_of(&events), whole, "{events:?}");
        assert!(matches!(
            last_event(&events),
            Ok(ResponseStreamEvent::Completed { .. })
        ));
        let requests = server.requests();
        let resumed = &requests[before + 1];
        assert_eq!(resumed.method, "GET");
        assert!(
            resumed.path.starts_with("/v1/responses/resp_"),
            "{}",
            resumed.path
        );
        assert!(
            resumed
                .query
                .as_deref()
                .is_some_and(|q| q.starts_with("stream=true&starting_after=")),
            "{:?}",
            resumed.query
        );
        assert_eq!(server.request_count() - before, 2);
    }
}

pub fn responses_400_not_retried<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    // No input: vLLM's 400, never retried.
    let e = H::wait(c.responses().send_json(&json!({"model": "m"}))).unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(server.request_count(), 1);
}

pub fn responses_tool_calling_loop<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let weather = Tool::function(
        "get_weather",
        "The weather in a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    );
    let first = H::wait(
        c.responses()
            .create()
            .model("m")
            .input("Paris")
            .tool(&weather)
            .send(),
    )
    .expect("first turn");
    let call = first.function_calls().next().expect("a function call");
    let OutputItem::FunctionCall {
        call_id,
        name,
        arguments,
        ..
    } = call
    else {
        unreachable!()
    };
    assert_eq!(name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(arguments).expect("json"),
        json!({"city": "Paris"})
    );
    let sent = server.last_request().expect("a request");
    assert_eq!(
        sent.json.as_ref().expect("json")["tools"][0]["name"],
        "get_weather"
    );
    let second = H::wait(
        c.responses()
            .create()
            .model("m")
            .input(vec![
                InputItem::message("user", "Paris"),
                InputItem::from_output(call),
                InputItem::function_call_output(call_id.clone(), "21 C"),
            ])
            .tool(&weather)
            .send(),
    )
    .expect("second turn");
    assert_eq!(second.output_text(), "Tool said: 21 C");
}

// ----- rerank, score, classify, pooling, embeddings -----------------------------------------

pub fn rerank_orders_documents_on_every_path<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let docs = [
        "Berlin is in Germany",
        "Paris is the capital of France",
        "capital cities",
    ];
    let r = H::wait(c.rerank(RerankRequest::new("rr", "capital of France", docs))).expect("rerank");
    assert_eq!(r.ranking(), vec![1, 2, 0]);
    assert_eq!(r.results[0].relevance_score, 1.0);
    assert_eq!(
        r.results[0]
            .document
            .as_ref()
            .and_then(|d| d.text.as_deref()),
        Some(docs[1])
    );
    assert_eq!(server.last_request().expect("req").path, "/v1/rerank");
    for (api, path) in [(RerankApi::V2, "/v2/rerank"), (RerankApi::Root, "/rerank")] {
        let mut req = RerankRequest::new("rr", "capital of France", docs);
        req.top_n = Some(1);
        let r = H::wait(c.rerank_at(api, req)).expect("rerank");
        assert_eq!(r.ranking(), vec![1]);
        assert_eq!(server.last_request().expect("req").path, path);
    }
    // A 503 is retried, a 400 is not.
    server.push_for("/v1/rerank", Reply::vllm_error(503, "busy"));
    let before = server.request_count();
    H::wait(c.rerank(RerankRequest::new("rr", "q", ["a"]))).expect("retried");
    assert_eq!(server.request_count(), before + 2);
    let before = server.request_count();
    let e = H::wait(c.rerank(RerankRequest::new("rr", "q", Vec::<String>::new()))).unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert_eq!(server.request_count(), before + 1);
}

pub fn score_classify_pooling<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let s = H::wait(c.score(ScoreRequest::new(
        "m",
        "capital of France",
        json!(["Paris is the capital of France", "nothing"]),
    )))
    .expect("score");
    assert_eq!(s.data.len(), 2);
    assert_eq!((s.data[0].score, s.data[1].score), (1.0, 0.0));
    assert_eq!(server.last_request().expect("req").path, "/score");
    let k =
        H::wait(c.classify(ClassifyRequest::new("m", json!(["good", "bad"])))).expect("classify");
    assert_eq!(k.data.len(), 2);
    assert!(k
        .data
        .iter()
        .all(|d| (d.probs.iter().sum::<f64>() - 1.0).abs() < 1e-9));
    assert!(k.data[0].label.is_some());
    let mut req = PoolingRequest::new("m", "hello");
    req.encoding_format = Some("base64".into());
    let p = H::wait(c.pooling(req)).expect("pooling");
    let floats = p.data[0].data.floats().expect("float32 base64");
    let e = H::wait(c.embeddings(EmbeddingRequest::new("m", "hello"))).expect("embeddings");
    assert_eq!(
        floats, e.data[0].embedding,
        "pooling = the embedding, base64 decoded"
    );
    // A 400 is not retried.
    let before = server.request_count();
    let e = H::wait(c.classify(ClassifyRequest::new("m", json!(3)))).unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(server.request_count(), before + 1);
}

pub fn embeddings_base64_and_dimensions<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let floats =
        H::wait(c.embeddings(EmbeddingRequest::new("m", json!(["a", "b"])))).expect("float");
    let b64 =
        H::wait(c.embeddings(EmbeddingRequest::new("m", json!(["a", "b"])).base64())).expect("b64");
    assert_eq!(
        server.last_request().expect("req").json.expect("json")["encoding_format"],
        "base64"
    );
    assert_eq!(floats.data, b64.data, "the same vectors either way");
    let small = H::wait(c.embeddings(EmbeddingRequest::new("m", "a").base64().dimensions(4)))
        .expect("dimensions");
    assert_eq!(small.data[0].embedding.len(), 4);
}

// ----- audio --------------------------------------------------------------------------------

pub fn audio_transcription_and_translation<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let speech = &b"hello world from the speaker"[..];
    let t = H::wait(
        c.audio()
            .transcription("whisper", speech, "speech.wav", "audio/wav")
            .language("en")
            .send(),
    )
    .expect("transcription");
    assert_eq!(t.text, "hello world from the speaker");
    let seen = server.last_request().expect("req");
    assert_eq!(seen.path, "/v1/audio/transcriptions");
    assert!(seen
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("multipart/form-data; boundary=")));
    let text = H::wait(
        c.audio()
            .translation("whisper", speech, "speech.wav", "audio/wav")
            .response_format("text")
            .send_text(),
    )
    .expect("translation");
    assert_eq!(text, "Translation: hello world from the speaker");
    // send() with a text format is refused before anything is sent.
    let before = server.request_count();
    let e = H::wait(
        c.audio()
            .transcription("whisper", speech, "a.wav", "audio/wav")
            .response_format("srt")
            .send(),
    )
    .unwrap_err();
    assert!(matches!(e, VllmError::InvalidRequest(_)), "{e}");
    assert_eq!(server.request_count(), before);
    // Verbose JSON.
    let v = H::wait(
        c.audio()
            .transcription("whisper", speech, "a.wav", "audio/wav")
            .response_format("verbose_json")
            .send(),
    )
    .expect("verbose");
    assert_eq!(v.segments.len(), 1);
}

pub fn audio_stream_and_retry_resends_the_same_upload<H: Harness>() {
    let server = FakeServer::start();
    server.push_for("/v1/audio/transcriptions", Reply::vllm_error(503, "busy"));
    let c = client::<H>(&server);
    let s = H::wait(
        c.audio()
            .transcription("whisper", &b"one two three"[..], "a.wav", "audio/wav")
            .send_stream(),
    )
    .expect("stream");
    let events = H::collect(s);
    assert!(
        matches!(events.last(), Some(StreamEvent::Done)),
        "{events:?}"
    );
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Content(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "one two three");
    let r = server.requests();
    assert_eq!(r.len(), 2, "the 503 was retried");
    assert_eq!(
        r[0].body, r[1].body,
        "the retry sends the same multipart body"
    );
    assert!(String::from_utf8_lossy(&r[1].body).contains("name=\"stream\"\r\n\r\ntrue"));
    // The chunk view of a cut stream ends with one error.
    server.push_for(
        "/v1/audio/transcriptions",
        Reply::generate()
            .token_delay(Duration::from_millis(50))
            .cut_after_tokens(1),
    );
    let s = H::wait(
        c.audio()
            .transcription("whisper", &b"one two three"[..], "a.wav", "audio/wav")
            .send_chunks(),
    )
    .expect("chunks");
    let items = H::collect_chunks(s);
    assert!(
        matches!(items.last(), Some(Err(VllmError::Truncated))),
        "{items:?}"
    );
    assert_eq!(items.iter().filter(|i| i.is_err()).count(), 1);
}

// ----- LoRA and client.request ----------------------------------------------------------------

pub fn lora_load_and_unload<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let said = H::wait(c.load_lora_adapter(LoadLoraAdapterRequest::new("sql", "/adapters/sql")))
        .expect("load");
    assert!(said.starts_with("Success"), "{said}");
    let models = H::wait(c.models()).expect("models");
    assert!(models.data.iter().any(|m| m.id == "sql"));
    let before = server.request_count();
    let e = H::wait(c.load_lora_adapter(LoadLoraAdapterRequest::new("sql", "/adapters/sql")))
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert_eq!(server.request_count(), before + 1, "a 400 is not retried");
    H::wait(c.unload_lora_adapter(UnloadLoraAdapterRequest::new("sql"))).expect("unload");
    let e = H::wait(c.unload_lora_adapter(UnloadLoraAdapterRequest::new("sql"))).unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(404), "{e}");
}

pub fn custom_request_json_bytes_and_stream<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let v: Value = H::wait(
        c.request(Method::POST, "/v1/chat/completions")
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .send(),
    )
    .expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hi");
    let metrics: String = H::wait(c.request(Method::GET, "/metrics").send()).expect("text");
    assert!(metrics.contains("vllm:num_requests_running"));
    let version: Json<vllm_client_core::api::Version> =
        H::wait(c.request(Method::GET, "version").send()).expect("typed");
    assert_eq!(version.0.version, "0.11.0-fake");
    // A raw multipart body through the escape hatch.
    let form = vllm_client_core::api::Multipart::new()
        .text("model", "w")
        .file("file", "a.wav", "audio/wav", &b"raw words"[..]);
    let t: Json<vllm_client_core::api::Transcription> = H::wait(
        c.request(Method::POST, "/v1/audio/transcriptions")
            .multipart(form)
            .send(),
    )
    .expect("multipart");
    assert_eq!(t.0.text, "raw words");
    // Streamed, retried after a 503, and a 404 not retried.
    server.push_for("/v1/chat/completions", Reply::vllm_error(503, "busy"));
    let s = H::wait(
        c.request(Method::POST, "/v1/chat/completions")
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "yo"}]}))
            .send_stream(),
    )
    .expect("stream");
    assert_eq!(crate::scenarios::content(&H::collect(s)), "Echo: yo");
    let before = server.request_count();
    let e = H::wait(c.request(Method::GET, "/v1/nothing").send::<Value>()).unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(server.request_count(), before + 1);
    // A path that cannot be part of a URL is refused before sending.
    let e = H::wait(c.request(Method::GET, "/a b").send::<Value>()).unwrap_err();
    assert!(matches!(e, VllmError::InvalidRequest(_)), "{e}");
}

// ----- chat: chunks, typed messages, tools, structured output ------------------------------

pub fn chat_chunks_carry_id_model_and_logprobs<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(vec![Message::user("a b")])
            .include_usage(true)
            .send_chunks(),
    )
    .expect("chunks");
    let chunks: Vec<_> = H::collect_chunks(s)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("all ok");
    assert!(chunks
        .iter()
        .all(|c| c.id.starts_with("chatcmpl-") && c.model == "m"));
    let text: String = chunks.iter().filter_map(|c| c.content()).collect();
    assert_eq!(text, "Echo: a b");
    assert!(chunks.iter().any(|c| c.finish_reason() == Some("stop")));
    assert!(chunks.last().expect("a chunk").usage.is_some());
    // Log probabilities arrive as sent.
    server.push_for(
        "/v1/chat/completions",
        Reply::sse([
            Part::event(&json!({"id": "c1", "model": "m", "choices": [{"index": 0,
                "delta": {"content": "Hi"}, "logprobs": {"content": [{"token": "Hi",
                "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}]}, "finish_reason": "stop"}]})),
            Part::done(),
        ]),
    );
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(vec![Message::user("x")])
            .logprobs(true)
            .send_chunks(),
    )
    .expect("chunks");
    let items = H::collect_chunks(s);
    let chunk = items[0].as_ref().expect("ok");
    let lp = chunk.choices[0].logprobs.as_ref().expect("logprobs");
    assert_eq!(lp.content.as_ref().expect("content")[0].logprob, -0.5);
    // An in-band error ends the chunks with one Err.
    server.push_for(
        "/v1/chat/completions",
        Reply::generate()
            .token_delay(Duration::from_millis(50))
            .error_after_tokens(1, "boom"),
    );
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(vec![Message::user("x y")])
            .send_chunks(),
    )
    .expect("chunks");
    let items = H::collect_chunks(s);
    assert!(
        matches!(items.last(), Some(Err(VllmError::Api(_)))),
        "{items:?}"
    );
}

pub fn chat_tool_calling_loop_with_typed_messages<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let weather = Tool::function(
        "get_weather",
        "The weather in a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    );
    let mut messages = vec![
        Message::system("Use the tools."),
        Message::user(vec![
            ContentPart::text("Oslo"),
            ContentPart::image_data("image/png", &[0x89, b'P', b'N', b'G']),
        ]),
    ];
    let first = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(messages.clone())
            .tools(vec![weather.clone()])
            .tool_choice(ToolChoice::Auto)
            .send(),
    )
    .expect("first turn");
    assert_eq!(first.finish_reason.as_deref(), Some("tool_calls"));
    let call = first.tool_calls[0].clone();
    assert_eq!(
        call.arguments_json().expect("json"),
        json!({"city": "Oslo"})
    );
    let sent = server.last_request().expect("req").json.expect("json");
    assert_eq!(
        sent["messages"][1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBORw=="
    );
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    messages.push(first.to_message());
    messages.push(Message::tool(&call.id, "-3 C"));
    let second = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(messages)
            .tools(vec![weather.clone()])
            .send(),
    )
    .expect("second turn");
    assert_eq!(second.content.as_deref(), Some("Tool said: -3 C"));
    let sent = server.last_request().expect("req").json.expect("json");
    assert_eq!(sent["messages"][2]["tool_calls"][0]["id"], call.id);
    assert!(sent["messages"][2]["tool_calls"][0].get("index").is_none());
    // Streamed, the call arrives assembled.
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(vec![Message::user("Rome")])
            .tool(weather)
            .send_stream(),
    )
    .expect("stream");
    let events = H::collect(s);
    let call = events
        .iter()
        .find_map(|e| match e {
            StreamEvent::ToolCall(c) => Some(c.clone()),
            _ => None,
        })
        .expect("an assembled call");
    assert_eq!(
        call.arguments_json().expect("json"),
        json!({"city": "Rome"})
    );
}

pub fn send_json_of_your_own_body<H: Harness>() {
    #[derive(serde::Serialize)]
    struct MyRequest<'a> {
        model: &'a str,
        messages: Vec<Message>,
        max_tokens: u32,
        stream: bool,
    }
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let body = MyRequest {
        model: "m",
        messages: vec![Message::user("mine")],
        max_tokens: 16,
        stream: true,
    };
    let r = H::wait(c.chat.completions().send_json(&body)).expect("send_json");
    assert_eq!(r.content.as_deref(), Some("Echo: mine"));
    assert_eq!(
        server.last_request().expect("req").json.expect("json")["stream"],
        false
    );
    let s = H::wait(c.chat.completions().send_json_stream(&body)).expect("stream");
    assert_eq!(crate::scenarios::content(&H::collect(s)), "Echo: mine");
}

// ----- per-request options, derived clients, causes -----------------------------------------

pub fn per_request_options_change_only_that_request<H: Harness>() {
    let server = FakeServer::start();
    let c = H::builder(&server.base_url())
        .timeout(Duration::from_secs(20))
        .build();
    // A slow answer: the request's own timeout fires, the client's would not.
    server.push_for(
        "/v1/chat/completions",
        Reply::generate().delay(Duration::from_secs(3)),
    );
    let t0 = Instant::now();
    let e = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(vec![Message::user("x")])
            .timeout(Duration::from_millis(300))
            .max_retries(0)
            .send(),
    )
    .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(t0.elapsed() < Duration::from_millis(300) + MARGIN);
    server.clear_replies();
    // max_retries(0) on the request: a 503 is not retried; headers and the idempotency key
    // go with it.
    server.push_for("/v1/chat/completions", Reply::vllm_error(503, "busy"));
    let before = server.request_count();
    let e = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(vec![Message::user("x")])
            .options(CallOptions::new().max_retries(0).request_id("req-1"))
            .header("x-tenant", "acme")
            .send(),
    )
    .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(server.request_count(), before + 1);
    let seen = server.last_request().expect("req");
    assert_eq!(seen.header("x-request-id"), Some("req-1"));
    assert_eq!(seen.header("x-tenant"), Some("acme"));
    // The idempotency key is the same on every retry of the call.
    server.push_for("/v1/chat/completions", Reply::vllm_error(503, "busy"));
    let before = server.request_count();
    H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(vec![Message::user("x")])
            .idempotency_key("order-42")
            .send(),
    )
    .expect("retried");
    let r = server.requests();
    assert_eq!(r.len(), before + 2);
    for req in &r[before..] {
        assert_eq!(req.header("idempotency-key"), Some("order-42"));
    }
    // A client with options: every call gets them; the options stay on this client.
    let tenant = c.with_options(CallOptions::new().header("x-tenant", "beta"));
    H::wait(tenant.embeddings(EmbeddingRequest::new("m", "a"))).expect("embeddings");
    assert_eq!(
        server.last_request().expect("req").header("x-tenant"),
        Some("beta")
    );
    H::wait(c.embeddings(EmbeddingRequest::new("m", "a"))).expect("embeddings");
    assert_eq!(server.last_request().expect("req").header("x-tenant"), None);
}

pub fn derived_clients_share_the_breaker_and_budget<H: Harness>() {
    let server = FakeServer::start();
    let breaker = BreakerConfig {
        window: SlidingWindow::Count { size: 4 },
        minimum_calls: 2,
        failure_rate_threshold: 50,
        break_duration: Duration::from_secs(30),
        ..BreakerConfig::default()
    };
    let base = H::builder(&server.base_url())
        .max_retries(0)
        .circuit_breaker(breaker)
        .build();
    let derived = base.timeout_secs(30).with_api_key("sk-other");
    assert_eq!(
        derived.config().policy.timeouts.attempt,
        Some(Duration::from_secs(30))
    );
    server.push_n(2, Reply::vllm_error(500, "down"));
    for _ in 0..2 {
        let _ = H::wait(base.models());
    }
    // The breaker the base client opened refuses the derived client's call at once.
    let before = server.request_count();
    let e = H::wait(derived.models()).unwrap_err();
    assert!(matches!(e, VllmError::CircuitOpen { .. }), "{e}");
    assert_eq!(server.request_count(), before);
    // And the other way round: a client derived before the trip is refused too.
    let e = H::wait(
        base.with_options(CallOptions::new().max_retries(1))
            .models(),
    )
    .unwrap_err();
    assert!(matches!(e, VllmError::CircuitOpen { .. }), "{e}");
    assert_eq!(server.request_count(), before);
}

pub fn transport_errors_keep_their_cause<H: Harness>() {
    let c = H::builder(&free_port_url()).max_retries(0).build();
    let e = H::wait(c.models()).unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    let source = e.source().expect("the transport's error is kept");
    // Somewhere in the chain is the operating system's refusal.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    let mut refused = false;
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = c.source();
    }
    assert!(
        refused,
        "an io::Error ConnectionRefused in the chain of {e:?}"
    );
}
