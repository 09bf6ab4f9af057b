//! [`CallSpec`]: what one call is — the operation, the JSON body, and whether it streams.

use serde_json::Value;

use crate::error::VllmError;
use crate::request::Operation;
use crate::stream::StreamKind;

/// A call to make: which operation, with which body, read how.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// The operation (API route).
    pub operation: Operation,
    /// The JSON body (`None` for GET), or why it could not be built.
    pub body: Result<Option<Value>, VllmError>,
    /// `Some` for a streamed call.
    pub stream: Option<StreamKind>,
    /// A session key: calls with the same key go to the same endpoint of a pool while it is
    /// healthy and not overloaded (see [`crate::pool`]).
    pub affinity: Option<u64>,
}

impl CallSpec {
    /// Sets the session key from a string (see [`affinity`](Self::affinity)).
    pub fn with_session(mut self, session: &str) -> Self {
        self.affinity = Some(crate::policy::routing::stable_hash(session.as_bytes()));
        self
    }

    /// A call answered by one JSON document.
    pub fn json(operation: Operation, body: Result<Value, VllmError>) -> Self {
        CallSpec {
            operation,
            body: body.map(Some),
            stream: None,
            affinity: None,
        }
    }

    /// A call without a body.
    pub fn get(operation: Operation) -> Self {
        CallSpec {
            operation,
            body: Ok(None),
            stream: None,
            affinity: None,
        }
    }

    /// A streamed call. The body always asks for a stream: `"stream": true` is set in it
    /// (whatever it said), so the request carries `Accept: text/event-stream` and the server
    /// is asked for what the call will read. A body that is not a JSON object is refused.
    pub fn stream(operation: Operation, kind: StreamKind, body: Result<Value, VllmError>) -> Self {
        let body = body.and_then(|mut v| match v.as_object_mut() {
            Some(object) => {
                object.insert("stream".to_owned(), Value::Bool(true));
                Ok(Some(v))
            }
            None => Err(VllmError::InvalidRequest(
                "the body of a stream request must be a JSON object".into(),
            )),
        });
        CallSpec {
            operation,
            body,
            stream: Some(kind),
            affinity: None,
        }
    }
}
