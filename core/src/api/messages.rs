//! Typed chat messages and tools: [`Role`], [`Message`] with text or [`ContentPart`]s (text,
//! images — URLs or data URLs —, audio, video), [`Tool`] definitions, [`ToolChoice`] and
//! [`ResponseFormat`]. Every one of them serializes to the JSON the seed page's `json!` style
//! writes by hand, so the two mix freely.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::common::ToolCall;

/// Who speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// Instructions for the whole conversation.
    System,
    /// Instructions from the developer (OpenAI's newer name for `system`; vLLM's chat
    /// templates treat it as such where they know it).
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
}

impl Role {
    /// The name on the wire: `system`, `developer`, `user`, `assistant`, `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message's content: a string, or parts (text, images, audio, video).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts, for multimodal models.
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The text: the string, or the text parts joined (other parts left out).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Content::Text(s) => Cow::Borrowed(s),
            Content::Parts(parts) => Cow::Owned(
                parts
                    .iter()
                    .filter_map(|p| match p {
                        ContentPart::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect(),
            ),
        }
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::Text(s.to_owned())
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Content::Text(s)
    }
}

impl From<Vec<ContentPart>> for Content {
    fn from(parts: Vec<ContentPart>) -> Self {
        Content::Parts(parts)
    }
}

impl<const N: usize> From<[ContentPart; N]> for Content {
    fn from(parts: [ContentPart; N]) -> Self {
        Content::Parts(parts.into())
    }
}

/// One part of a multimodal message.
///
/// ```
/// use vllm_client_core::api::{ContentPart, Message};
///
/// let png = [0x89, b'P', b'N', b'G'];
/// let msg = Message::user(vec![
///     ContentPart::text("What is in this picture?"),
///     ContentPart::image_data("image/png", &png),
/// ]);
/// let v = serde_json::to_value(&msg).unwrap();
/// assert_eq!(v["content"][1]["image_url"]["url"], "data:image/png;base64,iVBORw==");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentPart {
    /// `{"type": "text", "text"}`.
    Text {
        /// The text.
        text: String,
    },
    /// `{"type": "image_url", "image_url": {"url", "detail"}}`: an `http(s)` URL or a
    /// `data:` URL.
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
    },
    /// `{"type": "input_audio", "input_audio": {"data", "format"}}`: base64 audio.
    InputAudio {
        /// The audio.
        input_audio: InputAudio,
    },
    /// `{"type": "audio_url", "audio_url": {"url"}}` (vLLM): an audio file by URL or `data:`
    /// URL.
    AudioUrl {
        /// The audio.
        audio_url: MediaUrl,
    },
    /// `{"type": "video_url", "video_url": {"url"}}` (vLLM): a video by URL or `data:` URL.
    VideoUrl {
        /// The video.
        video_url: MediaUrl,
    },
}

/// An image by URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageUrl {
    /// `http(s)://…` or `data:<mime>;base64,<data>`.
    pub url: String,
    /// `low`, `high` or `auto` (OpenAI; vLLM ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Audio as base64 data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InputAudio {
    /// Base64 of the file's bytes.
    pub data: String,
    /// `wav`, `mp3`, …
    pub format: String,
}

/// A media file (audio, video) by URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MediaUrl {
    /// `http(s)://…`, `file://…` (when the server allows it) or `data:<mime>;base64,<data>`.
    pub url: String,
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    /// An image by URL (`https://…`, or a `data:` URL you built).
    pub fn image_url(url: impl Into<String>) -> Self {
        ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: url.into(),
                detail: None,
            },
        }
    }

    /// An image from its bytes, sent inline as a `data:` URL (`mime`: `image/png`,
    /// `image/jpeg`, …).
    pub fn image_data(mime: &str, bytes: &[u8]) -> Self {
        Self::image_url(data_url(mime, bytes))
    }

    /// Audio from its bytes, as `input_audio` (`format`: `wav`, `mp3`).
    pub fn input_audio(bytes: &[u8], format: impl Into<String>) -> Self {
        ContentPart::InputAudio {
            input_audio: InputAudio {
                data: super::base64::encode(bytes),
                format: format.into(),
            },
        }
    }

    /// Audio by URL (vLLM's `audio_url`).
    pub fn audio_url(url: impl Into<String>) -> Self {
        ContentPart::AudioUrl {
            audio_url: MediaUrl { url: url.into() },
        }
    }

    /// A video by URL (vLLM's `video_url`), or from its bytes with [`data_url`].
    pub fn video_url(url: impl Into<String>) -> Self {
        ContentPart::VideoUrl {
            video_url: MediaUrl { url: url.into() },
        }
    }
}

/// `data:<mime>;base64,<bytes>`: a file inline in a URL.
pub fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", super::base64::encode(bytes))
}

/// A chat message, for callers who prefer types to `json!`.
///
/// ```
/// use vllm_client_core::api::{Message, Role};
///
/// let m = Message::user("Hello!");
/// assert_eq!(m.role, Role::User);
/// assert_eq!(serde_json::to_value(&m).unwrap(), serde_json::json!({"role": "user", "content": "Hello!"}));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// The content (`None` for an assistant turn that only calls tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Tool calls made by an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// An optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message from `role` with `content`.
    pub fn new(role: Role, content: impl Into<Content>) -> Self {
        Message {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<Content>) -> Self {
        Self::new(Role::System, content)
    }

    /// A developer message.
    pub fn developer(content: impl Into<Content>) -> Self {
        Self::new(Role::Developer, content)
    }

    /// A user message: text, or parts (`vec![ContentPart::text(…), ContentPart::image_url(…)]`).
    pub fn user(content: impl Into<Content>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<Content>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// An assistant turn that called tools (with its text, if it had any).
    pub fn assistant_with_tool_calls(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.map(Content::Text),
            tool_calls,
            tool_call_id: None,
            name: None,
        }
    }

    /// A tool result answering the call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<Content>) -> Self {
        let mut m = Self::new(Role::Tool, content);
        m.tool_call_id = Some(tool_call_id.into());
        m
    }

    /// The same message with a participant name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The text of the content (text parts joined), empty when there is none.
    pub fn text(&self) -> Cow<'_, str> {
        self.content
            .as_ref()
            .map_or(Cow::Borrowed(""), Content::text)
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FunctionDefinition {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its arguments, a JSON schema (an object schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Whether the arguments must follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A tool definition: `{"type": "function", "function": {…}}`.
///
/// ```
/// use serde_json::json;
/// use vllm_client_core::api::Tool;
///
/// let t = Tool::function("get_weather", "The weather in a city", json!({
///     "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]
/// }));
/// assert_eq!(serde_json::to_value(&t).unwrap()["function"]["name"], "get_weather");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tool {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDefinition,
}

impl Tool {
    /// A function tool.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Tool {
        Tool {
            kind: "function".to_owned(),
            function: FunctionDefinition {
                name: name.into(),
                description: Some(description.into()),
                parameters: Some(parameters),
                strict: None,
            },
        }
    }

    /// The same tool, its arguments held to the schema exactly (`strict`).
    pub fn strict(mut self, strict: bool) -> Tool {
        self.function.strict = Some(strict);
        self
    }

    /// The Responses API's flat form: `{"type": "function", "name", "description",
    /// "parameters", "strict"}`.
    pub fn to_responses_tool(&self) -> Value {
        let mut v = serde_json::to_value(&self.function).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert("type".to_owned(), Value::String(self.kind.clone()));
        }
        v
    }
}

impl From<Tool> for Value {
    fn from(t: Tool) -> Value {
        serde_json::to_value(t).unwrap_or(Value::Null)
    }
}

/// What `.tools(…)` accepts: a JSON array (`json!([...])`) or typed [`Tool`]s.
pub trait IntoTools {
    /// The tools as a JSON array.
    fn into_tools(self) -> Value;
}

impl IntoTools for Value {
    fn into_tools(self) -> Value {
        self
    }
}

impl IntoTools for Vec<Tool> {
    fn into_tools(self) -> Value {
        Value::Array(self.into_iter().map(Value::from).collect())
    }
}

impl IntoTools for &[Tool] {
    fn into_tools(self) -> Value {
        Value::Array(self.iter().cloned().map(Value::from).collect())
    }
}

impl<const N: usize> IntoTools for [Tool; N] {
    fn into_tools(self) -> Value {
        Value::Array(self.into_iter().map(Value::from).collect())
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolChoice {
    /// Never call a tool.
    None,
    /// The model decides (the default when tools are given).
    Auto,
    /// Call at least one tool.
    Required,
    /// Call this function.
    Function(String),
}

impl Serialize for ToolChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Value::from(self.clone()).serialize(s)
    }
}

impl From<ToolChoice> for Value {
    fn from(c: ToolChoice) -> Value {
        match c {
            ToolChoice::None => Value::from("none"),
            ToolChoice::Auto => Value::from("auto"),
            ToolChoice::Required => Value::from("required"),
            ToolChoice::Function(name) => {
                serde_json::json!({"type": "function", "function": {"name": name}})
            }
        }
    }
}

/// The format of the answer: free text, any JSON object, or JSON following a schema (vLLM
/// enforces it with structured-output decoding).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON following `schema`.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON schema.
        schema: Value,
        /// Whether it must be followed exactly.
        strict: Option<bool>,
    },
}

impl ResponseFormat {
    /// JSON following `schema`, named `name`.
    pub fn json_schema(name: impl Into<String>, schema: Value) -> Self {
        ResponseFormat::JsonSchema {
            name: name.into(),
            schema,
            strict: None,
        }
    }

    /// JSON following the schema `schemars` derives for `T` (feature `schemars`), named
    /// after the type.
    #[cfg(feature = "schemars")]
    pub fn for_type<T: schemars::JsonSchema>() -> Self {
        let schema = schemars::schema_for!(T);
        ResponseFormat::JsonSchema {
            name: sanitize_name(&T::schema_name()),
            schema: serde_json::to_value(schema).unwrap_or(Value::Null),
            strict: None,
        }
    }
}

/// A schema name as OpenAI-style servers accept it: `[A-Za-z0-9_-]`, at most 64.
#[cfg(feature = "schemars")]
fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        "response".to_owned()
    } else {
        s
    }
}

impl From<ResponseFormat> for Value {
    fn from(f: ResponseFormat) -> Value {
        match f {
            ResponseFormat::Text => serde_json::json!({"type": "text"}),
            ResponseFormat::JsonObject => serde_json::json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => {
                let mut js = serde_json::json!({"name": name, "schema": schema});
                if let Some(strict) = strict {
                    js["strict"] = Value::Bool(strict);
                }
                serde_json::json!({"type": "json_schema", "json_schema": js})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_serialize_like_hand_written_json() {
        let m = vec![
            Message::system("Be brief."),
            Message::user(vec![
                ContentPart::text("What is this?"),
                ContentPart::image_url("https://x/cat.png"),
                ContentPart::input_audio(b"RIFF", "wav"),
                ContentPart::video_url("https://x/v.mp4"),
                ContentPart::audio_url("https://x/a.mp3"),
            ]),
            Message::tool("call_1", "21 C").with_name("weather"),
        ];
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}},
                    {"type": "audio_url", "audio_url": {"url": "https://x/a.mp3"}}
                ]},
                {"role": "tool", "content": "21 C", "tool_call_id": "call_1", "name": "weather"}
            ])
        );
        let back: Vec<Message> = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        assert_eq!(back[1].text(), "What is this?");
    }

    #[test]
    fn tools_choices_and_formats() {
        let t = Tool::function("f", "does f", json!({"type": "object"})).strict(true);
        assert_eq!(
            Value::from(t.clone()),
            json!({"type": "function", "function": {"name": "f", "description": "does f",
                "parameters": {"type": "object"}, "strict": true}})
        );
        assert_eq!(
            t.to_responses_tool(),
            json!({"type": "function", "name": "f", "description": "does f",
                "parameters": {"type": "object"}, "strict": true})
        );
        assert_eq!(vec![t.clone()].into_tools(), json!([Value::from(t)]));
        assert_eq!(Value::from(ToolChoice::Required), json!("required"));
        assert_eq!(
            Value::from(ToolChoice::Function("f".into())),
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(
            Value::from(ResponseFormat::json_schema("x", json!({"type": "object"}))),
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}})
        );
    }

    #[cfg(feature = "schemars")]
    #[test]
    fn a_schema_from_a_type() {
        #[derive(schemars::JsonSchema, serde::Deserialize)]
        #[allow(dead_code)]
        struct City {
            name: String,
            population: u64,
        }
        let v = Value::from(ResponseFormat::for_type::<City>());
        assert_eq!(v["type"], "json_schema");
        assert_eq!(v["json_schema"]["name"], "City");
        let schema = &v["json_schema"]["schema"];
        assert_eq!(schema["properties"]["population"]["type"], "integer");
        assert_eq!(schema["required"], json!(["name", "population"]));
    }
}
