//! Speech to text: `POST /v1/audio/transcriptions` and `POST /v1/audio/translations`
//! (multipart uploads; streamed as chat-like chunks with `"stream": true`), and dynamic LoRA
//! adapters (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::multipart::Multipart;

/// A transcription or translation request: the audio file and the form fields sent with it.
/// Its `Debug` shows the file's length, not its bytes.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct AudioRequest {
    /// The audio (flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav or webm).
    pub file: Bytes,
    /// Its file name (the server guesses the format from it when the content type does not
    /// say).
    pub file_name: String,
    /// Its content type (`audio/wav`, …); `application/octet-stream` when empty.
    pub content_type: String,
    /// The model.
    pub model: String,
    /// The spoken language (ISO-639-1), when known.
    pub language: Option<String>,
    /// Text to guide the style, or the previous segment's transcript.
    pub prompt: Option<String>,
    /// `json` (default), `verbose_json`, `text`, `srt` or `vtt`.
    pub response_format: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// `word` and/or `segment` timestamps (with `verbose_json`).
    pub timestamp_granularities: Vec<String>,
    /// Other form fields (vLLM's `top_p`, `seed`, `to_language`, …), sent as text.
    pub fields: Vec<(String, String)>,
}

impl std::fmt::Debug for AudioRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioRequest")
            .field("file", &format_args!("<{} bytes>", self.file.len()))
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("model", &self.model)
            .field("language", &self.language)
            .field("prompt", &self.prompt)
            .field("response_format", &self.response_format)
            .field("temperature", &self.temperature)
            .field("timestamp_granularities", &self.timestamp_granularities)
            .field("fields", &self.fields)
            .finish()
    }
}

impl AudioRequest {
    /// A request for `file` (named `file_name`, of `content_type`) with `model`.
    pub fn new(
        model: impl Into<String>,
        file: impl Into<Bytes>,
        file_name: impl Into<String>,
        content_type: impl Into<String>,
    ) -> Self {
        AudioRequest {
            file: file.into(),
            file_name: file_name.into(),
            content_type: content_type.into(),
            model: model.into(),
            ..Default::default()
        }
    }

    /// The multipart form, with `stream` set when streaming (vLLM's stream options are
    /// flattened into form fields: `stream_include_usage`).
    pub fn to_form(&self, stream: bool) -> Multipart {
        let mut form = Multipart::new();
        if !self.model.is_empty() {
            form = form.text("model", self.model.clone());
        }
        for (name, value) in [
            ("language", &self.language),
            ("prompt", &self.prompt),
            ("response_format", &self.response_format),
        ] {
            if let Some(v) = value {
                form = form.text(name, v.clone());
            }
        }
        if let Some(t) = self.temperature {
            form = form.text("temperature", t.to_string());
        }
        for g in &self.timestamp_granularities {
            form = form.text("timestamp_granularities[]", g.clone());
        }
        for (name, value) in &self.fields {
            form = form.text(name, value.clone());
        }
        if stream {
            form = form.text("stream", "true");
        }
        let file_name = if self.file_name.is_empty() {
            "audio"
        } else {
            &self.file_name
        };
        form.file("file", file_name, &self.content_type, self.file.clone())
    }

    /// Whether the answer is plain text (`text`, `srt`, `vtt`) rather than JSON.
    pub fn wants_text(&self) -> bool {
        matches!(
            self.response_format.as_deref(),
            Some("text" | "srt" | "vtt")
        )
    }
}

/// A transcription (or translation): `json` and `verbose_json` answers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Transcription {
    /// The text.
    pub text: String,
    /// The language detected or given (`verbose_json`).
    #[serde(default)]
    pub language: Option<String>,
    /// The audio's duration in seconds (`verbose_json`; vLLM sends it as a string).
    #[serde(default)]
    pub duration: Option<Value>,
    /// Segments with their times (`verbose_json`; `null` reads as none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub segments: Vec<TranscriptionSegment>,
    /// Words with their times (`verbose_json` with word timestamps; vLLM sends `null`
    /// without them).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub words: Vec<TranscriptionWord>,
    /// Usage (vLLM: `{"type": "duration", "seconds": n}`; others: tokens), as sent.
    #[serde(default)]
    pub usage: Option<Value>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A segment of a verbose transcription.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct TranscriptionSegment {
    /// Its id.
    #[serde(default)]
    pub id: u64,
    /// Start, in seconds.
    #[serde(default)]
    pub start: f64,
    /// End, in seconds.
    #[serde(default)]
    pub end: f64,
    /// Its text.
    #[serde(default)]
    pub text: String,
}

/// A word of a verbose transcription.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct TranscriptionWord {
    /// The word.
    #[serde(default)]
    pub word: String,
    /// Start, in seconds.
    #[serde(default)]
    pub start: f64,
    /// End, in seconds.
    #[serde(default)]
    pub end: f64,
}

/// `POST /v1/load_lora_adapter` (vLLM started with `--enable-lora` and
/// `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`). The answer is a line of text.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LoadLoraAdapterRequest {
    /// The name requests will use as `model`.
    pub lora_name: String,
    /// Where the adapter is (a local path or a Hugging Face id, as the server resolves it).
    pub lora_path: String,
    /// Replace an adapter already loaded under that name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_inplace: Option<bool>,
}

impl LoadLoraAdapterRequest {
    /// Load the adapter at `lora_path` as `lora_name`.
    pub fn new(lora_name: impl Into<String>, lora_path: impl Into<String>) -> Self {
        LoadLoraAdapterRequest {
            lora_name: lora_name.into(),
            lora_path: lora_path.into(),
            load_inplace: None,
        }
    }
}

/// `POST /v1/unload_lora_adapter`. The answer is a line of text.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct UnloadLoraAdapterRequest {
    /// The adapter's name.
    pub lora_name: String,
}

impl UnloadLoraAdapterRequest {
    /// Unload `lora_name`.
    pub fn new(lora_name: impl Into<String>) -> Self {
        UnloadLoraAdapterRequest {
            lora_name: lora_name.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_carries_every_field_and_the_file() {
        let mut r = AudioRequest::new("whisper", &b"RIFFdata"[..], "a.wav", "audio/wav");
        r.language = Some("en".into());
        r.timestamp_granularities = vec!["word".into(), "segment".into()];
        r.fields.push(("seed".into(), "3".into()));
        let (_, body) = r.to_form(true).finish();
        let text = String::from_utf8_lossy(&body);
        for needle in [
            "name=\"model\"\r\n\r\nwhisper\r\n",
            "name=\"language\"\r\n\r\nen\r\n",
            "name=\"timestamp_granularities[]\"\r\n\r\nword\r\n",
            "name=\"timestamp_granularities[]\"\r\n\r\nsegment\r\n",
            "name=\"seed\"\r\n\r\n3\r\n",
            "name=\"stream\"\r\n\r\ntrue\r\n",
            "filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFFdata\r\n",
        ] {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
        assert!(!String::from_utf8_lossy(&r.to_form(false).finish().1).contains("\"stream\""));
        assert!(format!("{r:?}").contains("<8 bytes>"));
    }

    #[test]
    fn answers() {
        let t: Transcription =
            serde_json::from_str(r#"{"text":"hello","usage":{"type":"duration","seconds":2}}"#)
                .unwrap();
        assert_eq!(t.text, "hello");
        let v: Transcription = serde_json::from_str(
            r#"{"text":"hi there","language":"en","duration":"1.5","segments":[{"id":0,"seek":0,"start":0.0,"end":1.5,"text":"hi there","tokens":[1],"temperature":0.0,"avg_logprob":-0.1,"compression_ratio":1.0,"no_speech_prob":0.0}],"words":[{"word":"hi","start":0.0,"end":0.5}]}"#,
        )
        .unwrap();
        assert_eq!(v.segments[0].end, 1.5);
        assert_eq!(v.words[0].word, "hi");
        let null_words: Transcription =
            serde_json::from_str(r#"{"text":"x","segments":null,"words":null}"#).unwrap();
        assert!(null_words.words.is_empty() && null_words.segments.is_empty());
    }
}
