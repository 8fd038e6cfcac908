//! The [`FrameOf`] enum over every kind, and the payload plumbing shared by the kinds.

use bytes::Bytes;

use super::kind::*;
use super::share::Share;
use super::sink::Sink;
use super::{Channel, DspError, Flags, FrameHeader, FrameKind};
use crate::reader::Reader;

/// One DSP frame, its byte fields (bodies, SASL data) held as `B` and its text fields
/// (reasons, identities, mechanism names) as `T`.
///
/// The decoder returns [`Frame`]: `FrameOf<&[u8], &str>`, borrowing its input. A state
/// machine that keeps frames (a request in a retry queue, a reply in a cache) holds a
/// [`SharedFrame`]: `FrameOf<Bytes, String>`, whose bodies share the buffer they arrived
/// in ([`Frame::to_shared`]). Both encode alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameOf<B, T> {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Auth`].
    Auth(Auth<B, T>),
    /// See [`AuthChallenge`].
    AuthChallenge(AuthChallenge<B>),
    /// See [`AuthResponse`].
    AuthResponse(AuthResponse<B>),
    /// See [`AuthResult`].
    AuthResult(AuthResult<B, T>),
    /// See [`NexusCreate`].
    NexusCreate(NexusCreate<T>),
    /// See [`NexusCreated`].
    NexusCreated(NexusCreated<T>),
    /// See [`BindConnection`].
    BindConnection(BindConnection),
    /// See [`BindAck`].
    BindAck(BindAck<T>),
    /// See [`NexusRecover`].
    NexusRecover(NexusRecover<T>),
    /// See [`NexusRecovered`].
    NexusRecovered(NexusRecovered<T>),
    /// See [`NexusDestroy`].
    NexusDestroy(NexusDestroy),
    /// See [`NexusDestroyed`].
    NexusDestroyed(NexusDestroyed<T>),
    /// See [`Request`].
    Request(Request<B>),
    /// See [`Response`].
    Response(Response<B>),
    /// See [`ResponseError`].
    ResponseError(ResponseError<B>),
    /// See [`Cancel`].
    Cancel(Cancel),
    /// See [`Credit`].
    Credit(Credit),
    /// See [`Ping`].
    Ping(Ping),
    /// See [`Pong`].
    Pong(Pong),
    /// See [`GoAway`].
    GoAway(GoAway<T>),
}

/// A frame borrowing its variable-length fields from the input (or, for a compressed
/// body, from the decoder's scratch buffer): what the decoder returns.
pub type Frame<'a> = FrameOf<&'a [u8], &'a str>;

/// A frame owning its variable-length fields, its bodies shared rather than copied.
pub type SharedFrame = FrameOf<Bytes, String>;

/// Applies `$e` to the kind struct inside any [`Frame`] variant.
macro_rules! each_kind {
    ($frame:expr, $f:ident => $e:expr) => {
        match $frame {
            FrameOf::Hello($f) => $e,
            FrameOf::Auth($f) => $e,
            FrameOf::AuthChallenge($f) => $e,
            FrameOf::AuthResponse($f) => $e,
            FrameOf::AuthResult($f) => $e,
            FrameOf::NexusCreate($f) => $e,
            FrameOf::NexusCreated($f) => $e,
            FrameOf::BindConnection($f) => $e,
            FrameOf::BindAck($f) => $e,
            FrameOf::NexusRecover($f) => $e,
            FrameOf::NexusRecovered($f) => $e,
            FrameOf::NexusDestroy($f) => $e,
            FrameOf::NexusDestroyed($f) => $e,
            FrameOf::Request($f) => $e,
            FrameOf::Response($f) => $e,
            FrameOf::ResponseError($f) => $e,
            FrameOf::Cancel($f) => $e,
            FrameOf::Credit($f) => $e,
            FrameOf::Ping($f) => $e,
            FrameOf::Pong($f) => $e,
            FrameOf::GoAway($f) => $e,
        }
    };
}

impl<B: AsRef<[u8]>, T: AsRef<str>> FrameOf<B, T> {
    /// The frame's kind.
    pub fn kind(&self) -> FrameKind {
        match self {
            FrameOf::Hello(_) => FrameKind::Hello,
            FrameOf::Auth(_) => FrameKind::Auth,
            FrameOf::AuthChallenge(_) => FrameKind::AuthChallenge,
            FrameOf::AuthResponse(_) => FrameKind::AuthResponse,
            FrameOf::AuthResult(_) => FrameKind::AuthResult,
            FrameOf::NexusCreate(_) => FrameKind::NexusCreate,
            FrameOf::NexusCreated(_) => FrameKind::NexusCreated,
            FrameOf::BindConnection(_) => FrameKind::BindConnection,
            FrameOf::BindAck(_) => FrameKind::BindAck,
            FrameOf::NexusRecover(_) => FrameKind::NexusRecover,
            FrameOf::NexusRecovered(_) => FrameKind::NexusRecovered,
            FrameOf::NexusDestroy(_) => FrameKind::NexusDestroy,
            FrameOf::NexusDestroyed(_) => FrameKind::NexusDestroyed,
            FrameOf::Request(_) => FrameKind::Request,
            FrameOf::Response(_) => FrameKind::Response,
            FrameOf::ResponseError(_) => FrameKind::ResponseError,
            FrameOf::Cancel(_) => FrameKind::Cancel,
            FrameOf::Credit(_) => FrameKind::Credit,
            FrameOf::Ping(_) => FrameKind::Ping,
            FrameOf::Pong(_) => FrameKind::Pong,
            FrameOf::GoAway(_) => FrameKind::GoAway,
        }
    }

    /// The compressible body of an exchange frame (Request, Response, ResponseError);
    /// empty for every other kind.
    pub fn body(&self) -> &[u8] {
        match self {
            FrameOf::Request(f) => f.body(),
            FrameOf::Response(f) => f.body(),
            FrameOf::ResponseError(f) => f.body(),
            _ => &[],
        }
    }

    /// The header fields this frame sets (flags other than DIGEST/COMPRESSED, slot,
    /// sequence, request id).
    pub(crate) fn head(&self) -> Head {
        match self {
            FrameOf::Request(f) => f.head(),
            FrameOf::Response(f) => f.head(),
            FrameOf::ResponseError(f) => f.head(),
            FrameOf::Cancel(f) => f.head(),
            FrameOf::Credit(f) => f.head(),
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
            FrameOf::Auth(f) => f.validate(),
            FrameOf::AuthResult(f) => f.validate(),
            _ => Ok(()),
        }
    }
}

impl<'a> Frame<'a> {
    /// This frame with its fields owned: byte fields that lie inside `input` (the buffer
    /// it was decoded from) share its storage instead of being copied; the others (a
    /// body decompressed into the decoder's scratch buffer) and texts are copied.
    pub fn to_shared(self, input: &Bytes) -> SharedFrame {
        let s = Share(input);
        match self {
            FrameOf::Hello(f) => FrameOf::Hello(f),
            FrameOf::Auth(f) => FrameOf::Auth(f.to_shared(s)),
            FrameOf::AuthChallenge(f) => FrameOf::AuthChallenge(f.to_shared(s)),
            FrameOf::AuthResponse(f) => FrameOf::AuthResponse(f.to_shared(s)),
            FrameOf::AuthResult(f) => FrameOf::AuthResult(f.to_shared(s)),
            FrameOf::NexusCreate(f) => FrameOf::NexusCreate(f.to_shared(s)),
            FrameOf::NexusCreated(f) => FrameOf::NexusCreated(f.to_shared(s)),
            FrameOf::BindConnection(f) => FrameOf::BindConnection(f),
            FrameOf::BindAck(f) => FrameOf::BindAck(f.to_shared(s)),
            FrameOf::NexusRecover(f) => FrameOf::NexusRecover(f.to_shared(s)),
            FrameOf::NexusRecovered(f) => FrameOf::NexusRecovered(f.to_shared(s)),
            FrameOf::NexusDestroy(f) => FrameOf::NexusDestroy(f),
            FrameOf::NexusDestroyed(f) => FrameOf::NexusDestroyed(f.to_shared(s)),
            FrameOf::Request(f) => FrameOf::Request(f.to_shared(s)),
            FrameOf::Response(f) => FrameOf::Response(f.to_shared(s)),
            FrameOf::ResponseError(f) => FrameOf::ResponseError(f.to_shared(s)),
            FrameOf::Cancel(f) => FrameOf::Cancel(f),
            FrameOf::Credit(f) => FrameOf::Credit(f),
            FrameOf::Ping(f) => FrameOf::Ping(f),
            FrameOf::Pong(f) => FrameOf::Pong(f),
            FrameOf::GoAway(f) => FrameOf::GoAway(f.to_shared(s)),
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
