use bytes::Bytes;

use crate::dsp::frame::{BodyDecoder, Head};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{Channel, DspError, FrameHeader, FrameKind};
use crate::reader::Reader;

/// `ResponseError` (0x22): the failed answer to a request. The payload is a remote
/// exception encoded as DDF text (an `exception` struct: type, message, nested cause);
/// this codec treats it as opaque bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseError<B> {
    /// The channel of the request this answers.
    pub channel: Channel,
    /// Slot of the request this answers.
    pub slot: u32,
    /// Sequence id of the request this answers.
    pub sequence: u32,
    /// Request id of the request this answers.
    pub request_id: u64,
    /// The DDF `exception` text, opaque to this codec.
    pub exception: B,
}

impl<B: AsRef<[u8]>> ResponseError<B> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::ResponseError;

    pub(crate) fn head(&self) -> Head {
        Head::exchange(self.channel, self.slot, self.sequence, self.request_id)
    }

    pub(crate) fn put_fixed<S: Sink>(&self, _s: &mut S) {}

    pub(crate) fn body(&self) -> &[u8] {
        self.exception.as_ref()
    }
}

impl<'a> ResponseError<&'a [u8]> {
    #[inline]
    pub(crate) fn decode(
        h: &FrameHeader,
        r: &mut Reader<'a>,
        body: BodyDecoder<'a>,
    ) -> Result<Self, DspError> {
        Ok(ResponseError {
            channel: Head::channel_of(h.flags),
            slot: h.slot,
            sequence: h.sequence,
            request_id: h.request_id,
            exception: body.finish(Self::KIND, r)?,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> ResponseError<Bytes> {
        ResponseError {
            channel: self.channel,
            slot: self.slot,
            sequence: self.sequence,
            request_id: self.request_id,
            exception: s.bytes(self.exception),
        }
    }
}
