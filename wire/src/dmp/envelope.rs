//! Messages on a direct connection: the envelope, and four-zero-octet null messages.

use bytes::BufMut;

use super::error::{DmpEncodeError, DmpError, DmpErrorKind};
use super::properties::Properties;
use super::short_str::ShortStr;
use crate::reader::Reader;

/// The largest body the 24-bit body length can describe.
pub const MAX_BODY_LEN: usize = 0xFF_FFFF;

/// Default for the largest message size a decoder accepts: the size field of the largest
/// body with generous room for exchange, routing key and properties.
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 17 * 1024 * 1024;

/// Basic.Publish options: the options octet `[0 0 0 0 0 0 mandatory immediate]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PublishOptions {
    /// Bit 1: return the message if it cannot be routed.
    pub mandatory: bool,
    /// Bit 0: return the message if it cannot be delivered at once.
    pub immediate: bool,
}

impl PublishOptions {
    /// The options octet.
    pub fn to_octet(self) -> u8 {
        (u8::from(self.mandatory) << 1) | u8::from(self.immediate)
    }

    /// Parses the options octet; the six reserved bits must be zero.
    pub fn from_octet(octet: u8) -> Result<Self, DmpErrorKind> {
        if octet & !0b11 != 0 {
            return Err(DmpErrorKind::ReservedOptionBits(octet));
        }
        Ok(Self {
            mandatory: octet & 0b10 != 0,
            immediate: octet & 0b01 != 0,
        })
    }
}

/// One message envelope. Every slice borrows from the decoded buffer: the body is never
/// copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Envelope<'a> {
    /// Exchange (sink) name.
    pub exchange: ShortStr<'a>,
    /// Routing key.
    pub routing_key: ShortStr<'a>,
    /// Basic content-header properties.
    pub properties: Properties<'a>,
    /// Basic.Publish options.
    pub options: PublishOptions,
    /// Content body.
    pub body: &'a [u8],
}

impl Envelope<'_> {
    /// The value of the size field: every byte after it.
    pub fn size(&self) -> usize {
        self.exchange.encoded_len()
            + self.routing_key.encoded_len()
            + self.properties.encoded_len()
            + 1
            + 3
            + self.body.len()
    }
}

/// A message on a direct connection: an envelope or a null message (heartbeat).
#[allow(
    clippy::large_enum_variant,
    reason = "decoded one at a time on the stack; boxing would allocate per message"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message<'a> {
    /// Four zero octets; peers ignore it.
    Null,
    /// A message envelope.
    Envelope(Envelope<'a>),
}

impl<'a> Message<'a> {
    /// Decodes one message from the start of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed; the size field is checked against
    /// `max_size` as soon as its four octets are there, before waiting for the rest.
    pub fn decode(buf: &'a [u8], max_size: u32) -> Result<Option<(Self, usize)>, DmpError> {
        let mut reader = Reader::new(buf);
        let Some(size) = reader.u32() else {
            return Ok(None);
        };
        if size == 0 {
            return Ok(Some((Self::Null, 4)));
        }
        if size > max_size {
            return Err(DmpError::at(
                0,
                DmpErrorKind::MessageTooLarge {
                    size,
                    max: max_size,
                },
            ));
        }
        // `size <= max_size: u32` fits usize on every target hawser builds for.
        let size = size as usize;
        let Some(data) = reader.take(size) else {
            return Ok(None);
        };
        let envelope =
            Self::decode_envelope(data).map_err(|(at, kind)| DmpError::at(4 + at, kind))?;
        Ok(Some((Self::Envelope(envelope), 4 + size)))
    }

    fn decode_envelope(data: &'a [u8]) -> Result<Envelope<'a>, (usize, DmpErrorKind)> {
        let mut reader = Reader::new(data);
        let past_end = |r: &Reader<'_>| (r.used(), DmpErrorKind::FieldPastEnd);
        let exchange = ShortStr::read(&mut reader).ok_or_else(|| past_end(&reader))?;
        let routing_key = ShortStr::read(&mut reader).ok_or_else(|| past_end(&reader))?;
        let properties = Properties::read(&mut reader)?;
        let options_at = reader.used();
        let octet = reader.u8().ok_or_else(|| past_end(&reader))?;
        let options = PublishOptions::from_octet(octet).map_err(|kind| (options_at, kind))?;
        let body_at = reader.used();
        let [a, b, c] = reader.array::<3>().ok_or_else(|| past_end(&reader))?;
        let body_len = u32::from_be_bytes([0, a, b, c]) as usize;
        let body = reader
            .take(body_len)
            .ok_or((body_at, DmpErrorKind::FieldPastEnd))?;
        if !reader.is_empty() {
            return Err((reader.used(), DmpErrorKind::TrailingBytes(reader.left())));
        }
        Ok(Envelope {
            exchange,
            routing_key,
            properties,
            options,
            body,
        })
    }

    /// Writes the message: four zero octets for [`Message::Null`], the size field and the
    /// envelope otherwise. Fails, writing nothing, when a length does not fit its field.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), DmpEncodeError> {
        let Self::Envelope(envelope) = self else {
            buf.put_u32(0);
            return Ok(());
        };
        if envelope.body.len() > MAX_BODY_LEN {
            return Err(DmpEncodeError::BodyTooLong(envelope.body.len()));
        }
        let size = envelope.size();
        let size_field = u32::try_from(size).map_err(|_| DmpEncodeError::MessageTooLong(size))?;
        buf.put_u32(size_field);
        envelope.exchange.encode(buf);
        envelope.routing_key.encode(buf);
        envelope.properties.encode(buf);
        buf.put_u8(envelope.options.to_octet());
        let body_len = (envelope.body.len() as u32).to_be_bytes();
        buf.put_slice(&body_len[1..]);
        buf.put_slice(envelope.body);
        Ok(())
    }
}
