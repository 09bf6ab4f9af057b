//! An SSE finding as both stream decoders read it, and counted the same way: comments,
//! `retry:` fields and blank data are nothing to decode (blank data counts as a comment), the
//! `[DONE]` marker ends a stream, anything else is a payload to decode.

use super::report::PushReport;
use crate::sse::Raw;

/// What one SSE finding is to a decoder.
pub(super) enum Record<'t> {
    /// Nothing to decode.
    Nothing,
    /// The `[DONE]` end marker.
    Done,
    /// An event's data as text, with its `event:` name (empty when it had none).
    Payload { name: &'t [u8], text: &'t str },
}

/// Reads `raw`, counts it in `report` and hands what it is to `on`. With `named` false (the
/// chat decoder) an event named anything but `message` is ignored and not counted; with it
/// true (the Responses decoder) every event is read.
pub(super) fn read(
    raw: Raw<'_>,
    report: &mut PushReport,
    named: bool,
    on: impl FnOnce(Record<'_>),
) {
    let (name, data) = match raw {
        Raw::Comment(_) => {
            report.comments += 1;
            return on(Record::Nothing);
        }
        Raw::Retry(_) => return on(Record::Nothing),
        Raw::Event {
            event_type, data, ..
        } => (event_type, data),
    };
    if !named && !name.is_empty() && name != b"message" {
        return on(Record::Nothing);
    }
    let text = crate::sse::lossy(data.bytes());
    let trimmed = text.trim_ascii();
    if trimmed.is_empty() {
        report.comments += 1;
        return on(Record::Nothing);
    }
    report.data_events += 1;
    if trimmed == "[DONE]" {
        on(Record::Done)
    } else {
        on(Record::Payload { name, text: &text })
    }
}
