//! Turning a successful response body into the endpoint's type.

use serde_json::Value;

use crate::api::{
    ChatCompletionResponse, CompletionResponse, DetokenizeResponse, EmbeddingResponse, ModelList,
    TokenizeResponse, Version,
};
use crate::error::VllmError;

/// A response type that can be read from a 2xx body.
pub trait Decode: Sized {
    /// Reads the body. Not JSON, or JSON of the wrong shape, is a [`VllmError::Decode`] that
    /// carries a bounded snippet of the body.
    fn decode(body: &[u8]) -> Result<Self, VllmError>;
}

fn json(body: &[u8]) -> Result<Value, VllmError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(VllmError::decode("the server sent an empty body", body));
    }
    serde_json::from_slice(body)
        .map_err(|e| VllmError::decode(format!("the body is not JSON ({e})"), body))
}

impl Decode for ChatCompletionResponse {
    fn decode(body: &[u8]) -> Result<Self, VllmError> {
        ChatCompletionResponse::from_json(json(body)?)
    }
}

impl Decode for CompletionResponse {
    fn decode(body: &[u8]) -> Result<Self, VllmError> {
        CompletionResponse::from_json(json(body)?)
    }
}

impl Decode for () {
    fn decode(_body: &[u8]) -> Result<Self, VllmError> {
        Ok(())
    }
}

impl Decode for Value {
    fn decode(body: &[u8]) -> Result<Self, VllmError> {
        json(body)
    }
}

macro_rules! serde_decode {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl Decode for $t {
            fn decode(body: &[u8]) -> Result<Self, VllmError> {
                serde_json::from_value(json(body)?).map_err(|e| {
                    VllmError::decode(format!(concat!("not ", $what, ": {}"), e), body)
                })
            }
        }
    )*};
}

serde_decode!(
    ModelList => "a model list",
    EmbeddingResponse => "an embedding response",
    TokenizeResponse => "a tokenize response",
    DetokenizeResponse => "a detokenize response",
    Version => "a version",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_are_decode_errors_with_snippets() {
        for (body, needle) in [
            (&b""[..], "empty body"),
            (b"<html>oops</html>", "not JSON"),
            (b"{\"data\": 3}", "not a model list"),
        ] {
            let e = ModelList::decode(body).unwrap_err();
            assert!(matches!(e, VllmError::Decode { .. }));
            assert!(e.to_string().contains(needle), "{e}");
        }
        let e = ChatCompletionResponse::decode(b"<html>200 but a page</html>").unwrap_err();
        assert!(e.to_string().contains("200 but a page"), "{e}");
    }

    #[test]
    fn good_bodies() {
        let m = ModelList::decode(
            br#"{"object":"list","data":[{"id":"a","object":"model","max_model_len":4096}]}"#,
        )
        .unwrap();
        assert_eq!(m.data[0].id, "a");
        assert_eq!(m.data[0].max_model_len, Some(4096));
        assert!(<()>::decode(b"").is_ok());
    }
}
