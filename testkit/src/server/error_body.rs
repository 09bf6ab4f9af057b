//! vLLM's error bodies: the nested JSON of an error answer (the `type` named after the status,
//! as vLLM's exception handlers name it), and the in-band error of a stream.

/// vLLM's name of the error of a status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "BadRequestError",
        401 => "UnauthorizedError",
        404 => "NotFoundError",
        405 => "MethodNotAllowedError",
        413 => "RequestEntityTooLargeError",
        422 => "UnprocessableEntityError",
        429 => "RateLimitError",
        431 => "RequestHeaderFieldsTooLargeError",
        501 => "NotImplementedError",
        503 => "ServiceUnavailableError",
        505 => "HTTPVersionNotSupportedError",
        _ => "InternalServerError",
    }
}

/// vLLM's (≥ 0.10.1) nested error body.
pub(crate) fn error_json(status: u16, message: &str) -> String {
    format!(
        r#"{{"error":{{"message":{},"type":"{}","param":null,"code":{}}}}}"#,
        serde_json::Value::from(message),
        error_type(status),
        status
    )
}

/// vLLM's in-band stream error (Python `json.dumps` spacing, as vLLM writes it).
pub(crate) fn stream_error_json(message: &str) -> String {
    format!(
        r#"{{"error": {{"message": {}, "type": "InternalServerError", "param": null, "code": 500}}}}"#,
        serde_json::Value::from(message)
    )
}
