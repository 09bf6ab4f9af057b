//! Turning a successful response body into the endpoint's type.

use serde_json::Value;

use crate::api::{
    ChatCompletionResponse, ClassifyResponse, CompletionResponse, DetokenizeResponse,
    EmbeddingResponse, ModelList, PoolingResponse, RerankResponse, Response, ScoreResponse,
    TokenizeResponse, Transcription, Version,
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

impl Decode for Response {
    fn decode(body: &[u8]) -> Result<Self, VllmError> {
        Response::from_json(json(body)?)
    }
}

/// The body as it came (any content type, possibly empty).
impl Decode for bytes::Bytes {
    fn decode(body: &[u8]) -> Result<Self, VllmError> {
        Ok(bytes::Bytes::copy_from_slice(body))
    }
}

/// The body as text (invalid UTF-8 replaced): LoRA answers, `text`/`srt`/`vtt`
/// transcriptions.
impl Decode for String {
    fn decode(body: &[u8]) -> Result<Self, VllmError> {
        Ok(String::from_utf8_lossy(body).into_owned())
    }
}

/// Any JSON body read into your own type: `client.request(…).send::<Json<MyType>>()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: serde::de::DeserializeOwned> Decode for Json<T> {
    fn decode(body: &[u8]) -> Result<Self, VllmError> {
        serde_json::from_value(json(body)?).map(Json).map_err(|e| {
            VllmError::decode(format!("not a {}: {e}", std::any::type_name::<T>()), body)
        })
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
    RerankResponse => "a rerank response",
    ScoreResponse => "a score response",
    ClassifyResponse => "a classify response",
    PoolingResponse => "a pooling response",
    Transcription => "a transcription",
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
    fn base64_embeddings_decode_into_the_same_vector() {
        let v = [0.25f32, -0.5, 1.0];
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let body = format!(
            r#"{{"object":"list","data":[{{"index":0,"object":"embedding","embedding":"{}"}},{{"index":1,"embedding":[0.25,-0.5,1.0]}}],"model":"m"}}"#,
            crate::api::base64::encode(&bytes)
        );
        let r = EmbeddingResponse::decode(body.as_bytes()).unwrap();
        assert_eq!(r.data[0].embedding, v);
        assert_eq!(r.data[1].embedding, v);
        let bad = br#"{"data":[{"index":0,"embedding":"not base64!"}]}"#;
        let e = EmbeddingResponse::decode(bad).unwrap_err();
        assert!(matches!(e, VllmError::Decode { .. }), "{e}");
    }

    #[test]
    fn text_bytes_and_own_types() {
        assert_eq!(
            String::decode(b"Success: loaded").unwrap(),
            "Success: loaded"
        );
        assert_eq!(&bytes::Bytes::decode(b"\x00\x01").unwrap()[..], b"\x00\x01");
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Mine {
            a: u32,
        }
        assert_eq!(
            Json::<Mine>::decode(br#"{"a":1}"#).unwrap().0,
            Mine { a: 1 }
        );
        let e = Json::<Mine>::decode(br#"{"b":1}"#).unwrap_err();
        assert!(e.to_string().contains("Mine"), "{e}");
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
