//! The conformance suite: every scenario of `conformance/scenarios.rs`, written once against a
//! synchronous [`harness::Harness`], run against each adapter (tokio, async-std, blocking, and
//! tower over hyper-util's client) and the testkit's fake vLLM server on 127.0.0.1.

#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/operations.rs"]
mod operations;
#[path = "conformance/pool.rs"]
mod pool;
#[path = "conformance/scenarios.rs"]
mod scenarios;

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod tokio {
            $( #[test] fn $scenario() { crate::scenarios::$scenario::<crate::harness::TokioH>() } )*
        }
        mod async_std {
            $( #[test] fn $scenario() { crate::scenarios::$scenario::<crate::harness::AsyncStdH>() } )*
        }
        mod blocking {
            $( #[test] fn $scenario() { crate::scenarios::$scenario::<crate::harness::BlockingH>() } )*
        }
        mod tower {
            $( #[test] fn $scenario() { crate::scenarios::$scenario::<crate::harness::TowerH>() } )*
        }
    };
}

/// The same for the scenarios of `conformance/operations.rs` (every operation beyond chat).
macro_rules! operations {
    ($($scenario:ident),* $(,)?) => {
        mod ops_tokio {
            $( #[test] fn $scenario() { crate::operations::$scenario::<crate::harness::TokioH>() } )*
        }
        mod ops_async_std {
            $( #[test] fn $scenario() { crate::operations::$scenario::<crate::harness::AsyncStdH>() } )*
        }
        mod ops_blocking {
            $( #[test] fn $scenario() { crate::operations::$scenario::<crate::harness::BlockingH>() } )*
        }
    };
}

operations! {
    responses_create_retrieve_and_cancel,
    responses_background_poll_and_cancel,
    responses_stream_typed_events,
    responses_stream_503_retried,
    responses_stream_cut_is_an_error_not_retried,
    responses_stream_error_event_and_missing_terminal,
    responses_replayed_events_are_not_handed_out_twice,
    responses_stream_cut_at_every_byte_is_resumed,
    responses_background_stream_resumes_on_the_fake_server,
    responses_400_not_retried,
    responses_tool_calling_loop,
    rerank_orders_documents_on_every_path,
    score_classify_pooling,
    embeddings_base64_and_dimensions,
    audio_transcription_and_translation,
    audio_stream_and_retry_resends_the_same_upload,
    lora_load_and_unload,
    custom_request_json_bytes_and_stream,
    chat_chunks_carry_id_model_and_logprobs,
    chat_tool_calling_loop_with_typed_messages,
    send_json_of_your_own_body,
    per_request_options_change_only_that_request,
    derived_clients_share_the_breaker_and_budget,
    transport_errors_keep_their_cause,
}

conformance! {
    engine_queues_behind_a_full_batch,
    adaptive_limit_halves_on_a_hinted_503,
    chat_completion,
    chat_stream,
    chat_cut_mid_answer_is_continued,
    completion,
    completion_stream,
    other_endpoints,
    error_nested,
    error_flat,
    error_string,
    error_empty_500,
    error_html_page,
    error_litellm_string_code,
    error_fastapi_detail,
    retry_after_seconds,
    retry_after_http_date,
    retry_after_ms,
    retry_503_then_success,
    no_retry_501_or_400,
    unregistered_statuses_499_and_529,
    interim_103_before_the_answer,
    connection_refused,
    slow_first_token_retried,
    stall_with_keep_alives_hits_idle_timeout,
    silent_stall_times_out_and_disconnects,
    in_band_error_event,
    cut_before_done,
    clean_end_without_done,
    utf8_split_inside_characters,
    tool_call_arguments_assembled,
    reasoning_both_field_names,
    usage_when_asked,
    drop_closes_connection,
    breaker_opens_rejects_probes_and_closes,
    rate_limit_spaces_calls,
    concurrency_permit_held_for_the_stream,
    total_deadline_bounds_everything,
    api_key_sent_never_printed,
    close_delimited_stream,
    close_delimited_json,
    short_body_json_retried,
    short_body_stream_retried,
    first_token_timer_replaces_idle_before_the_first_token,
    queued_stream_outlives_the_idle_timer,
    first_token_timeout_not_retried_on_one_server,
    json_answer_to_a_stream_request,
    html_answer_to_a_stream_request,
    non_ascii_header_is_refused_not_retried,
    terminal_event_closes_the_connection,
    concurrency_slots_first_come_first_served,
    spent_server_quota_paces_the_next_call,
    rate_limit_headers_on_a_429,
    rate_limit_snapshot_on_a_stream,
    token_rate_limit_paces_and_refunds,
    pool_fails_over_from_a_stalled_first_token,
    pool_ejects_a_server_that_says_retry_after,
    pool_survives_a_server_killed_mid_run,
    pool_hedged_first_token_wins_and_the_loser_is_cancelled,
    pool_no_hedge_without_another_endpoint,
    pool_health_probe_readmits_a_server,
}
