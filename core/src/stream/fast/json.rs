//! The JSON grammar under the fast path's scanner: plain string bytes found a word at a time,
//! keys compared word by word, whitespace, literals, strings with their escapes, and the
//! values it skips — each exactly as `serde_json` reads or refuses them.

use std::borrow::Cow;

use super::Scanner;

/// How deep an unknown value may nest (objects and arrays) before the scanner gives up.
pub(super) const MAX_SKIP_DEPTH: u8 = 32;

/// The index of the first byte from `i` on that ends a run of plain string bytes: a quote, a
/// backslash or a control character (`b.len()` if none). Eight bytes at a time: for each class
/// the lowest flagged byte of `(x - 0x01…) & !x & 0x80…` is exact (a borrow only ever flags
/// bytes above a true hit), so the lowest flag of the three is the first special byte.
#[inline]
pub(super) fn special(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = u64::from_le_bytes([1; 8]);
    const HI: u64 = u64::from_le_bytes([0x80; 8]);
    if let Some(rest) = b.get(i..) {
        for word in rest.chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            let w = u64::from_le_bytes(w);
            let quote = w ^ (LO * u64::from(b'"'));
            let slash = w ^ (LO * u64::from(b'\\'));
            let hits = ((quote.wrapping_sub(LO) & !quote)
                | (slash.wrapping_sub(LO) & !slash)
                | (w.wrapping_sub(LO * 0x20) & !w))
                & HI;
            if hits != 0 {
                return i + (hits.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// Whether `b[i..]` starts with `k`, compared word by word (keys are 4 to 24 bytes; a call to
/// `memcmp` per key would cost more than the key).
#[inline]
pub(super) fn has_key(b: &[u8], i: usize, k: &[u8]) -> bool {
    fn w8(s: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    }
    fn w4(s: &[u8], at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_le_bytes(w)
    }
    let n = k.len();
    let Some(s) = b.get(i..i + n) else {
        return false;
    };
    match n {
        8..=24 => {
            w8(s, 0) == w8(k, 0)
                && w8(s, n - 8) == w8(k, n - 8)
                && (n <= 16 || w8(s, 8) == w8(k, 8))
        }
        4..=7 => w4(s, 0) == w4(k, 0) && w4(s, n - 4) == w4(k, n - 4),
        _ => s == k,
    }
}

impl<'a> Scanner<'a> {
    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips JSON whitespace (space, tab, LF, CR; nothing else, as serde).
    #[inline]
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// The next byte after whitespace (not taken).
    #[inline]
    pub(super) fn peek_ws(&mut self) -> Option<u8> {
        match self.peek()? {
            b' ' | b'\t' | b'\n' | b'\r' => {
                self.ws();
                self.peek()
            }
            c => Some(c),
        }
    }

    /// Whitespace, then `c`.
    #[inline]
    pub(super) fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek_ws()? != c {
            return None;
        }
        self.i += 1;
        Some(())
    }

    /// Whether the literal `lit` comes next (taken if so).
    #[inline]
    pub(super) fn lit(&mut self, lit: &[u8]) -> bool {
        let hit = self.b.get(self.i..self.i + lit.len()) == Some(lit);
        if hit {
            self.i += lit.len();
        }
        hit
    }

    pub(super) fn null(&mut self) -> Option<()> {
        self.ws();
        self.lit(b"null").then_some(())
    }

    /// A string (at its opening quote), borrowed when it has no escape.
    #[inline]
    pub(super) fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.i + 1;
        self.i = special(self.b, start);
        match *self.b.get(self.i)? {
            b'"' => {
                let s = self.text.get(start..self.i)?;
                self.i += 1;
                Some(Cow::Borrowed(s))
            }
            b'\\' => self.escaped(start),
            _ => None,
        }
    }

    /// The rest of a string with escapes, decoded as serde decodes them into a `String`.
    pub(super) fn escaped(&mut self, start: usize) -> Option<Cow<'a, str>> {
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(self.text.get(start..self.i)?);
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return None,
                    };
                    out.push(c);
                }
                c if c < 0x20 => return None,
                _ => {
                    let run = self.i;
                    self.i = special(self.b, run);
                    out.push_str(self.text.get(run..self.i)?);
                }
            }
        }
    }

    /// The character of a `\u` escape (after the `u`): a BMP character that is not a
    /// surrogate, or a high surrogate followed by `\u` and a low one.
    pub(super) fn unicode(&mut self) -> Option<char> {
        let cp = self.hex4()?;
        match cp {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2)? != b"\\u" {
                    return None;
                }
                self.i += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                char::from_u32(0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(cp),
        }
    }

    pub(super) fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut v = 0;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// Skips any JSON value, checking it as serde checks a value it ignores. `depth` is the
    /// nesting of the value; deeper than [`MAX_SKIP_DEPTH`] is left to serde.
    #[inline]
    pub(super) fn skip(&mut self, depth: u8) -> Option<()> {
        match self.peek_ws()? {
            b'"' => self.skip_string(),
            b'n' => self.lit(b"null").then_some(()),
            b't' => self.lit(b"true").then_some(()),
            b'f' => self.lit(b"false").then_some(()),
            b'-' | b'0'..=b'9' => self.skip_number(),
            b'[' | b'{' if depth < MAX_SKIP_DEPTH => self.skip_nested(depth),
            _ => None,
        }
    }

    /// Skips an array or an object (at its opening bracket).
    pub(super) fn skip_nested(&mut self, depth: u8) -> Option<()> {
        let close = if self.peek()? == b'[' { b']' } else { b'}' };
        self.i += 1;
        if self.peek_ws()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            if close == b'}' {
                if self.peek_ws()? != b'"' {
                    return None;
                }
                self.skip_string()?;
                self.eat(b':')?;
            }
            self.skip(depth + 1)?;
            match self.peek_ws()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Skips a string (at its opening quote): no raw control character, known escapes only,
    /// `\u` with four hex digits.
    #[inline]
    pub(super) fn skip_string(&mut self) -> Option<()> {
        self.i += 1;
        loop {
            self.i = special(self.b, self.i);
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            self.hex4()?;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// Skips a number in JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    #[inline]
    pub(super) fn skip_number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            self.digits();
        }
        Some(())
    }

    pub(super) fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }
}
