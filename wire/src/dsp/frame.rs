//! The [`Frame`] enum over every kind, and the payload plumbing shared by the kinds.

use super::kind::*;
use super::sink::Sink;
use super::{Channel, DspError, Flags, FrameHeader, FrameKind};
use crate::reader::Reader;

/// One DSP frame, borrowing its variable-length fields from the input (or, for a
/// compressed body, from the decoder's scratch buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frame<'a> {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Auth`].
    Auth(Auth<'a>),
    /// See [`AuthChallenge`].
    AuthChallenge(AuthChallenge<'a>),
    /// See [`AuthResponse`].
    AuthResponse(AuthResponse<'a>),
    /// See [`AuthResult`].
    AuthResult(AuthResult<'a>),
    /// See [`NexusCreate`].
    NexusCreate(NexusCreate<'a>),
    /// See [`NexusCreated`].
    NexusCreated(NexusCreated<'a>),
    /// See [`BindConnection`].
    BindConnection(BindConnection),
    /// See [`BindAck`].
    BindAck(BindAck<'a>),
    /// See [`NexusRecover`].
    NexusRecover(NexusRecover<'a>),
    /// See [`NexusRecovered`].
    NexusRecovered(NexusRecovered<'a>),
    /// See [`NexusDestroy`].
    NexusDestroy(NexusDestroy),
    /// See [`NexusDestroyed`].
    NexusDestroyed(NexusDestroyed<'a>),
    /// See [`Request`].
    Request(Request<'a>),
    /// See [`Response`].
    Response(Response<'a>),
    /// See [`ResponseError`].
    ResponseError(ResponseError<'a>),
    /// See [`Cancel`].
    Cancel(Cancel),
    /// See [`Credit`].
    Credit(Credit),
    /// See [`Ping`].
    Ping(Ping),
    /// See [`Pong`].
    Pong(Pong),
    /// See [`GoAway`].
    GoAway(GoAway<'a>),
}

/// Applies `$e` to the kind struct inside any [`Frame`] variant.
macro_rules! each_kind {
    ($frame:expr, $f:ident => $e:expr) => {
        match $frame {
            Frame::Hello($f) => $e,
            Frame::Auth($f) => $e,
            Frame::AuthChallenge($f) => $e,
            Frame::AuthResponse($f) => $e,
            Frame::AuthResult($f) => $e,
            Frame::NexusCreate($f) => $e,
            Frame::NexusCreated($f) => $e,
            Frame::BindConnection($f) => $e,
            Frame::BindAck($f) => $e,
            Frame::NexusRecover($f) => $e,
            Frame::NexusRecovered($f) => $e,
            Frame::NexusDestroy($f) => $e,
            Frame::NexusDestroyed($f) => $e,
            Frame::Request($f) => $e,
            Frame::Response($f) => $e,
            Frame::ResponseError($f) => $e,
            Frame::Cancel($f) => $e,
            Frame::Credit($f) => $e,
            Frame::Ping($f) => $e,
            Frame::Pong($f) => $e,
            Frame::GoAway($f) => $e,
        }
    };
}

impl<'a> Frame<'a> {
    /// The frame's kind.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Hello(_) => Hello::KIND,
            Frame::Auth(_) => Auth::KIND,
            Frame::AuthChallenge(_) => AuthChallenge::KIND,
            Frame::AuthResponse(_) => AuthResponse::KIND,
            Frame::AuthResult(_) => AuthResult::KIND,
            Frame::NexusCreate(_) => NexusCreate::KIND,
            Frame::NexusCreated(_) => NexusCreated::KIND,
            Frame::BindConnection(_) => BindConnection::KIND,
            Frame::BindAck(_) => BindAck::KIND,
            Frame::NexusRecover(_) => NexusRecover::KIND,
            Frame::NexusRecovered(_) => NexusRecovered::KIND,
            Frame::NexusDestroy(_) => NexusDestroy::KIND,
            Frame::NexusDestroyed(_) => NexusDestroyed::KIND,
            Frame::Request(_) => Request::KIND,
            Frame::Response(_) => Response::KIND,
            Frame::ResponseError(_) => ResponseError::KIND,
            Frame::Cancel(_) => Cancel::KIND,
            Frame::Credit(_) => Credit::KIND,
            Frame::Ping(_) => Ping::KIND,
            Frame::Pong(_) => Pong::KIND,
            Frame::GoAway(_) => GoAway::KIND,
        }
    }

    /// The compressible body of an exchange frame (Request, Response, ResponseError);
    /// empty for every other kind.
    pub fn body(&self) -> &'a [u8] {
        match self {
            Frame::Request(f) => f.body(),
            Frame::Response(f) => f.body(),
            Frame::ResponseError(f) => f.body(),
            _ => &[],
        }
    }

    /// The header fields this frame sets (flags other than DIGEST/COMPRESSED, slot,
    /// sequence, request id).
    pub(crate) fn head(&self) -> Head {
        match self {
            Frame::Request(f) => f.head(),
            Frame::Response(f) => f.head(),
            Frame::ResponseError(f) => f.head(),
            Frame::Cancel(f) => f.head(),
            Frame::Credit(f) => f.head(),
            _ => Head::default(),
        }
    }

    /// Writes the payload bytes that precede the body (all of the payload, for kinds
    /// without a body).
    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        each_kind!(self, f => f.put_fixed(s))
    }

    /// Checks the fields whose wire width is narrower than their Rust type.
    pub(crate) fn validate(&self) -> Result<(), DspError> {
        match self {
            Frame::Auth(f) => f.validate(),
            Frame::AuthResult(f) => f.validate(),
            _ => Ok(()),
        }
    }

    /// Decodes a payload whose header (and digest) were already checked.
    #[inline]
    pub(crate) fn decode_payload(
        h: &FrameHeader,
        payload: &'a [u8],
        max_payload: u32,
        scratch: &'a mut Vec<u8>,
    ) -> Result<Frame<'a>, DspError> {
        let mut r = Reader::new(payload);
        let body = BodyDecoder {
            compressed: h.is_compressed(),
            max_payload,
            scratch,
        };
        let frame = match h.kind {
            FrameKind::Hello => Frame::Hello(Hello::decode(&mut r)?),
            FrameKind::Auth => Frame::Auth(Auth::decode(&mut r)?),
            FrameKind::AuthChallenge => Frame::AuthChallenge(AuthChallenge::decode(&mut r)?),
            FrameKind::AuthResponse => Frame::AuthResponse(AuthResponse::decode(&mut r)?),
            FrameKind::AuthResult => Frame::AuthResult(AuthResult::decode(&mut r)?),
            FrameKind::NexusCreate => Frame::NexusCreate(NexusCreate::decode(&mut r)?),
            FrameKind::NexusCreated => Frame::NexusCreated(NexusCreated::decode(&mut r)?),
            FrameKind::BindConnection => Frame::BindConnection(BindConnection::decode(&mut r)?),
            FrameKind::BindAck => Frame::BindAck(BindAck::decode(&mut r)?),
            FrameKind::NexusRecover => Frame::NexusRecover(NexusRecover::decode(&mut r)?),
            FrameKind::NexusRecovered => Frame::NexusRecovered(NexusRecovered::decode(&mut r)?),
            FrameKind::NexusDestroy => Frame::NexusDestroy(NexusDestroy::decode(&mut r)?),
            FrameKind::NexusDestroyed => Frame::NexusDestroyed(NexusDestroyed::decode(&mut r)?),
            FrameKind::Request => Frame::Request(Request::decode(h, &mut r, body)?),
            FrameKind::Response => Frame::Response(Response::decode(h, &mut r, body)?),
            FrameKind::ResponseError => {
                Frame::ResponseError(ResponseError::decode(h, &mut r, body)?)
            }
            FrameKind::Cancel => Frame::Cancel(Cancel::decode(h)),
            FrameKind::Credit => Frame::Credit(Credit::decode(h, &mut r)?),
            FrameKind::Ping => Frame::Ping(Ping::decode(&mut r)?),
            FrameKind::Pong => Frame::Pong(Pong::decode(&mut r)?),
            FrameKind::GoAway => Frame::GoAway(GoAway::decode(&mut r)?),
        };
        if !r.is_empty() {
            return Err(DspError::TrailingBytes(h.kind));
        }
        Ok(frame)
    }
}

/// The header fields a kind contributes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Head {
    pub(crate) flags: Flags,
    pub(crate) slot: u32,
    pub(crate) sequence: u32,
    pub(crate) request_id: u64,
}

impl Head {
    pub(crate) fn channel(channel: Channel) -> Head {
        Head {
            flags: Flags::empty().with(Flags::BACKCHANNEL, channel == Channel::Back),
            ..Head::default()
        }
    }

    pub(crate) fn exchange(channel: Channel, slot: u32, sequence: u32, request_id: u64) -> Head {
        Head {
            slot,
            sequence,
            request_id,
            ..Head::channel(channel)
        }
    }

    pub(crate) fn with(self, flag: Flags, on: bool) -> Head {
        Head {
            flags: self.flags.with(flag, on),
            ..self
        }
    }

    pub(crate) fn channel_of(flags: Flags) -> Channel {
        if flags.contains(Flags::BACKCHANNEL) {
            Channel::Back
        } else {
            Channel::Fore
        }
    }
}

/// Produces the body of an exchange frame: the rest of the payload as it lies, or, when
/// the frame is compressed, its decompression into the caller's reused scratch buffer.
#[derive(Debug)]
pub(crate) struct BodyDecoder<'a> {
    compressed: bool,
    max_payload: u32,
    scratch: &'a mut Vec<u8>,
}

impl<'a> BodyDecoder<'a> {
    #[inline]
    pub(crate) fn finish(self, kind: FrameKind, r: &mut Reader<'a>) -> Result<&'a [u8], DspError> {
        let fixed_len = r.used();
        let rest = r.take_rest();
        if !self.compressed {
            return Ok(rest);
        }
        let mut c = Reader::new(rest);
        let body_len = c.u32().ok_or(DspError::Truncated(kind))?;
        // The uncompressed payload (fixed fields + body) obeys the same maximum as the
        // payload as sent; checked before a single byte is allocated for it.
        let total = (fixed_len as u64).saturating_add(u64::from(body_len));
        if total > u64::from(self.max_payload) {
            return Err(DspError::DecompressedTooLong {
                len: total,
                max: self.max_payload,
            });
        }
        let body_len = usize::try_from(body_len).map_err(|_| DspError::Decompress)?;
        let scratch = self.scratch;
        // Grow to the high-water mark only: a reused scratch is never cleared or refilled.
        if scratch.len() < body_len {
            scratch.resize(body_len, 0);
        }
        let out = scratch.get_mut(..body_len).ok_or(DspError::Decompress)?;
        match lz4_flex::block::decompress_into(c.take_rest(), out) {
            Ok(written) if written == body_len => {}
            _ => return Err(DspError::Decompress),
        }
        let scratch: &'a Vec<u8> = scratch;
        scratch.get(..body_len).ok_or(DspError::Decompress)
    }
}
