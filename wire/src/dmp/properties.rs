//! AMQP basic content-header properties: a 16-bit flags word, then the present fields.

use bytes::BufMut;

use super::error::DmpErrorKind;
use super::short_str::ShortStr;
use crate::reader::Reader;

/// Flag bits of the property flags word (AMQP 0-9-1 `basic` class, bit 15 first).
pub mod flag {
    /// `content-type`, short string.
    pub const CONTENT_TYPE: u16 = 1 << 15;
    /// `content-encoding`, short string.
    pub const CONTENT_ENCODING: u16 = 1 << 14;
    /// `headers`, field table (kept as raw bytes).
    pub const HEADERS: u16 = 1 << 13;
    /// `delivery-mode`, octet.
    pub const DELIVERY_MODE: u16 = 1 << 12;
    /// `priority`, octet.
    pub const PRIORITY: u16 = 1 << 11;
    /// `correlation-id`, short string.
    pub const CORRELATION_ID: u16 = 1 << 10;
    /// `reply-to`, short string.
    pub const REPLY_TO: u16 = 1 << 9;
    /// `expiration`, short string.
    pub const EXPIRATION: u16 = 1 << 8;
    /// `message-id`, short string.
    pub const MESSAGE_ID: u16 = 1 << 7;
    /// `timestamp`, 64-bit seconds.
    pub const TIMESTAMP: u16 = 1 << 6;
    /// `type`, short string.
    pub const TYPE: u16 = 1 << 5;
    /// `user-id`, short string.
    pub const USER_ID: u16 = 1 << 4;
    /// `app-id`, short string.
    pub const APP_ID: u16 = 1 << 3;
    /// `cluster-id` (reserved in AMQP 0-9-1), short string.
    pub const CLUSTER_ID: u16 = 1 << 2;
    /// Reserved; must be zero.
    pub const RESERVED: u16 = 1 << 1;
    /// Another flags word follows (AMQP); hawser rejects it.
    pub const CONTINUATION: u16 = 1;
}

/// The basic properties of a message; a field is on the wire exactly when it is `Some`.
///
/// `headers` is the AMQP field table's content, borrowed and not interpreted (on the wire:
/// 32-bit length, then these bytes), so any table round-trips byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Properties<'a> {
    /// MIME content type.
    pub content_type: Option<ShortStr<'a>>,
    /// MIME content encoding.
    pub content_encoding: Option<ShortStr<'a>>,
    /// Raw AMQP field table content (without its 32-bit length).
    pub headers: Option<&'a [u8]>,
    /// 1 = non-persistent, 2 = persistent.
    pub delivery_mode: Option<u8>,
    /// Message priority, 0 to 9.
    pub priority: Option<u8>,
    /// Application correlation identifier.
    pub correlation_id: Option<ShortStr<'a>>,
    /// Address to reply to.
    pub reply_to: Option<ShortStr<'a>>,
    /// Message expiration specification.
    pub expiration: Option<ShortStr<'a>>,
    /// Application message identifier.
    pub message_id: Option<ShortStr<'a>>,
    /// Message timestamp, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// Message type name.
    pub message_type: Option<ShortStr<'a>>,
    /// Creating user id.
    pub user_id: Option<ShortStr<'a>>,
    /// Creating application id.
    pub app_id: Option<ShortStr<'a>>,
    /// Cluster id (reserved in AMQP 0-9-1).
    pub cluster_id: Option<ShortStr<'a>>,
}

impl<'a> Properties<'a> {
    /// The flags word for the fields present.
    pub fn flags(&self) -> u16 {
        let bits = [
            (self.content_type.is_some(), flag::CONTENT_TYPE),
            (self.content_encoding.is_some(), flag::CONTENT_ENCODING),
            (self.headers.is_some(), flag::HEADERS),
            (self.delivery_mode.is_some(), flag::DELIVERY_MODE),
            (self.priority.is_some(), flag::PRIORITY),
            (self.correlation_id.is_some(), flag::CORRELATION_ID),
            (self.reply_to.is_some(), flag::REPLY_TO),
            (self.expiration.is_some(), flag::EXPIRATION),
            (self.message_id.is_some(), flag::MESSAGE_ID),
            (self.timestamp.is_some(), flag::TIMESTAMP),
            (self.message_type.is_some(), flag::TYPE),
            (self.user_id.is_some(), flag::USER_ID),
            (self.app_id.is_some(), flag::APP_ID),
            (self.cluster_id.is_some(), flag::CLUSTER_ID),
        ];
        bits.iter()
            .filter(|(present, _)| *present)
            .fold(0, |acc, (_, bit)| acc | bit)
    }

    /// Bytes on the wire, flags word included.
    pub fn encoded_len(&self) -> usize {
        let short = |s: &Option<ShortStr<'_>>| s.map_or(0, |s| s.encoded_len());
        2 + short(&self.content_type)
            + short(&self.content_encoding)
            + self.headers.map_or(0, |h| 4 + h.len())
            + usize::from(self.delivery_mode.is_some())
            + usize::from(self.priority.is_some())
            + short(&self.correlation_id)
            + short(&self.reply_to)
            + short(&self.expiration)
            + short(&self.message_id)
            + self.timestamp.map_or(0, |_| 8)
            + short(&self.message_type)
            + short(&self.user_id)
            + short(&self.app_id)
            + short(&self.cluster_id)
    }

    /// Reads the flags word and the fields it announces. On failure returns the offset
    /// (within the reader's buffer) and the reason.
    pub(crate) fn read(reader: &mut Reader<'a>) -> Result<Self, (usize, DmpErrorKind)> {
        let flags_at = reader.used();
        let flags = reader.u16().ok_or((flags_at, DmpErrorKind::FieldPastEnd))?;
        if flags & flag::CONTINUATION != 0 {
            return Err((flags_at + 1, DmpErrorKind::PropertyContinuation));
        }
        if flags & flag::RESERVED != 0 {
            return Err((flags_at + 1, DmpErrorKind::ReservedPropertyFlag));
        }
        let past_end = |r: &Reader<'_>| (r.used(), DmpErrorKind::FieldPastEnd);
        let short = |r: &mut Reader<'a>, bit: u16| -> Result<_, (usize, DmpErrorKind)> {
            if flags & bit == 0 {
                return Ok(None);
            }
            ShortStr::read(r).map(Some).ok_or_else(|| past_end(r))
        };
        let content_type = short(reader, flag::CONTENT_TYPE)?;
        let content_encoding = short(reader, flag::CONTENT_ENCODING)?;
        let headers = if flags & flag::HEADERS != 0 {
            let mut probe = *reader;
            let table = probe.u32_bytes().ok_or_else(|| past_end(reader))?;
            *reader = probe;
            Some(table)
        } else {
            None
        };
        let octet = |r: &mut Reader<'a>, bit: u16| -> Result<_, (usize, DmpErrorKind)> {
            if flags & bit == 0 {
                return Ok(None);
            }
            r.u8().map(Some).ok_or_else(|| past_end(r))
        };
        let delivery_mode = octet(reader, flag::DELIVERY_MODE)?;
        let priority = octet(reader, flag::PRIORITY)?;
        let correlation_id = short(reader, flag::CORRELATION_ID)?;
        let reply_to = short(reader, flag::REPLY_TO)?;
        let expiration = short(reader, flag::EXPIRATION)?;
        let message_id = short(reader, flag::MESSAGE_ID)?;
        let timestamp = if flags & flag::TIMESTAMP != 0 {
            Some(reader.u64().ok_or_else(|| past_end(reader))?)
        } else {
            None
        };
        Ok(Self {
            content_type,
            content_encoding,
            headers,
            delivery_mode,
            priority,
            correlation_id,
            reply_to,
            expiration,
            message_id,
            timestamp,
            message_type: short(reader, flag::TYPE)?,
            user_id: short(reader, flag::USER_ID)?,
            app_id: short(reader, flag::APP_ID)?,
            cluster_id: short(reader, flag::CLUSTER_ID)?,
        })
    }

    /// Writes the flags word and the present fields. The caller has checked that the
    /// headers table fits its 32-bit length.
    pub(crate) fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.flags());
        let short = |buf: &mut _, s: &Option<ShortStr<'_>>| {
            if let Some(s) = s {
                s.encode(buf);
            }
        };
        short(buf, &self.content_type);
        short(buf, &self.content_encoding);
        if let Some(headers) = self.headers {
            buf.put_u32(headers.len() as u32);
            buf.put_slice(headers);
        }
        if let Some(mode) = self.delivery_mode {
            buf.put_u8(mode);
        }
        if let Some(priority) = self.priority {
            buf.put_u8(priority);
        }
        short(buf, &self.correlation_id);
        short(buf, &self.reply_to);
        short(buf, &self.expiration);
        short(buf, &self.message_id);
        if let Some(timestamp) = self.timestamp {
            buf.put_u64(timestamp);
        }
        short(buf, &self.message_type);
        short(buf, &self.user_id);
        short(buf, &self.app_id);
        short(buf, &self.cluster_id);
    }
}
