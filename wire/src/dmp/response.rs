//! Server responses: a short string `NNN INDICATOR[ explanation]`.

use bytes::BufMut;

use super::error::{DmpError, DmpErrorKind};
use crate::reader::Reader;

/// The response codes of the DMP specification, with their fixed indicators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ResponseCode {
    /// 200 OK: the command completed successfully.
    Ok = 200,
    /// 402 BAD-LEASE: lease not valid for this client.
    BadLease = 402,
    /// 403 NO-ACCESS: command not allowed for this client.
    NoAccess = 403,
    /// 404 NOT-FOUND: sink or feed not found.
    NotFound = 404,
    /// 502 SYNTAX-ERROR: illegal values for one or more fields.
    SyntaxError = 502,
    /// 503 INVALID: command was invalid.
    Invalid = 503,
    /// 530 NOT-ALLOWED: command prohibited by server.
    NotAllowed = 530,
    /// 540 NOT-IMPLEMENTED: command is not implemented by server.
    NotImplemented = 540,
    /// 541 INTERNAL-ERROR: server is unable to complete command.
    InternalError = 541,
}

impl ResponseCode {
    /// Every defined code, in numeric order.
    pub const ALL: [Self; 9] = [
        Self::Ok,
        Self::BadLease,
        Self::NoAccess,
        Self::NotFound,
        Self::SyntaxError,
        Self::Invalid,
        Self::NotAllowed,
        Self::NotImplemented,
        Self::InternalError,
    ];

    /// The numeric code.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code for a number, if DMP defines it.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The short indicator that follows the code on the wire.
    pub fn indicator(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::BadLease => "BAD-LEASE",
            Self::NoAccess => "NO-ACCESS",
            Self::NotFound => "NOT-FOUND",
            Self::SyntaxError => "SYNTAX-ERROR",
            Self::Invalid => "INVALID",
            Self::NotAllowed => "NOT-ALLOWED",
            Self::NotImplemented => "NOT-IMPLEMENTED",
            Self::InternalError => "INTERNAL-ERROR",
        }
    }

    /// True for 2xx codes.
    pub fn is_success(self) -> bool {
        self.code() / 100 == 2
    }
}

/// A server response: code, its indicator and an optional explanation, all in one short
/// string (so the whole text is at most 255 bytes).
///
/// `None` and `Some(b"")` differ on the wire: `200 OK` versus `200 OK ` (trailing space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response<'a> {
    code: ResponseCode,
    explanation: Option<&'a [u8]>,
}

impl<'a> Response<'a> {
    /// A response, or `None` if code, indicator and explanation exceed 255 bytes together.
    pub fn new(code: ResponseCode, explanation: Option<&'a [u8]>) -> Option<Self> {
        let response = Self { code, explanation };
        (response.text_len() <= 255).then_some(response)
    }

    /// The response code.
    pub fn code(&self) -> ResponseCode {
        self.code
    }

    /// The explanation after the indicator, if any.
    pub fn explanation(&self) -> Option<&'a [u8]> {
        self.explanation
    }

    fn text_len(&self) -> usize {
        4 + self.code.indicator().len() + self.explanation.map_or(0, |e| 1 + e.len())
    }

    /// Decodes a response from the start of `buf`; `Ok(None)` until the whole short string
    /// is there.
    pub fn decode(buf: &'a [u8]) -> Result<Option<(Self, usize)>, DmpError> {
        let mut reader = Reader::new(buf);
        let Some(text) = reader.short_bytes() else {
            return Ok(None);
        };
        Self::parse_text(text, 1).map(|r| Some((r, reader.used())))
    }

    /// Parses the short string's content; `base` is the offset of `text` in the input.
    fn parse_text(text: &'a [u8], base: usize) -> Result<Self, DmpError> {
        let malformed = |at: usize| DmpError::at(base + at, DmpErrorKind::MalformedResponse);
        let mut code = 0u16;
        for i in 0..3 {
            match text.get(i) {
                Some(d @ b'0'..=b'9') => code = code * 10 + u16::from(d - b'0'),
                _ => return Err(malformed(i)),
            }
        }
        if text.get(3) != Some(&b' ') {
            return Err(malformed(3));
        }
        let code = ResponseCode::from_code(code)
            .ok_or(DmpError::at(base, DmpErrorKind::UnknownResponseCode(code)))?;
        let rest = text.get(4..).unwrap_or_default();
        let indicator = code.indicator().as_bytes();
        let explanation = match rest.strip_prefix(indicator) {
            Some([]) => None,
            Some([b' ', explanation @ ..]) => Some(explanation),
            _ => {
                return Err(DmpError::at(
                    base + 4,
                    DmpErrorKind::WrongIndicator(code.code()),
                ));
            }
        };
        Ok(Self { code, explanation })
    }

    /// Writes the short string.
    pub fn encode(&self, buf: &mut impl BufMut) {
        // `new` and `decode` guarantee the text fits a short string.
        buf.put_u8(self.text_len() as u8);
        let code = self.code.code();
        let digits = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ];
        buf.put_slice(&digits);
        buf.put_slice(self.code.indicator().as_bytes());
        if let Some(explanation) = self.explanation {
            buf.put_u8(b' ');
            buf.put_slice(explanation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(r: &Response<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        r.encode(&mut out);
        out
    }

    #[test]
    fn greeting_bytes() {
        let r = Response::new(ResponseCode::Ok, Some(b"DMP/0.1")).unwrap();
        let bytes = encode(&r);
        assert_eq!(bytes, b"\x0e200 OK DMP/0.1");
        assert_eq!(Response::decode(&bytes), Ok(Some((r, 15))));
    }

    #[test]
    fn every_code_round_trips_with_and_without_explanation() {
        for code in ResponseCode::ALL {
            for explanation in [
                None,
                Some(&b""[..]),
                Some(&b"Ready to write to \"somesink\""[..]),
            ] {
                let r = Response::new(code, explanation).unwrap();
                let bytes = encode(&r);
                assert_eq!(Response::decode(&bytes), Ok(Some((r, bytes.len()))));
            }
        }
        assert_eq!(
            encode(&Response::new(ResponseCode::BadLease, None).unwrap()),
            b"\x0d402 BAD-LEASE"
        );
    }

    #[test]
    fn too_long_explanation_is_refused() {
        assert!(Response::new(ResponseCode::Ok, Some(&[b'x'; 248])).is_some());
        assert!(Response::new(ResponseCode::Ok, Some(&[b'x'; 249])).is_none());
    }

    #[test]
    fn decode_errors_name_the_byte() {
        let err = |text: &[u8]| {
            let mut buf = vec![text.len() as u8];
            buf.extend_from_slice(text);
            Response::decode(&buf).unwrap_err()
        };
        assert_eq!(
            err(b"2x0 OK"),
            DmpError::at(2, DmpErrorKind::MalformedResponse)
        );
        assert_eq!(
            err(b"200OK"),
            DmpError::at(4, DmpErrorKind::MalformedResponse)
        );
        assert_eq!(err(b"20"), DmpError::at(3, DmpErrorKind::MalformedResponse));
        assert_eq!(
            err(b"201 OK"),
            DmpError::at(1, DmpErrorKind::UnknownResponseCode(201))
        );
        assert_eq!(
            err(b"404 OK"),
            DmpError::at(5, DmpErrorKind::WrongIndicator(404))
        );
        assert_eq!(
            err(b"200 OKAY"),
            DmpError::at(5, DmpErrorKind::WrongIndicator(200))
        );
    }

    #[test]
    fn partial_response_needs_more() {
        assert_eq!(Response::decode(b"\x0e200 OK"), Ok(None));
        assert_eq!(Response::decode(b""), Ok(None));
    }
}
