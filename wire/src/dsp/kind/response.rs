use bytes::Bytes;

use crate::dsp::frame::{BodyDecoder, Head};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{Channel, DspError, FrameHeader, FrameKind};
use crate::reader::Reader;

/// `Response` (0x21): the successful answer to a request; the whole payload is the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response<B> {
    /// The channel of the request this answers.
    pub channel: Channel,
    /// Slot of the request this answers.
    pub slot: u32,
    /// Sequence id of the request this answers.
    pub sequence: u32,
    /// Request id of the request this answers.
    pub request_id: u64,
    /// The application payload (as decoded: borrowed, or from the decoder's scratch
    /// buffer when compressed).
    pub body: B,
}

impl<B: AsRef<[u8]>> Response<B> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::Response;

    pub(crate) fn head(&self) -> Head {
        Head::exchange(self.channel, self.slot, self.sequence, self.request_id)
    }

    pub(crate) fn put_fixed<S: Sink>(&self, _s: &mut S) {}

    pub(crate) fn body(&self) -> &[u8] {
        self.body.as_ref()
    }
}

impl<'a> Response<&'a [u8]> {
    #[inline]
    pub(crate) fn decode(
        h: &FrameHeader,
        r: &mut Reader<'a>,
        body: BodyDecoder<'a>,
    ) -> Result<Self, DspError> {
        Ok(Response {
            channel: Head::channel_of(h.flags),
            slot: h.slot,
            sequence: h.sequence,
            request_id: h.request_id,
            body: body.finish(Self::KIND, r)?,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> Response<Bytes> {
        Response {
            channel: self.channel,
            slot: self.slot,
            sequence: self.sequence,
            request_id: self.request_id,
            body: s.bytes(self.body),
        }
    }
}
