//! Encoding frames into buffers and decoding them from byte streams.

use std::io::IoSlice;

use crate::xxh3::{Hasher64, hash64};
use bytes::BufMut;

use super::header::{DIGEST_LEN, HEADER_LEN, peek_header};
use super::sink::{Count, Sink, SliceSink, Tee};
use super::{DspError, Flags, Frame, FrameHeader, FrameOf};
use crate::reader::Reader;

/// Bodies shorter than this are never compressed: an lz4 call clears an 8 KiB hash table
/// (hundreds of nanoseconds), more than the few bytes it could save on a short body is
/// worth on any link this engine targets.
pub const MIN_COMPRESS_LEN: usize = 128;

/// Payloads up to this length are digested in one shot from a stack copy when encoding.
const SMALL_PAYLOAD_LEN: u32 = 256;

/// Payload limit before a nexus has negotiated its own (Hello, auth, nexus management).
pub const HANDSHAKE_MAX_PAYLOAD: u32 = 64 * 1024;

/// The xxh3-64 digest of a payload given as consecutive pieces (e.g. the fixed fields and
/// a body that lives elsewhere), as carried in the DIGEST trailer.
pub fn payload_digest(pieces: &[&[u8]]) -> u64 {
    match pieces {
        [] => hash64(&[]),
        [one] => hash64(one),
        many => {
            let mut d = Hasher64::new();
            for piece in many {
                d.update(piece);
            }
            d.digest()
        }
    }
}

impl<B: AsRef<[u8]>, T: AsRef<str>> FrameOf<B, T> {
    /// The header this frame gets when encoded uncompressed, with or without digest.
    pub fn header(&self, digest: bool) -> Result<FrameHeader, DspError> {
        let mut fixed = Count(0);
        self.put_fixed(&mut fixed);
        self.header_for(digest, false, fixed.0.saturating_add(self.body().len()))
    }

    #[inline]
    fn header_for(
        &self,
        digest: bool,
        compressed: bool,
        payload_len: usize,
    ) -> Result<FrameHeader, DspError> {
        self.validate()?;
        let head = self.head();
        Ok(FrameHeader {
            kind: self.kind(),
            flags: head
                .flags
                .with(Flags::DIGEST, digest)
                .with(Flags::COMPRESSED, compressed),
            slot: head.slot,
            sequence: head.sequence,
            request_id: head.request_id,
            payload_len: u32::try_from(payload_len).map_err(|_| DspError::PayloadTooLarge)?,
        })
    }

    /// Length of the uncompressed encoding: header, payload and digest trailer if any.
    pub fn encoded_len(&self, digest: bool) -> usize {
        let mut fixed = Count(0);
        self.put_fixed(&mut fixed);
        let trailer = if digest { DIGEST_LEN } else { 0 };
        HEADER_LEN
            .saturating_add(fixed.0)
            .saturating_add(self.body().len())
            .saturating_add(trailer)
    }

    /// Appends the frame, uncompressed, to `out`. Allocation-free (beyond what `out`
    /// itself may do); returns the header written. `out` must be able to take
    /// [`encoded_len`](Self::encoded_len) bytes (a `Vec` or `BytesMut` grows; a fixed
    /// `&mut [u8]` that is too short makes `BufMut` panic).
    #[inline]
    pub fn encode<O: BufMut>(&self, digest: bool, out: &mut O) -> Result<FrameHeader, DspError> {
        self.encode_with_body(digest, None, out)
    }

    /// Encodes with `compressed_body` (u32 length + lz4 block) in place of the body when
    /// given.
    #[inline]
    fn encode_with_body<O: BufMut>(
        &self,
        digest: bool,
        compressed_body: Option<&[u8]>,
        out: &mut O,
    ) -> Result<FrameHeader, DspError> {
        let mut fixed = Count(0);
        self.put_fixed(&mut fixed);
        let body = compressed_body.unwrap_or_else(|| self.body());
        let header = self.header_for(
            digest,
            compressed_body.is_some(),
            fixed.0.saturating_add(body.len()),
        )?;
        out.put_slice(&header.to_bytes());
        if digest && header.payload_len <= SMALL_PAYLOAD_LEN {
            // Small payloads: assemble on the stack and hash in one shot; the streaming
            // hasher's setup and finish would cost more than the copy.
            let mut stack = [0; SMALL_PAYLOAD_LEN as usize];
            let mut small = SliceSink {
                buf: &mut stack,
                len: 0,
                overflow: false,
            };
            self.put_fixed(&mut small);
            small.put(body);
            let len = small.len;
            if !small.overflow
                && let Some(payload) = stack.get(..len)
            {
                out.put_slice(payload);
                out.put_u64(hash64(payload));
                return Ok(header);
            }
        }
        if digest && fixed.0 == 0 {
            // Response and ResponseError: the payload is the body, hash it in one shot.
            out.put_slice(body);
            out.put_u64(hash64(body));
            return Ok(header);
        }
        let mut tee = Tee {
            out,
            digest: digest.then(Hasher64::new),
        };
        self.put_fixed(&mut tee);
        tee.put(body);
        if let Some(d) = tee.digest {
            tee.out.put_u64(d.digest());
        }
        Ok(header)
    }

    /// Splits the uncompressed encoding into three pieces for a vectored write, without
    /// copying the body (borrowed from the frame): header + fixed fields, the body as it lies, and the digest
    /// trailer (empty without digest). `None` when the fixed fields are longer than
    /// [`SplitFrame::MAX_FIXED_LEN`] (never the case for Request, Response, ResponseError,
    /// Cancel, Credit, Ping and Pong).
    pub fn split(&self, digest: bool) -> Option<Result<SplitFrame<'_>, DspError>> {
        let mut head = [0; HEADER_LEN + SplitFrame::MAX_FIXED_LEN];
        let (header_bytes, fixed_area) = head.split_at_mut(HEADER_LEN);
        let mut fixed = SliceSink {
            buf: fixed_area,
            len: 0,
            overflow: false,
        };
        self.put_fixed(&mut fixed);
        if fixed.overflow {
            return None;
        }
        let fixed_len = fixed.len;
        let body = self.body();
        let header = match self.header_for(digest, false, fixed_len.saturating_add(body.len())) {
            Ok(header) => header,
            Err(e) => return Some(Err(e)),
        };
        let fixed_bytes = fixed_area.get(..fixed_len).unwrap_or_default();
        let trailer = digest.then(|| payload_digest(&[fixed_bytes, body]).to_be_bytes());
        header_bytes.copy_from_slice(&header.to_bytes());
        Some(Ok(SplitFrame {
            header,
            head,
            head_len: HEADER_LEN + fixed_len,
            body,
            trailer,
        }))
    }
}

/// An encoded frame in three pieces for a vectored write; see [`FrameOf::split`].
#[derive(Debug, Clone, Copy)]
pub struct SplitFrame<'a> {
    header: FrameHeader,
    head: [u8; HEADER_LEN + SplitFrame::MAX_FIXED_LEN],
    head_len: usize,
    body: &'a [u8],
    trailer: Option<[u8; DIGEST_LEN]>,
}

impl<'a> SplitFrame<'a> {
    /// Largest fixed-field part [`Frame::split`] handles.
    pub const MAX_FIXED_LEN: usize = 32;

    /// The frame's header.
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// Header bytes followed by the fixed payload fields.
    pub fn head(&self) -> &[u8] {
        self.head.get(..self.head_len).unwrap_or_default()
    }

    /// The body, borrowed from the frame.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The digest trailer, or an empty slice.
    pub fn trailer(&self) -> &[u8] {
        self.trailer.as_ref().map_or(&[], |t| t.as_slice())
    }

    /// Total bytes on the wire.
    pub fn wire_len(&self) -> usize {
        self.head_len + self.body.len() + self.trailer().len()
    }

    /// The three pieces, ready for `write_vectored` / `sendmsg`.
    pub fn io_slices(&self) -> [IoSlice<'_>; 3] {
        [
            IoSlice::new(self.head()),
            IoSlice::new(self.body),
            IoSlice::new(self.trailer()),
        ]
    }
}

/// Whether and how the encoder compresses bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Never compress.
    #[default]
    Off,
    /// lz4-compress bodies of at least [`MIN_COMPRESS_LEN`] bytes, and send the result
    /// only if it is smaller than the body; incompressible bodies go raw (flag clear).
    Lz4,
}

/// Encoder settings (per nexus, once negotiated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    /// Append an xxh3-64 digest of the payload to every frame.
    pub digest: bool,
    /// Compression of Request, Response and ResponseError bodies.
    pub compression: Compression,
}

/// Encodes frames with the options of a nexus, reusing one scratch buffer for
/// compression (so, once warmed up, encoding allocates nothing).
#[derive(Debug, Default)]
pub struct FrameEncoder {
    options: EncodeOptions,
    scratch: Vec<u8>,
}

impl FrameEncoder {
    /// An encoder with these options.
    pub fn new(options: EncodeOptions) -> Self {
        FrameEncoder {
            options,
            scratch: Vec::new(),
        }
    }

    /// The current options.
    pub fn options(&self) -> EncodeOptions {
        self.options
    }

    /// Changes the options (e.g. once the nexus has negotiated digest and compression).
    pub fn set_options(&mut self, options: EncodeOptions) {
        self.options = options;
    }

    /// Appends `frame` to `out`; returns the header written (its flags tell whether the
    /// body went compressed).
    pub fn encode<B: AsRef<[u8]>, T: AsRef<str>, O: BufMut>(
        &mut self,
        frame: &FrameOf<B, T>,
        out: &mut O,
    ) -> Result<FrameHeader, DspError> {
        let digest = self.options.digest;
        if let Some(compressed) = self.compressed_body(frame) {
            return frame.encode_with_body(digest, Some(compressed), out);
        }
        frame.encode(digest, out)
    }

    /// The frame's body compressed (in the scratch buffer), if the options ask for lz4,
    /// the frame kind and body length allow it, and it pays.
    fn compressed_body<B: AsRef<[u8]>, T: AsRef<str>>(
        &mut self,
        frame: &FrameOf<B, T>,
    ) -> Option<&[u8]> {
        let body = frame.body();
        if self.options.compression == Compression::Lz4
            && frame.kind().compressible()
            && body.len() >= MIN_COMPRESS_LEN
        {
            compress(&mut self.scratch, body)
        } else {
            None
        }
    }

    /// Appends `frame`, whose body is already in compressed form (`u32 length ‖ lz4
    /// block`, as [`compress_body`] makes it on a thread of the caller's), with the
    /// compressed flag: for a nexus that agreed on lz4.
    pub fn encode_compressed<B: AsRef<[u8]>, T: AsRef<str>, O: BufMut>(
        &mut self,
        frame: &FrameOf<B, T>,
        out: &mut O,
    ) -> Result<FrameHeader, DspError> {
        if !frame.kind().compressible() || frame.body().len() < 4 {
            return Err(DspError::InvalidField(frame.kind()));
        }
        frame.encode_with_body(self.options.digest, Some(frame.body()), out)
    }

    /// Like [`encode`](Self::encode), except that a body going out uncompressed is not
    /// copied: only the head (header and fixed fields) is appended to `out`, and the
    /// returned [`SplitFrame`] says which body and trailer the caller sends after it
    /// (sharing the body's bytes rather than copying them). Returns `None` when the whole
    /// frame went into `out`: compressed, or with fixed fields too long to split.
    pub fn encode_head<'f, B: AsRef<[u8]>, T: AsRef<str>, O: BufMut>(
        &mut self,
        frame: &'f FrameOf<B, T>,
        out: &mut O,
    ) -> Result<Option<SplitFrame<'f>>, DspError> {
        let digest = self.options.digest;
        if let Some(compressed) = self.compressed_body(frame) {
            frame.encode_with_body(digest, Some(compressed), out)?;
            return Ok(None);
        }
        match frame.split(digest) {
            Some(split) => {
                let split = split?;
                out.put_slice(split.head());
                Ok(Some(split))
            }
            None => {
                frame.encode(digest, out)?;
                Ok(None)
            }
        }
    }
}

/// Bodies longer than this are first probed: [`PROBE_LEN`] bytes from their middle are
/// compressed, and if that saves less than 1/16 the body goes raw without compressing
/// the rest. Random or already-compressed data (most of a replication's bulk) then costs
/// one small lz4 call instead of a whole-body one.
const PROBE_ABOVE: usize = 256 * 1024;
/// Bytes compressed by the probe.
const PROBE_LEN: usize = 64 * 1024;

/// Whether a probe of `body` suggests lz4 would shrink it (see [`PROBE_ABOVE`]).
fn worth_compressing(scratch: &mut Vec<u8>, body: &[u8]) -> bool {
    if body.len() <= PROBE_ABOVE {
        return true;
    }
    let start = (body.len() - PROBE_LEN) / 2;
    let Some(sample) = body.get(start..start + PROBE_LEN) else {
        return true;
    };
    let bound = lz4_flex::block::get_maximum_output_size(PROBE_LEN);
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    match lz4_flex::block::compress_into(sample, scratch) {
        Ok(len) => len < PROBE_LEN - PROBE_LEN / 16,
        Err(_) => true,
    }
}

/// Compresses `body` into `scratch` as `u32 length ‖ lz4 block`, returning it only if it
/// is smaller than the body.
fn compress<'s>(scratch: &'s mut Vec<u8>, body: &[u8]) -> Option<&'s [u8]> {
    let body_len = u32::try_from(body.len()).ok()?;
    if !worth_compressing(scratch, body) {
        return None;
    }
    let bound = 4 + lz4_flex::block::get_maximum_output_size(body.len());
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    let (len_field, block_area) = scratch.split_at_mut_checked(4)?;
    len_field.copy_from_slice(&body_len.to_be_bytes());
    let block_len = lz4_flex::block::compress_into(body, block_area).ok()?;
    let total = 4 + block_len;
    if total < body.len() {
        scratch.get(..total)
    } else {
        None
    }
}

/// `body` in the compressed form a frame carries (`u32 length ‖ lz4 block`), if
/// compressing pays as the encoder judges it ([`Compression::Lz4`]): for senders that
/// compress on threads of their own and send with [`FrameEncoder::encode_compressed`].
pub fn compress_body(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() < MIN_COMPRESS_LEN {
        return None;
    }
    let mut out = Vec::new();
    let len = compress(&mut out, body)?.len();
    out.truncate(len);
    Some(out)
}

/// The body that `compressed` (as [`compress_body`] makes it) holds, refused if it
/// would exceed `max_len` bytes or is not well formed.
pub fn decompress_body(compressed: &[u8], max_len: usize) -> Result<Vec<u8>, DspError> {
    let mut r = Reader::new(compressed);
    let len = r.u32().ok_or(DspError::Decompress)?;
    let len = usize::try_from(len).map_err(|_| DspError::Decompress)?;
    if len > max_len {
        return Err(DspError::DecompressedTooLong {
            len: len as u64,
            max: u32::try_from(max_len).unwrap_or(u32::MAX),
        });
    }
    let mut out = vec![0; len];
    match lz4_flex::block::decompress_into(r.take_rest(), &mut out) {
        Ok(written) if written == len => Ok(out),
        _ => Err(DspError::Decompress),
    }
}

/// Decodes one frame from the start of `buf`.
///
/// `Ok(None)`: `buf` does not yet hold the whole frame (the header, once there, has been
/// fully validated, including the length limit). `Ok(Some((header, frame, consumed)))`:
/// the frame occupies `buf[..consumed]`. Bodies borrow from `buf`, except a compressed
/// body, which is decompressed into `scratch` (grown to its high-water mark and reused).
pub fn decode_frame<'a>(
    buf: &'a [u8],
    max_payload: u32,
    scratch: &'a mut Vec<u8>,
) -> Result<Option<(FrameHeader, Frame<'a>, usize)>, DspError> {
    let Some(header) = peek_header(buf, max_payload)? else {
        return Ok(None);
    };
    let frame_len = header.frame_len();
    let Some(bytes) = buf.get(..frame_len) else {
        return Ok(None);
    };
    let mut r = Reader::new(bytes);
    let payload_len = usize::try_from(header.payload_len).map_err(|_| DspError::TooLong {
        len: header.payload_len,
        max: max_payload,
    })?;
    let payload = r
        .take(HEADER_LEN)
        .and_then(|_| r.take(payload_len))
        .ok_or(DspError::Truncated(header.kind))?;
    if header.has_digest() {
        let expected = r.u64().ok_or(DspError::Truncated(header.kind))?;
        // Verified over the payload as sent, before decompression or any parsing.
        if hash64(payload) != expected {
            return Err(DspError::DigestMismatch);
        }
    }
    let frame = Frame::decode_payload(&header, payload, max_payload, scratch)?;
    Ok(Some((header, frame, frame_len)))
}

/// A streaming decoder for one connection: holds the negotiated payload limit and the
/// decompression scratch buffer.
///
/// ```
/// # use hawser_wire::dsp::*;
/// let mut wire = Vec::new();
/// Frame::Ping(Ping { token: 7 }).encode(true, &mut wire)?;
/// Frame::Pong(Pong { token: 7 }).encode(false, &mut wire)?;
///
/// let mut decoder = FrameDecoder::new(HANDSHAKE_MAX_PAYLOAD);
/// let mut offset = 0;
/// let mut kinds = Vec::new();
/// while let Some((frame, consumed)) = decoder.decode(&wire[offset..])? {
///     kinds.push(frame.kind());
///     offset += consumed;
/// }
/// assert_eq!(kinds, [FrameKind::Ping, FrameKind::Pong]);
/// assert_eq!(offset, wire.len());
/// # Ok::<(), DspError>(())
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    max_payload: u32,
    scratch: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder that rejects payloads (as sent, and uncompressed) over `max_payload`.
    /// Start a connection with [`HANDSHAKE_MAX_PAYLOAD`]; raise it once a nexus is bound.
    pub fn new(max_payload: u32) -> Self {
        FrameDecoder {
            max_payload,
            scratch: Vec::new(),
        }
    }

    /// The current payload limit.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Changes the payload limit (e.g. to the nexus's negotiated maximum).
    pub fn set_max_payload(&mut self, max_payload: u32) {
        self.max_payload = max_payload;
    }

    /// Releases the decompression scratch buffer (it otherwise keeps its high-water size).
    pub fn shrink_scratch(&mut self) {
        self.scratch = Vec::new();
    }

    /// Validates the header at the start of `buf`, once 32 bytes are there; see
    /// [`peek_header`].
    pub fn peek_header(&self, buf: &[u8]) -> Result<Option<FrameHeader>, DspError> {
        peek_header(buf, self.max_payload)
    }

    /// Decodes the frame at the start of `buf`: `Ok(None)` if more bytes are needed,
    /// else the frame and the number of bytes it took.
    pub fn decode<'a>(&'a mut self, buf: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DspError> {
        Ok(self
            .decode_with_header(buf)?
            .map(|(_, frame, consumed)| (frame, consumed)))
    }

    /// Like [`decode`](Self::decode), also returning the header (flags: whether the frame
    /// carried a digest and whether its body was compressed).
    pub fn decode_with_header<'a>(
        &'a mut self,
        buf: &'a [u8],
    ) -> Result<Option<(FrameHeader, Frame<'a>, usize)>, DspError> {
        decode_frame(buf, self.max_payload, &mut self.scratch)
    }
}
