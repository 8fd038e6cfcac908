use crate::dsp::frame::{BodyDecoder, Head};
use crate::dsp::sink::Sink;
use crate::dsp::{Channel, DspError, FrameHeader, FrameKind};
use crate::reader::Reader;

/// `Response` (0x21): the successful answer to a request; the whole payload is the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response<'a> {
    /// The channel of the request this answers.
    pub channel: Channel,
    /// Slot of the request this answers.
    pub slot: u32,
    /// Sequence id of the request this answers.
    pub sequence: u32,
    /// Request id of the request this answers.
    pub request_id: u64,
    /// The application payload (borrowed, or from the decoder's scratch when compressed).
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::Response;

    pub(crate) fn head(&self) -> Head {
        Head::exchange(self.channel, self.slot, self.sequence, self.request_id)
    }

    pub(crate) fn put_fixed<S: Sink>(&self, _s: &mut S) {}

    pub(crate) fn body(&self) -> &'a [u8] {
        self.body
    }

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
}
