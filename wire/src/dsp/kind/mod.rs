//! One module per frame kind: the kind's struct and the layout of its payload.
//!
//! Each kind writes its payload through a [`Sink`](super::sink::Sink) (`put_fixed`) and,
//! for the exchange kinds, exposes a `body` that the codec may compress; each kind decodes
//! from a [`Reader`] positioned at the start of the payload. Trailing bytes are rejected by
//! the codec after the kind's decoder returns, so every payload has one canonical form.

mod auth;
mod auth_challenge;
mod auth_response;
mod auth_result;
mod bind_ack;
mod bind_connection;
mod cancel;
mod credit;
mod go_away;
mod hello;
mod nexus_create;
mod nexus_created;
mod nexus_destroy;
mod nexus_destroyed;
mod nexus_recover;
mod nexus_recovered;
mod ping;
mod request;
mod response;
mod response_error;

pub use auth::Auth;
pub use auth_challenge::AuthChallenge;
pub use auth_response::AuthResponse;
pub use auth_result::AuthResult;
pub use bind_ack::BindAck;
pub use bind_connection::BindConnection;
pub use cancel::Cancel;
pub use credit::Credit;
pub use go_away::GoAway;
pub use hello::Hello;
pub use nexus_create::NexusCreate;
pub use nexus_created::NexusCreated;
pub use nexus_destroy::NexusDestroy;
pub use nexus_destroyed::NexusDestroyed;
pub use nexus_recover::NexusRecover;
pub use nexus_recovered::NexusRecovered;
pub use ping::{Ping, Pong};
pub use request::Request;
pub use response::Response;
pub use response_error::ResponseError;

use super::sink::Sink;
use super::{DspError, FrameKind, NexusId, Status};
use crate::reader::Reader;

/// Turns a short read into the kind's `Truncated` error.
pub(crate) fn need<T>(value: Option<T>, kind: FrameKind) -> Result<T, DspError> {
    value.ok_or(DspError::Truncated(kind))
}

/// Validates a text field.
pub(crate) fn text(bytes: &[u8], kind: FrameKind) -> Result<&str, DspError> {
    std::str::from_utf8(bytes).map_err(|_| DspError::BadUtf8(kind))
}

pub(crate) fn read_nexus_id(r: &mut Reader<'_>, kind: FrameKind) -> Result<NexusId, DspError> {
    need(r.array::<16>(), kind).map(NexusId)
}

/// The layout shared by BindAck, NexusRecovered and NexusDestroyed:
/// status octet, nexus id, reason text (rest of the payload).
pub(crate) fn put_answer<S: Sink>(s: &mut S, status: Status, nexus: NexusId, reason: &str) {
    s.put_u8(status.0);
    s.put(&nexus.0);
    s.put(reason.as_bytes());
}

pub(crate) fn read_answer<'a>(
    r: &mut Reader<'a>,
    kind: FrameKind,
) -> Result<(Status, NexusId, &'a str), DspError> {
    let status = Status(need(r.u8(), kind)?);
    let nexus = read_nexus_id(r, kind)?;
    let reason = text(r.take_rest(), kind)?;
    Ok((status, nexus, reason))
}
