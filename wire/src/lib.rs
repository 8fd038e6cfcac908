//! Sans-IO codecs for every wire format hawser speaks.
//!
//! This crate is the bottom layer of hawser: it turns bytes into typed frames and typed
//! frames into bytes, and nothing else. It opens no sockets, spawns no tasks and reads no
//! clocks, so every codec can be tested, fuzzed and benchmarked in isolation, and the
//! session layer above it can run inside a deterministic simulator.
//!
//! | module | format | carried over |
//! |---|---|---|
//! | [`dsp`] | DSP trunk frames: the session protocol's framing | TCP trunk connections of a nexus |
//! | [`dmp`] | DMP direct messages: preamble, short-string commands, envelopes | direct TCP connections forked off a nexus |
//! | [`dtp`] | DTP offset datagrams and their control messages | UDP (data) and the nexus (control) |
//! | [`ddf`] | DDF remoting text: self-describing control payloads, remote exceptions | DSP request/response payloads |
//!
//! Conventions shared by every module (see `docs/PROTOCOL.md` for the bytes):
//! - integers are big-endian (network order);
//! - decoders read through the borrowed [`reader::Reader`] and never panic on any input;
//! - streaming decoders return `Ok(None)` when more bytes are needed, `Ok(Some((item,
//!   consumed)))` when an item is complete, and a `Copy` error enum when the input is bad;
//! - encoders write into any [`bytes::BufMut`].

pub mod ddf;
pub mod dmp;
pub mod dsp;
pub mod dtp;
pub mod reader;
pub mod replicate;
pub mod xxh3;
