//! DTP offset datagrams: bulk data over UDP, control over the nexus.
//!
//! A client sends a [`TransferRequest`] (payload id, wanted [`IntervalSet`] — empty for
//! the whole payload — pacing limit, MTU) as a DSP request; the server answers with a
//! [`TransferResponse`] (total size, bytes expected, session id, and the
//! [`DatagramForm`] of the session) and starts sending [`Datagram`]s, one per UDP packet,
//! each carrying its payload offset first: `[u32 offset][data]` (basic form, payloads up
//! to 4 GiB) or `[u32 session id][u64 offset][data]` (extended form). The client tracks
//! what arrived in an [`IntervalSet`], uses data while holes remain, and sends
//! [`HoleReport`]s to re-request holes or to stop. Control messages are
//! [`ControlMessage`]s: a type tag, then fields. The bytes are in `docs/PROTOCOL.md` ("DTP offset datagrams").
//!
//! For `hawser inspect dtp` a capture is a sequence of [`Record`]s
//! (`[u8 kind][u32 length][bytes]`), read with a [`CaptureDecoder`].
//!
//! ```
//! use hawser_wire::dtp::{
//!     CaptureDecoder, ControlMessage, Datagram, DatagramForm, Interval, IntervalSet,
//!     Record, TransferRequest,
//! };
//!
//! let request = ControlMessage::TransferRequest(TransferRequest {
//!     payload_id: b"/replica/dataset",
//!     intervals: IntervalSet::new(), // the whole payload
//!     max_throughput: 0,
//!     mtu: 1472,
//! });
//! let mut payload = Vec::new();
//! request.encode(&mut payload).unwrap();
//! assert_eq!(ControlMessage::decode(&payload).unwrap(), request);
//!
//! // A datagram, and the receiver's bookkeeping of what arrived.
//! let packet = [0, 0, 0x10, 0, b'd', b'a', b't', b'a'];
//! let datagram = Datagram::decode(&packet, DatagramForm::Basic).unwrap();
//! assert_eq!((datagram.offset(), datagram.data()), (4096, &b"data"[..]));
//! let mut received = IntervalSet::new();
//! received.insert(Interval::new(datagram.offset(), datagram.data().len() as u64).unwrap());
//! let holes = received.missing_within(&IntervalSet::whole(8192));
//! assert_eq!(holes.covered(), 8192 - 4);
//!
//! // A capture holding both, dissected record by record and re-encoded identically.
//! let mut capture = Vec::new();
//! Record::Control(request).encode(&mut capture).unwrap();
//! Record::Datagram(datagram).encode(&mut capture).unwrap();
//! let mut decoder = CaptureDecoder::new();
//! let (mut rest, mut again) = (&capture[..], Vec::new());
//! while let Some((record, used)) = decoder.decode(rest).unwrap() {
//!     record.encode(&mut again).unwrap();
//!     rest = &rest[used..];
//! }
//! assert_eq!(again, capture);
//! ```

mod capture;
mod control;
mod datagram;
mod error;
mod hole_report;
mod interval;
#[cfg(test)]
mod tests;
mod transfer_request;
mod transfer_response;

/// Smallest MTU a transfer request may ask for: room for the extended header and data.
pub const MIN_MTU: u16 = 64;

pub use capture::{
    CaptureDecoder, MAX_CONTROL_RECORD, MAX_DATAGRAM_RECORD, Record, kind as record_kind,
};
pub use control::{ControlMessage, tag};
pub use datagram::{Datagram, DatagramForm};
pub use error::{DtpEncodeError, DtpError, DtpErrorKind};
pub use hole_report::HoleReport;
pub use interval::{Interval, IntervalSet};
pub use transfer_request::TransferRequest;
pub use transfer_response::TransferResponse;
