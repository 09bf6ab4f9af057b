//! Base64 (RFC 4648, standard alphabet) decoding, and the float32 vectors servers send in it
//! (`encoding_format: "base64"`).

/// Decodes standard base64 (`A–Z a–z 0–9 + /`), with or without `=` padding. `None` for any
/// other character, a misplaced `=`, or a length no encoder produces.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let body = match bytes.iter().position(|&b| b == b'=') {
        Some(at) => {
            // Padding only at the end, at most two, completing a group of four.
            let pad = &bytes[at..];
            if pad.len() > 2 || pad.iter().any(|&b| b != b'=') || bytes.len() % 4 != 0 {
                return None;
            }
            &bytes[..at]
        }
        None => bytes,
    };
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for group in body.chunks(4) {
        let mut n: u32 = 0;
        for &c in group {
            n = (n << 6) | u32::from(value(c)?);
        }
        match group.len() {
            4 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]),
            3 => {
                // 18 bits: two bytes and 2 bits that must be zero.
                if n & 0b11 != 0 {
                    return None;
                }
                out.extend_from_slice(&[(n >> 10) as u8, (n >> 2) as u8]);
            }
            2 => {
                if n & 0b1111 != 0 {
                    return None;
                }
                out.push((n >> 4) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn value(c: u8) -> Option<u8> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    })
}

/// Encodes bytes as standard base64 with padding.
pub fn encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(char::from(T[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes a base64 string of little-endian float32 values (what `encoding_format: "base64"`
/// returns: OpenAI's format, and vLLM's with its default `embed_dtype`). `None` when the text
/// is not base64 or its length is not a multiple of four bytes.
pub fn decode_f32_le(text: &str) -> Option<Vec<f32>> {
    let bytes = decode(text)?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_both_ways() {
        for (plain, coded) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain), coded);
            assert_eq!(decode(coded).as_deref(), Some(plain));
            assert_eq!(decode(coded.trim_end_matches('=')).as_deref(), Some(plain));
        }
    }

    #[test]
    fn rejects_what_no_encoder_writes() {
        for bad in [
            "Z", "Zg=", "Zg===", "Z===", "Zm9v!", "Zm 9v", "Zh==", "Zm9=", "=Zm9",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn float_vectors_round_trip() {
        let v = [0.5f32, -1.25, 3.0e-8, f32::MAX];
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(decode_f32_le(&encode(&bytes)).unwrap(), v);
        // Six bytes are not a whole number of floats.
        assert_eq!(decode_f32_le(&encode(&[0; 6])), None);
    }
}
