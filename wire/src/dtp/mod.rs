//! DTP offset datagrams: bulk data over UDP, control over the nexus.
//!
//! To pull, a client sends a [`TransferRequest`] (payload id, wanted [`IntervalSet`] —
//! empty for the whole payload — pacing limit, MTU) as a DSP request; the server answers
//! with a [`TransferResponse`] (total size, bytes expected, session id, the
//! [`DatagramForm`] of the session, the datagram key and its data port). To push, a
//! client sends a [`PushRequest`] (payload id, total size, pacing limit, MTU, resume) and
//! the server answers with a [`PushResponse`] (session id, form, key, data port, and the
//! bytes it still wants). The sender then sends [`Datagram`]s, one per UDP packet, each
//! carrying its payload offset first: `[u32 offset][data]` (basic form, payloads up to
//! 4 GiB) or `[u32 session id][u64 offset][data]` (extended form). The receiver tracks
//! what arrived in an [`IntervalSet`], uses data while holes remain, and reports holes,
//! delivery rate and an echo in [`Feedback`] datagrams; a [`HoleReport`] over the nexus
//! re-requests holes or stops. Every UDP message ends with a keyed tag, which this codec
//! leaves to its caller. Control messages are [`ControlMessage`]s: a type tag, then
//! fields. The bytes are in `docs/PROTOCOL.md` ("DTP offset datagrams").
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
mod feedback;
mod hole_report;
mod interval;
mod push_request;
mod push_response;
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
pub use feedback::Feedback;
pub use hole_report::HoleReport;
pub use interval::{Interval, IntervalSet};
pub use push_request::PushRequest;
pub use push_response::PushResponse;
pub use transfer_request::TransferRequest;
pub use transfer_response::TransferResponse;
