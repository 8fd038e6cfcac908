//! DTP transfers: bulk data as offset datagrams over UDP, control over the nexus (the
//! seed `dtp-data-transfer-protocol.txt`).
//!
//! The sans-IO core:
//! - [`Sender`]: which bytes go next (what was asked, then the holes reports name),
//!   paced to a rate at microsecond resolution, and each datagram's bytes;
//! - [`Receiver`]: what arrived (usable at once, holes and all), each datagram's verdict,
//!   and the feedback reports;
//! - [`rate`]: the rate controllers that set the pace from those reports;
//! - [`DatagramKey`]: the per-datagram tag that drops spoofed and corrupted datagrams;
//! - [`TransferState`]: a receiver's state as bytes, to journal and resume from;
//! - [`BlockDigests`]: the payload digest that ends a transfer.
//!
//! Over it, [`engine`] runs sessions on a shard's UDP socket. The bytes are in
//! `docs/PROTOCOL.md` ("DTP offset datagrams").

pub mod client;
pub mod control;
mod digest;
pub mod engine;
pub mod rate;
mod receiver;
mod sender;
pub mod service;
mod state;
mod tag;

pub use digest::{BLOCK, BlockDigests, blocks, digest_file, hash_block, verify_on_disk};
pub use receiver::{Receiver, ReceiverConfig, ReceiverStats, Verdict};
pub use sender::{Sender, SenderConfig};
pub use state::{StateError, TransferState};
pub use tag::{DatagramKey, TAG_LEN};
