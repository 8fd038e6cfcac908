//! hawser's engine: services, tasks and the session layer, and the tooling of the
//! `hawser` binary.
//!
//! - [`session`]: the DSP session layer — nexus, fore channel and backchannel, slots and
//!   the reply cache (exactly-once), trunking, recovery, cancellation — as sans-IO state
//!   machines that a driver feeds with bytes and time.
//! - [`inspect`]: the `hawser inspect` dissector.
pub mod api;
pub mod bench;
pub mod driver;
pub mod inspect;
pub mod mover;
pub mod replicate;
pub mod session;
