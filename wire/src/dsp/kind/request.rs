use bytes::Bytes;

use super::need;
use crate::dsp::frame::{BodyDecoder, Head};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{Channel, DspError, Flags, FrameHeader, FrameKind};
use crate::reader::Reader;

/// `Request` (0x20): one exchange request on a channel.
///
/// Slot, sequence id and request id travel in the header (the exactly-once key is
/// `(nexus, channel, slot, sequence)`); the exchange id and, for ordered requests, the
/// order number are fixed payload fields that stay outside the compressed body, so a
/// receiver can dispatch, or answer a retry from its reply cache, without decompressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Request<B> {
    /// Fore channel (client → server) or backchannel (server → client).
    pub channel: Channel,
    /// Slot in the channel's slot table.
    pub slot: u32,
    /// Sequence id within the slot.
    pub sequence: u32,
    /// The initiator's id for this request, kept across retries.
    pub request_id: u64,
    /// The application exchange (request type) number.
    pub exchange: u32,
    /// For an ordered request (ORDERED flag): its position among the initiator's ordered
    /// requests on this channel; the responder delivers them in this order.
    pub order: Option<u64>,
    /// The application payload (as decoded: borrowed from the input, or from the
    /// decoder's scratch buffer when the frame was compressed).
    pub body: B,
}

impl<B: AsRef<[u8]>> Request<B> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::Request;

    /// Largest number of fixed payload bytes before the body (exchange id + order).
    pub const MAX_FIXED_LEN: usize = 12;

    pub(crate) fn head(&self) -> Head {
        Head::exchange(self.channel, self.slot, self.sequence, self.request_id)
            .with(Flags::ORDERED, self.order.is_some())
    }

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put_u32(self.exchange);
        if let Some(order) = self.order {
            s.put_u64(order);
        }
    }

    pub(crate) fn body(&self) -> &[u8] {
        self.body.as_ref()
    }
}

impl<'a> Request<&'a [u8]> {
    #[inline]
    pub(crate) fn decode(
        h: &FrameHeader,
        r: &mut Reader<'a>,
        body: BodyDecoder<'a>,
    ) -> Result<Self, DspError> {
        let k = Self::KIND;
        let exchange = need(r.u32(), k)?;
        let order = if h.flags.contains(Flags::ORDERED) {
            Some(need(r.u64(), k)?)
        } else {
            None
        };
        Ok(Request {
            channel: Head::channel_of(h.flags),
            slot: h.slot,
            sequence: h.sequence,
            request_id: h.request_id,
            exchange,
            order,
            body: body.finish(k, r)?,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> Request<Bytes> {
        Request {
            channel: self.channel,
            slot: self.slot,
            sequence: self.sequence,
            request_id: self.request_id,
            exchange: self.exchange,
            order: self.order,
            body: s.bytes(self.body),
        }
    }
}
