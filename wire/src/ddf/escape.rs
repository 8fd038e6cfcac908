//! URL encoding (percent-encoding) of names and strings.
//!
//! Canonical form, written by the encoder: every byte outside the unreserved set of
//! RFC 3986 (`A-Z a-z 0-9 - _ . ~`) becomes `%XX` with uppercase hex digits. The decoder
//! is lenient: it also accepts lowercase hex digits and any raw byte other than space,
//! 0x0A and `%` (those cannot appear raw: they delimit fields and lines or start an
//! escape). `+` is a literal plus, not a space.

use bytes::BufMut;

use super::error::DdfErrorKind;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// True for the bytes the encoder writes unescaped.
pub(crate) fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

/// Writes `bytes` in canonical URL encoding.
pub(crate) fn escape_into(bytes: &[u8], buf: &mut impl BufMut) {
    // Runs of unreserved bytes go out in one slice.
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if !is_unreserved(byte) {
            buf.put_slice(bytes.get(start..i).unwrap_or_default());
            buf.put_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xF)],
            ]);
            start = i + 1;
        }
    }
    buf.put_slice(bytes.get(start..).unwrap_or_default());
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Decodes one URL-encoded field (which contains no space and no 0x0A: the caller split
/// there). On failure, returns the index within `field` of the bad `%`.
pub(crate) fn unescape(field: &[u8]) -> Result<Vec<u8>, (usize, DdfErrorKind)> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&byte) = field.get(i) {
        if byte == b'%' {
            let high = field.get(i + 1).copied().and_then(hex_value);
            let low = field.get(i + 2).copied().and_then(hex_value);
            let (Some(high), Some(low)) = (high, low) else {
                return Err((i, DdfErrorKind::BadEscape));
            };
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escape(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(bytes, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn canonical_escapes() {
        assert_eq!(escape(b"foo bar"), "foo%20bar");
        assert_eq!(escape("zorkmid☯️".as_bytes()), "zorkmid%E2%98%AF%EF%B8%8F");
        assert_eq!(escape(b"foo\x80bar"), "foo%80bar");
        assert_eq!(escape(b"a-b_c.d~e+f%g\n"), "a-b_c.d~e%2Bf%25g%0A");
        assert_eq!(escape(b""), "");
    }

    #[test]
    fn lenient_unescape() {
        assert_eq!(unescape(b"foo%2fbar+"), Ok(b"foo/bar+".to_vec()));
        assert_eq!(unescape(b"%E2%98%af"), Ok("☯".as_bytes().to_vec()));
    }

    #[test]
    fn bad_escapes_name_the_percent() {
        assert_eq!(unescape(b"ab%"), Err((2, DdfErrorKind::BadEscape)));
        assert_eq!(unescape(b"ab%4"), Err((2, DdfErrorKind::BadEscape)));
        assert_eq!(unescape(b"%4G"), Err((0, DdfErrorKind::BadEscape)));
    }
}
