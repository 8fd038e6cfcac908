//! DTP transfers: bulk data as offset datagrams over UDP, control over the nexus (the
//! seed `dtp-data-transfer-protocol.txt`). This crate holds the sans-IO core:
//!
//! - [`Sender`]: which bytes go next (what was asked, then the holes reports name),
//!   paced to a rate at microsecond resolution, and each datagram's bytes;
//! - [`Receiver`]: what arrived (usable at once, holes and all), each datagram's verdict,
//!   and the hole reports;
//! - [`DatagramKey`]: the per-datagram tag that drops spoofed and corrupted datagrams;
//! - [`TransferState`]: a receiver's state as bytes, to journal and resume from.
//!
//! The service over the runtime (control exchanges, the UDP path on the shards), rate
//! control from the receiver's reports, journaled sessions and the CLI are the rest of
//! issue 17; the bytes are in `docs/PROTOCOL.md` ("DTP offset datagrams").

mod receiver;
mod sender;
mod state;
mod tag;

pub use receiver::{Receiver, ReceiverConfig, ReceiverStats, Verdict};
pub use sender::{Sender, SenderConfig};
pub use state::{StateError, TransferState};
pub use tag::{DatagramKey, TAG_LEN};
