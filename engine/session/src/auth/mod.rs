//! The authentication step every connection passes before it may join a nexus: SASL
//! (RFC 4422) carried in the DSP frames `AuthChallenge` (the server's list of mechanisms,
//! then its challenges), `Auth` (the client's choice and initial response),
//! `AuthResponse` and `AuthResult`.
//!
//! Mechanisms, strongest first (the client picks the strongest the server lists and its
//! credentials allow, or the one it insists on):
//! - `SCRAM-SHA-256-PLUS` (RFC 5802, RFC 7677) with `tls-exporter` channel binding
//!   (RFC 9266): offered over TLS only; a relay between two TLS sessions cannot log in.
//! - `SCRAM-SHA-256`: a password proven without sending it; the server keeps only salt,
//!   iteration count, StoredKey and ServerKey ([`ScramEntry`]), and proves itself back.
//! - `PLAIN` (RFC 4616): the password itself, offered and accepted over TLS only.
//! - `EXTERNAL` (RFC 4422 appendix A): the kernel's credentials of a local peer
//!   (`SO_PEERCRED`), mapped to identities by user id.
//! - `ANONYMOUS` (RFC 4505): an identity taken at its word, where the operator allows it.
//!
//! SCRAM and PLAIN run through `rsasl` ([`server`], [`client`]); EXTERNAL and ANONYMOUS
//! are a single message each and are decided here. The server decides every attempt with
//! its failure throttle around it (`server/handshake.rs`), whatever the mechanism.

pub(crate) mod client;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod mechanism;
mod scram_shape;
pub(crate) mod server;
mod users;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub use client::NegotiationError;
pub(crate) use keys::{DummyKey, derive_key, dummy_key, prf_u128};
pub use mechanism::Mechanism;
pub(crate) use mechanism::{decode_list as parse_mechanism_list, encode_list as mechanism_list};
pub use users::{DEFAULT_ITERATIONS, EntryError, ITERATIONS, SALT_LEN, ScramEntry};

/// The mechanisms `rsasl` runs for hawser (and no others).
fn rsasl_registry() -> rsasl::prelude::Registry {
    use rsasl::mechanisms::{plain::PLAIN, scram};
    static MECHANISMS: &[rsasl::prelude::Mechanism] =
        &[scram::SCRAM_SHA256_PLUS, scram::SCRAM_SHA256, PLAIN];
    rsasl::prelude::Registry::with_mechanisms(MECHANISMS)
}

/// Length of each side's Hello nonce.
pub const NONCE_LEN: usize = 16;

/// Longest identity a server accepts (longer ones fail authentication).
pub(crate) const MAX_IDENTITY_LEN: usize = 256;

/// How a client authenticates.
#[derive(Clone)]
pub enum ClientCredentials {
    /// `ANONYMOUS`.
    Anonymous,
    /// A password: `SCRAM-SHA-256(-PLUS)`, or `PLAIN` over TLS.
    Password(Arc<[u8]>),
    /// `EXTERNAL`: this process's user id, as the kernel tells the server over a local
    /// transport.
    External,
}

impl ClientCredentials {
    /// Password credentials.
    pub fn password(password: impl Into<Vec<u8>>) -> Self {
        ClientCredentials::Password(password.into().into())
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        match self {
            ClientCredentials::Anonymous => f.write_str("Anonymous"),
            ClientCredentials::Password(_) => f.write_str("Password(..)"),
            ClientCredentials::External => f.write_str("External"),
        }
    }
}

/// What a server accepts.
#[derive(Clone, Default)]
pub struct ServerCredentials {
    /// Accept `ANONYMOUS` connections: anyone who can reach the server, under whatever
    /// identity they state.
    pub allow_anonymous: bool,
    /// The user database: SCRAM credentials by identity (`SCRAM-SHA-256(-PLUS)`, and
    /// `PLAIN` over TLS when allowed).
    pub users: HashMap<String, ScramEntry>,
    /// Offer `PLAIN` over TLS. Off by default: each PLAIN attempt costs the server a
    /// PBKDF2 of the entry's iteration count, on the shard's thread, which SCRAM does
    /// not (its client pays).
    pub allow_plain: bool,
    /// Identities local processes may take with `EXTERNAL`, and the user id each must
    /// run as. Like an identity with a password, a mapped identity is never granted to
    /// an anonymous client.
    pub peer_uids: HashMap<String, u32>,
    /// Identities a client may take with `EXTERNAL` over TLS by showing the certificate
    /// whose pin (SHA-256 of its DER) this is (the server must ask for client
    /// certificates: [`ServerTls::with_client_certificates`](crate::ServerTls)).
    pub client_certs: HashMap<String, [u8; 32]>,
}

impl fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCredentials")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("users", &self.users.len())
            .field("peer_uids", &self.peer_uids)
            .field("client_certs", &self.client_certs.len())
            .finish()
    }
}

impl ServerCredentials {
    /// Only anonymous connections.
    pub fn anonymous() -> Self {
        ServerCredentials {
            allow_anonymous: true,
            ..ServerCredentials::default()
        }
    }

    /// Users with these passwords, each entry derived with a salt made from the identity
    /// and `iterations` (tests and tools that start a server from passwords they hold; a
    /// real database comes from `hawser passwd`, with random salts).
    pub fn passwords(users: impl IntoIterator<Item = (String, Vec<u8>)>, iterations: u32) -> Self {
        let users = users
            .into_iter()
            .map(|(identity, password)| {
                let salt = keys::keyed(b"hawser-test-salt", &[identity.as_bytes()]);
                let entry = ScramEntry::derive(&password, &salt[..SALT_LEN], iterations);
                (identity, entry)
            })
            .collect();
        ServerCredentials {
            users,
            ..ServerCredentials::default()
        }
    }

    /// Whether `identity` must prove itself (it has a password or a mapped user id): it
    /// is never granted anonymously.
    pub(crate) fn is_protected(&self, identity: &str) -> bool {
        self.users.contains_key(identity)
            || self.peer_uids.contains_key(identity)
            || self.client_certs.contains_key(identity)
    }

    /// The mechanisms offered on a connection, strongest first.
    pub(crate) fn offered(&self, tls: bool) -> Vec<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .filter(|m| match m {
                Mechanism::ScramSha256Plus => tls && !self.users.is_empty(),
                Mechanism::Plain => tls && self.allow_plain && !self.users.is_empty(),
                Mechanism::ScramSha256 => !self.users.is_empty(),
                Mechanism::External => {
                    !self.peer_uids.is_empty() || (tls && !self.client_certs.is_empty())
                }
                Mechanism::Anonymous => self.allow_anonymous,
            })
            .collect()
    }
}

/// Why the server refused an authentication attempt. Every refusal is answered with an
/// `AuthResult` carrying [`status`](Self::status) and [`reason`](Self::reason), then a
/// GoAway `AUTH_FAILED` with the same reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Wrong proof or password, or an identity the server does not know:
    /// indistinguishable on purpose.
    Failed,
    /// `ANONYMOUS`, and the server does not accept anonymous clients.
    AnonymousRefused,
    /// A mechanism the server does not offer.
    Mechanism,
    /// `PLAIN` or `SCRAM-SHA-256-PLUS` on a connection without TLS.
    NeedsTls,
    /// `EXTERNAL` over a connection that is neither local nor TLS with a client
    /// certificate: there are no credentials to check.
    ExternalNotLocal,
    /// An identity longer than [`MAX_IDENTITY_LEN`] (whatever the mechanism: the server
    /// keeps identities of live nexuses).
    IdentityTooLong,
    /// The client's SASL message does not parse, or asks for what the server does not do
    /// (an authorization identity other than the authentication identity).
    Malformed,
    /// The SCRAM channel binding is not this connection's TLS session: a relay.
    ChannelBinding,
}

impl Refusal {
    pub(crate) fn status(self) -> hawser_wire::dsp::Status {
        use hawser_wire::dsp::Status;
        match self {
            Refusal::Failed
            | Refusal::IdentityTooLong
            | Refusal::Malformed
            | Refusal::ChannelBinding => Status::AUTH_FAILED,
            Refusal::AnonymousRefused
            | Refusal::Mechanism
            | Refusal::NeedsTls
            | Refusal::ExternalNotLocal => Status::MECHANISM_UNSUPPORTED,
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Failed => {
                "authentication failed: unknown identity or wrong password (with EXTERNAL: a \
                 local user the identity is not granted to)"
            }
            Refusal::AnonymousRefused => {
                "this server does not accept anonymous clients: authenticate with an identity \
                 and its password (hawser push/pull: --identity NAME with --secret-file FILE \
                 or HAWSER_PASSWORD), or over unix:// or shm:// by your user id if the server \
                 grants it (--identity NAME --external), or start the server with \
                 --allow-anonymous (allow_anonymous = true in its configuration file)"
            }
            Refusal::Mechanism => {
                "authentication mechanism not offered by this server on this connection (it \
                 lists what it offers before the client chooses)"
            }
            Refusal::NeedsTls => {
                "PLAIN and SCRAM-SHA-256-PLUS are accepted over TLS only: connect with --tls, \
                 or use SCRAM-SHA-256"
            }
            Refusal::ExternalNotLocal => {
                "EXTERNAL authentication needs a local connection (unix:// or shm://), where \
                 the kernel tells the server who you are, or TLS with a client certificate \
                 the server maps to your identity (--tls-cert, --tls-key); otherwise \
                 authenticate with a password (--secret-file or HAWSER_PASSWORD)"
            }
            Refusal::IdentityTooLong => "identity longer than 256 bytes",
            Refusal::Malformed => {
                "malformed SASL message (or an authorization identity other than the login's)"
            }
            Refusal::ChannelBinding => {
                "SCRAM channel binding does not match this TLS session: something between \
                 client and server terminates TLS (a relay or interception proxy)"
            }
        }
    }
}
#[cfg(test)]
mod tests;
