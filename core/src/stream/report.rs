//! [`PushReport`]: what one push into a stream decoder read, for the caller's idle timer.

/// What one [`push`](super::StreamDecoder::push) read, for the caller's idle timer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Events carrying data (`message` events with non-blank data, `[DONE]` included). Only
    /// these show that generation is progressing.
    pub data_events: usize,
    /// Keep-alives: comment lines and events whose data is blank. They show the connection is
    /// alive, not that the model is.
    pub comments: usize,
}

impl PushReport {
    /// Whether any data event arrived (what an idle timer between data events resets on).
    pub fn has_data(&self) -> bool {
        self.data_events > 0
    }
}

impl std::ops::AddAssign for PushReport {
    fn add_assign(&mut self, other: Self) {
        self.data_events += other.data_events;
        self.comments += other.comments;
    }
}
