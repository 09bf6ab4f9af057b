//! What the chat and the completion builder share: both build a body with `model`,
//! `sampling: SamplingParams` and `extra`, keep a session key, and send it the same way — so
//! their common setters and their send plumbing are written once, here.

/// A setter of an optional request field: `name(value)` sets `self.request.<field> =
/// Some(value.into())`.
macro_rules! setter {
    ($(#[$doc:meta])* $name:ident : $ty:ty => $($field:ident).+) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.request.$($field).+ = Some(value.into());
            self
        }
    };
}
pub(crate) use setter;

/// The methods every text-generation builder has, for a builder with the fields
/// `exec: E`, `request` (with `model`, `sampling: SamplingParams` and `extra`),
/// `session: Option<u64>` and `options: CallOptions`, sending `$operation`: the model, the
/// sampling parameters both APIs take, stop strings, streaming and usage, the session key,
/// extra fields, the per-request options, and the specs its sends run.
macro_rules! generation_methods {
    ($operation:expr) => {
        /// The model to use, as `/v1/models` lists it.
        pub fn model(mut self, model: impl Into<String>) -> Self {
            self.request.model = model.into();
            self
        }

        $crate::client::generation::setter!(
            /// Sampling temperature.
            temperature: f32 => sampling.temperature
        );
        $crate::client::generation::setter!(
            /// Upper bound of generated tokens.
            max_tokens: u32 => sampling.max_tokens
        );
        $crate::client::generation::setter!(
            /// Nucleus sampling mass.
            top_p: f32 => sampling.top_p
        );
        $crate::client::generation::setter!(
            /// Keep only the k most likely tokens (vLLM; -1 disables).
            top_k: i32 => sampling.top_k
        );
        $crate::client::generation::setter!(
            /// Minimum probability relative to the most likely token (vLLM).
            min_p: f32 => sampling.min_p
        );
        $crate::client::generation::setter!(
            /// Multiplicative repetition penalty (vLLM).
            repetition_penalty: f32 => sampling.repetition_penalty
        );
        $crate::client::generation::setter!(
            /// Presence penalty.
            presence_penalty: f32 => sampling.presence_penalty
        );
        $crate::client::generation::setter!(
            /// Frequency penalty.
            frequency_penalty: f32 => sampling.frequency_penalty
        );
        $crate::client::generation::setter!(
            /// Seed for reproducible sampling.
            seed: i64 => sampling.seed
        );
        $crate::client::generation::setter!(
            /// Number of choices.
            n: u32 => sampling.n
        );
        $crate::client::generation::setter!(
            /// Scheduling priority (vLLM with priority scheduling; lower runs earlier).
            priority: i32 => sampling.priority
        );
        $crate::client::generation::setter!(
            /// Constrained output (vLLM ≥ 0.12): `json!({"json": schema})`, `{"regex": …}`,
            /// `{"choice": […]}` or `{"grammar": …}`.
            structured_outputs: serde_json::Value => sampling.structured_outputs
        );

        /// Stop strings: a string or an array of strings (`json!(["\n\n", "END"])`).
        pub fn stop(mut self, stop: impl Into<serde_json::Value>) -> Self {
            self.request.sampling.stop = Some(stop.into());
            self
        }

        /// Whether to stream. [`send_stream`](Self::send_stream) sets it by itself.
        pub fn stream(mut self, stream: bool) -> Self {
            self.request.sampling.stream = Some(stream);
            self
        }

        /// Ask for a final usage chunk in a stream (`stream_options.include_usage`).
        pub fn include_usage(mut self, include: bool) -> Self {
            self.request
                .sampling
                .stream_options
                .get_or_insert_with($crate::api::StreamOptions::default)
                .include_usage = Some(include);
            self
        }

        /// A session key: with several endpoints, every request with the same key goes to the
        /// same one (rendezvous hashing) while it is healthy and not overloaded, so that a
        /// multi-turn conversation reuses that replica's prefix cache. Not sent to the server.
        pub fn session(mut self, key: impl AsRef<str>) -> Self {
            self.session = Some($crate::policy::routing::stable_hash(
                key.as_ref().as_bytes(),
            ));
            self
        }

        /// Free-form fields merged into the body last; they override typed fields of the same
        /// name. `value` should be a JSON object; anything else is ignored.
        pub fn extra(mut self, value: serde_json::Value) -> Self {
            if let serde_json::Value::Object(map) = value {
                self.request.extra.extend(map);
            }
            self
        }

        $crate::client::options::option_setters!();

        /// The call of the request as it stands, answered by one JSON document.
        fn json_spec(&self) -> $crate::client::CallSpec {
            self.spec($crate::client::CallSpec::json(
                $operation,
                self.request.to_body(),
            ))
        }

        /// The call of the request as a stream read as `kind` (`"stream": true` is set).
        fn stream_spec(&mut self, kind: $crate::stream::StreamKind) -> $crate::client::CallSpec {
            self.request.sampling.stream = Some(true);
            self.spec($crate::client::CallSpec::stream(
                $operation,
                kind,
                self.request.to_body(),
            ))
        }

        fn spec(&self, spec: $crate::client::CallSpec) -> $crate::client::CallSpec {
            let mut spec = spec.with_options(&self.options);
            spec.affinity = self.session;
            spec
        }
    };
}
pub(crate) use generation_methods;
