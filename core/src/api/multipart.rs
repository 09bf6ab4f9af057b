//! `multipart/form-data` bodies (RFC 7578), built once in memory: the audio endpoints take
//! their file this way.

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

/// A form being built: text fields and files, in order.
///
/// ```
/// use vllm_client_core::api::Multipart;
///
/// let (content_type, body) = Multipart::new()
///     .text("model", "whisper")
///     .file("file", "a.wav", "audio/wav", &b"RIFF...."[..])
///     .finish();
/// assert!(content_type.to_str().unwrap().starts_with("multipart/form-data; boundary="));
/// assert!(body.windows(5).any(|w| w == b"RIFF."));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Multipart {
    parts: Vec<FormPart>,
}

#[derive(Clone)]
struct FormPart {
    name: String,
    file: Option<(String, String)>,
    bytes: Bytes,
}

impl std::fmt::Debug for FormPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormPart")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

impl Multipart {
    /// An empty form.
    pub fn new() -> Self {
        Multipart::default()
    }

    /// A text field.
    pub fn text(mut self, name: &str, value: impl Into<String>) -> Self {
        self.parts.push(FormPart {
            name: name.to_owned(),
            file: None,
            bytes: Bytes::from(value.into()),
        });
        self
    }

    /// A file field: its file name and content type, and its bytes (shared, not copied
    /// until the body is built).
    pub fn file(
        mut self,
        name: &str,
        file_name: &str,
        content_type: &str,
        bytes: impl Into<Bytes>,
    ) -> Self {
        self.parts.push(FormPart {
            name: name.to_owned(),
            file: Some((file_name.to_owned(), content_type.to_owned())),
            bytes: bytes.into(),
        });
        self
    }

    /// The `Content-Type` (with its boundary) and the body.
    ///
    /// The boundary is derived from the content and checked to occur in none of it (another
    /// is derived until one does not), so any bytes can be sent. Names and file names have
    /// `"`, CR and LF percent-encoded, as browsers do; a content type that a header cannot
    /// carry is replaced by `application/octet-stream`.
    pub fn finish(self) -> (HeaderValue, Bytes) {
        let boundary = self.boundary();
        let mut out = BytesMut::with_capacity(
            self.parts
                .iter()
                .map(|p| p.bytes.len() + p.name.len() + 160)
                .sum::<usize>()
                + boundary.len()
                + 8,
        );
        for p in &self.parts {
            out.put_slice(b"--");
            out.put_slice(boundary.as_bytes());
            out.put_slice(b"\r\nContent-Disposition: form-data; name=\"");
            out.put_slice(escape(&p.name).as_bytes());
            out.put_slice(b"\"");
            if let Some((file_name, content_type)) = &p.file {
                out.put_slice(b"; filename=\"");
                out.put_slice(escape(file_name).as_bytes());
                out.put_slice(b"\"\r\nContent-Type: ");
                let ct = if HeaderValue::from_str(content_type).is_ok() && !content_type.is_empty()
                {
                    content_type.as_str()
                } else {
                    "application/octet-stream"
                };
                out.put_slice(ct.as_bytes());
            }
            out.put_slice(b"\r\n\r\n");
            out.put_slice(&p.bytes);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(boundary.as_bytes());
        out.put_slice(b"--\r\n");
        let content_type =
            HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}"))
                .unwrap_or_else(|_| HeaderValue::from_static("multipart/form-data"));
        (content_type, out.freeze())
    }

    fn boundary(&self) -> String {
        // FNV-1a over the content: deterministic (no randomness in the core), and re-derived
        // with a counter until it appears nowhere in the parts.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for p in &self.parts {
            for &b in p.name.as_bytes().iter().chain(p.bytes.iter()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
        self.pick(h)
    }

    fn pick(&self, h: u64) -> String {
        let mut n: u64 = 0;
        loop {
            let candidate = candidate(h, n);
            let clash = self.parts.iter().any(|p| {
                contains(&p.bytes, candidate.as_bytes())
                    || contains(p.name.as_bytes(), candidate.as_bytes())
            });
            if !clash {
                return candidate;
            }
            n += 1;
        }
    }
}

fn candidate(h: u64, n: u64) -> String {
    format!("vllm-client-{h:016x}{n:x}")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn escape(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_rfc_7578() {
        let (ct, body) = Multipart::new()
            .text("model", "m")
            .file("file", "a\"b.wav", "audio/wav", &b"xyz"[..])
            .finish();
        let ct = ct.to_str().unwrap().to_owned();
        let boundary = ct.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let expected = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a%22b.wav\"\r\n\
             Content-Type: audio/wav\r\n\r\nxyz\r\n--{b}--\r\n",
            b = boundary
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn the_boundary_never_occurs_in_the_content() {
        // Content that holds the first two candidates for a hash: the third is taken.
        let h = 42;
        let (c0, c1) = (candidate(h, 0), candidate(h, 1));
        let hostile = Multipart::new().text("a", c0.clone()).file(
            "f",
            "f",
            "application/octet-stream",
            c1.clone().into_bytes(),
        );
        let b = hostile.pick(h);
        assert!(b != c0 && b != c1);
        assert!(!contains(c0.as_bytes(), b.as_bytes()) && !contains(c1.as_bytes(), b.as_bytes()));
        // And in a whole body, the boundary appears only as the delimiters (two openings and
        // the close).
        let (ct, body) = Multipart::new()
            .text("a", "x")
            .file("f", "f", "application/octet-stream", &b"y"[..])
            .finish();
        let b = ct
            .to_str()
            .unwrap()
            .split("boundary=")
            .nth(1)
            .unwrap()
            .to_owned();
        let count = body.windows(b.len()).filter(|w| *w == b.as_bytes()).count();
        assert_eq!(count, 3);
    }
}
