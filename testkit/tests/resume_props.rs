//! Resuming a cut Responses stream, in the simulator (the production driver, virtual time):
//! wherever the stream is cut — at any byte, by a reset, an early end or a stall — and however
//! much the server replays, the caller reads the whole text once.

use std::time::Duration;

use proptest::prelude::*;
use vllm_client_core::api::ResponseStreamEvent;
use vllm_client_core::call::CallSpec;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::{Backoff, Jitter};
use vllm_client_core::request::Operation;
use vllm_client_core::stream::StreamKind;
use vllm_client_core::StreamEvent;
use vllm_testkit::sim::{Sim, SimPart, SimResponse};

const WORDS: [&str; 6] = ["The ", "quick ", "brown ", "fox ", "jumps", "."];

fn spec() -> CallSpec {
    CallSpec::stream(
        Operation::Responses,
        StreamKind::Responses,
        Ok(serde_json::json!({"model": "m", "input": "go", "background": true, "store": true})),
    )
}

/// The stream's events, one string each, numbered from 0.
fn events() -> Vec<String> {
    let life = |seq: usize, kind: &str, status: &str| {
        format!(
            "event: response.{kind}\ndata: {{\"type\":\"response.{kind}\",\"sequence_number\":{seq},\"response\":{{\"id\":\"resp_7\",\"status\":\"{status}\"}}}}\n\n"
        )
    };
    let mut v = vec![life(0, "created", "in_progress")];
    for (i, w) in WORDS.iter().enumerate() {
        v.push(format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{},\"item_id\":\"msg\",\"output_index\":0,\"content_index\":0,\"delta\":\"{w}\"}}\n\n",
            i + 1
        ));
    }
    v.push(life(WORDS.len() + 1, "completed", "completed"));
    v
}

fn text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Response(r) => match &**r {
                ResponseStreamEvent::OutputTextDelta { delta, .. } => Some(delta.as_str()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn config() -> ClientConfig {
    let mut c = ClientConfig::default();
    c.policy.retry.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(50),
        multiplier: 1,
        jitter: Jitter::None,
    };
    c.policy.timeouts.idle = Some(Duration::from_secs(1));
    c
}

#[derive(Debug, Clone, Copy)]
enum Cut {
    Reset,
    Close,
    Stall,
}

fn cut_response(bytes: &[u8], cut: Cut) -> SimResponse {
    let r = SimResponse::sse(vec![SimPart::raw(bytes.to_vec())]);
    match cut {
        Cut::Reset => r.then_reset(),
        Cut::Close => r.then_close(),
        Cut::Stall => r.then_stall(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_stream_cut_anywhere_reads_the_whole_text_once(
        at in 0usize..10_000,
        cut in prop_oneof![Just(Cut::Reset), Just(Cut::Close), Just(Cut::Stall)],
        replay in 0usize..100,
    ) {
        let all = events();
        let whole: String = all.concat();
        let at = at % (whole.len() + 1);
        // The events that arrived whole before the cut.
        let complete = whole.as_bytes()[..at].windows(2).filter(|w| w == b"\n\n").count();
        // A resume replays from any event up to the first one missing (the decoder drops
        // what it already handed out); a retry before any event starts over.
        let from = if complete == 0 { 0 } else { replay % (complete + 1) };
        let rest = all[from..].concat();
        let mut sim = Sim::new(config(), 3);
        let out = sim.run(
            spec(),
            vec![
                cut_response(&whole.as_bytes()[..at], cut),
                SimResponse::sse(vec![SimPart::raw(rest.into_bytes())]).then_close(),
            ],
        );
        prop_assert!(out.is_clean(), "{}", out.render());
        prop_assert_eq!(text(&out.events), WORDS.concat(), "{}", out.render());
        prop_assert!(matches!(out.last_event(), Some(StreamEvent::Done)), "{}", out.render());
        prop_assert!(out.result.is_ok());
        let finished = complete == all.len();
        prop_assert_eq!(out.report.resumes, u32::from(complete > 0 && !finished));
    }
}

#[test]
fn the_resume_goes_to_the_server_that_holds_the_stream() {
    let all = events();
    let first = all[..3].concat();
    let rest = all[3..].concat();
    let mut sim = Sim::new(config(), 3);
    let out = sim.run(
        spec(),
        vec![
            cut_response(first.as_bytes(), Cut::Reset),
            SimResponse::sse(vec![SimPart::raw(rest.into_bytes())]).then_close(),
        ],
    );
    assert!(out.is_clean(), "{}", out.render());
    assert_eq!(text(&out.events), WORDS.concat());
    assert_eq!(out.report.resumes, 1);
    // The backoff, then the resume: two sends, the second after the 50 ms sleep.
    assert_eq!(out.sends.len(), 2, "{}", out.render());
    assert_eq!(out.sleeps, vec![Duration::from_millis(50)]);
}
