//! The authentication step every connection passes before it may join a nexus.
//!
//! Three mechanisms, carried in the DSP `Auth` / `AuthResult` frames as SASL mechanisms
//! with an initial response (further SASL mechanisms and TLS plug into the same step):
//! - `ANONYMOUS`: the client states an identity, nothing is proven (trusted networks). A
//!   server accepts it only when its credentials say so.
//! - `EXTERNAL` (RFC 4422 appendix A): the client states the identity it wants (the
//!   authorization identity); the proof is outside the session, in the kernel's
//!   credentials of the peer process on a local transport (`SO_PEERCRED` of a Unix
//!   socket, or of the socket a shared-memory connection was set up over). The server
//!   accepts it when its credentials map that identity to that user id.
//! - `HMAC-SHA256` shared secret, mutual challenge-response: both sides contribute a
//!   16-byte nonce in their `Hello`; the initial response is `identity ‖ 0 ‖ proof`; the
//!   client proves knowledge of the secret with
//!   `HMAC(secret, "hawser-auth-client" ‖ server nonce ‖ client nonce ‖ identity)` and the
//!   server answers with `HMAC(secret, "hawser-auth-server" ‖ client nonce ‖ server nonce ‖
//!   identity)`, so neither side can be impersonated by replaying an old exchange and the
//!   secret never travels. The secret's bytes are the HMAC key as they are. Nonces come
//!   from the driver (the state machines read no entropy themselves).
//!
//! The server decides every attempt in `check`, whatever the mechanism; its throttle of
//! failed attempts (`server.rs`, `guard.rs`) sits around that one call, so a mechanism
//! added here is throttled without doing anything. An unknown identity is checked against
//! a dummy secret derived from a per-server random key and refused exactly like a wrong
//! secret: same work, same status, same words.

use std::collections::HashMap;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use hawser_wire::dsp::{self as wire, FrameKind, Status};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::codec::{Frame, FrameError};
use super::error::ProtocolError;
use crate::peer::Peer;

/// Length of each side's nonce.
pub const NONCE_LEN: usize = 16;
/// Length of a proof (an HMAC-SHA256 tag).
pub const PROOF_LEN: usize = 32;

/// An authentication mechanism, as the Auth frame names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// No proof: the identity is taken at its word.
    Anonymous,
    /// Mutual HMAC-SHA256 challenge-response over a shared secret.
    HmacSha256,
    /// The local peer's kernel credentials.
    External,
    /// A mechanism this implementation does not know (refused by the server).
    Unsupported,
}

/// How a client authenticates.
#[derive(Clone)]
pub enum ClientCredentials {
    /// `ANONYMOUS`.
    Anonymous,
    /// `HMAC-SHA256` with this shared secret.
    SharedSecret(Vec<u8>),
    /// `EXTERNAL`: this process's user id, as the kernel tells the server over a local
    /// transport.
    External,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        match self {
            ClientCredentials::Anonymous => f.write_str("Anonymous"),
            ClientCredentials::SharedSecret(_) => f.write_str("SharedSecret(..)"),
            ClientCredentials::External => f.write_str("External"),
        }
    }
}

/// The SASL names of the mechanisms.
const ANONYMOUS: &str = "ANONYMOUS";
const HMAC_SHA256: &str = "HMAC-SHA256";
const EXTERNAL: &str = "EXTERNAL";

impl ClientCredentials {
    /// The Auth frame that opens authentication with these credentials: the mechanism
    /// and its initial response, `identity` (`ANONYMOUS`, `EXTERNAL`) or
    /// `identity ‖ 0 ‖ proof` (`HMAC-SHA256`, the proof binding both nonces).
    pub(crate) fn auth_frame(
        &self,
        identity: &str,
        server_nonce: &[u8; NONCE_LEN],
        client_nonce: &[u8; NONCE_LEN],
    ) -> Frame {
        let mut response = BytesMut::with_capacity(identity.len() + 1 + PROOF_LEN);
        response.put_slice(identity.as_bytes());
        let mechanism = match self {
            ClientCredentials::Anonymous => ANONYMOUS,
            ClientCredentials::External => EXTERNAL,
            ClientCredentials::SharedSecret(secret) => {
                response.put_u8(0);
                response.put_slice(&client_proof(secret, server_nonce, client_nonce, identity));
                HMAC_SHA256
            }
        };
        Frame::Auth(wire::Auth {
            mechanism: mechanism.to_owned(),
            initial_response: Some(response.freeze()),
        })
    }
}

/// What a server accepts.
#[derive(Clone, Default)]
pub struct ServerCredentials {
    /// Accept `ANONYMOUS` connections: anyone who can reach the server, under whatever
    /// identity they state.
    pub allow_anonymous: bool,
    /// Shared secrets by client identity, for `HMAC-SHA256`.
    pub secrets: HashMap<String, Vec<u8>>,
    /// Identities local processes may take with `EXTERNAL`, and the user id each must
    /// run as. Like an identity with a secret, a mapped identity is never granted to an
    /// anonymous client.
    pub peer_uids: HashMap<String, u32>,
}

impl fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCredentials")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("identities", &self.secrets.len())
            .field("peer_uids", &self.peer_uids)
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

    /// Shared secrets only, by identity.
    pub fn shared_secrets(secrets: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        ServerCredentials {
            secrets: secrets.into_iter().collect(),
            ..ServerCredentials::default()
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Which side a proof is from: its label, and which nonce it covers first (the peer's).
#[derive(Clone, Copy)]
enum Prover {
    Client,
    Server,
}

/// The HMAC over what `prover`'s proof binds.
fn mac(
    prover: Prover,
    secret: &[u8],
    server_nonce: &[u8; NONCE_LEN],
    client_nonce: &[u8; NONCE_LEN],
    identity: &str,
) -> HmacSha256 {
    let (label, first, second): (&[u8], _, _) = match prover {
        Prover::Client => (b"hawser-auth-client", server_nonce, client_nonce),
        Prover::Server => (b"hawser-auth-server", client_nonce, server_nonce),
    };
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| {
        <HmacSha256 as Mac>::new_from_slice(&[]).expect("empty HMAC key is valid")
    });
    m.update(label);
    m.update(first);
    m.update(second);
    m.update(identity.as_bytes());
    m
}

/// The client's proof.
pub(crate) fn client_proof(
    secret: &[u8],
    server_nonce: &[u8; NONCE_LEN],
    client_nonce: &[u8; NONCE_LEN],
    identity: &str,
) -> [u8; PROOF_LEN] {
    let m = mac(Prover::Client, secret, server_nonce, client_nonce, identity);
    m.finalize().into_bytes().into()
}

/// Checks the client's proof in constant time.
pub(crate) fn verify_client_proof(
    secret: &[u8],
    server_nonce: &[u8; NONCE_LEN],
    client_nonce: &[u8; NONCE_LEN],
    identity: &str,
    proof: &[u8],
) -> bool {
    let m = mac(Prover::Client, secret, server_nonce, client_nonce, identity);
    m.verify_slice(proof).is_ok()
}

/// The server's proof.
pub(crate) fn server_proof(
    secret: &[u8],
    client_nonce: &[u8; NONCE_LEN],
    server_nonce: &[u8; NONCE_LEN],
    identity: &str,
) -> [u8; PROOF_LEN] {
    let m = mac(Prover::Server, secret, server_nonce, client_nonce, identity);
    m.finalize().into_bytes().into()
}

/// Longest identity a server accepts (longer ones fail authentication).
pub(crate) const MAX_IDENTITY_LEN: usize = 256;

/// Why the server refused an authentication attempt. Every refusal is answered with an
/// `AuthResult` carrying [`status`](Self::status) and [`reason`](Self::reason), then a
/// GoAway `AUTH_FAILED` with the same reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Wrong proof, or an identity the server does not know: indistinguishable on purpose.
    Failed,
    /// `ANONYMOUS`, and the server does not accept anonymous clients.
    AnonymousRefused,
    /// A mechanism the server does not offer.
    Mechanism,
    /// `EXTERNAL` over a connection that is not local: there are no credentials to check.
    ExternalNotLocal,
    /// An identity longer than [`MAX_IDENTITY_LEN`] (whatever the mechanism: the server
    /// keeps identities of live nexuses).
    IdentityTooLong,
}

impl Refusal {
    pub(crate) fn status(self) -> Status {
        match self {
            Refusal::Failed | Refusal::IdentityTooLong => Status::AUTH_FAILED,
            Refusal::AnonymousRefused | Refusal::Mechanism | Refusal::ExternalNotLocal => {
                Status::MECHANISM_UNSUPPORTED
            }
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Failed => {
                "authentication failed: unknown identity or wrong secret (with EXTERNAL: a local \
                 user the identity is not granted to)"
            }
            Refusal::AnonymousRefused => {
                "this server does not accept anonymous clients: authenticate with an identity \
                 and its shared secret (hawser push/pull: --identity NAME --secret-file FILE), \
                 or over unix:// or shm:// by your user id if the server grants it \
                 (--identity NAME --external), or start the server with --allow-anonymous \
                 (allow_anonymous = true in its configuration file)"
            }
            Refusal::Mechanism => {
                "authentication mechanism not offered by this server (it offers HMAC-SHA256, \
                 and ANONYMOUS and EXTERNAL when configured)"
            }
            Refusal::ExternalNotLocal => {
                "EXTERNAL authentication needs a local connection (unix:// or shm://), where \
                 the kernel tells the server who you are; over the network authenticate with \
                 a shared secret (--secret-file)"
            }
            Refusal::IdentityTooLong => "identity longer than 256 bytes",
        }
    }
}

/// A per-server key from which the dummy secrets of unknown identities are derived.
pub(crate) type DummyKey = [u8; 32];

/// A key for `purpose`, derived from a server's `seed` (random, from the driver).
pub(crate) fn derive_key(seed: u64, purpose: &[u8]) -> [u8; 32] {
    let mut m = <HmacSha256 as Mac>::new_from_slice(&seed.to_le_bytes())
        .expect("HMAC takes keys of any length");
    m.update(purpose);
    m.finalize().into_bytes().into()
}

/// The dummy key of a server seeded with `seed`.
pub(crate) fn dummy_key(seed: u64) -> DummyKey {
    derive_key(seed, b"hawser-dummy-secret-key")
}

/// The `n`th output of the pseudo-random function keyed by `key` (HMAC-SHA256 of the
/// counter, first 16 bytes): values nobody can predict from earlier ones.
pub(crate) fn prf_u128(key: &[u8; 32], n: u64) -> u128 {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(&n.to_le_bytes());
    let out: [u8; 32] = m.finalize().into_bytes().into();
    let mut first = [0; 16];
    first.copy_from_slice(&out[..16]);
    u128::from_le_bytes(first)
}

/// The secret an unknown identity is checked against: as costly to check as a real one,
/// and never accepted (see [`check`]).
fn dummy_secret(key: &DummyKey, identity: &str) -> [u8; PROOF_LEN] {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(identity.as_bytes());
    m.finalize().into_bytes().into()
}

/// One authentication attempt as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub(crate) mechanism: Mechanism,
    pub(crate) identity: String,
    pub(crate) proof: Bytes,
}

impl Attempt {
    /// The attempt an Auth frame makes. An unknown mechanism is an attempt the server
    /// refuses as unsupported; a malformed initial response is a protocol error.
    pub(crate) fn from_frame(auth: wire::Auth<Bytes, String>) -> Result<Attempt, ProtocolError> {
        let invalid = ProtocolError::Frame(FrameError::InvalidField(FrameKind::Auth));
        let response = auth.initial_response.unwrap_or_default();
        let (mechanism, identity, proof) = match auth.mechanism.as_str() {
            ANONYMOUS => (Mechanism::Anonymous, response, Bytes::new()),
            EXTERNAL => (Mechanism::External, response, Bytes::new()),
            HMAC_SHA256 => {
                let split = response.len().checked_sub(PROOF_LEN + 1).ok_or(invalid)?;
                if response.get(split) != Some(&0) {
                    return Err(invalid);
                }
                let proof = response.slice(split + 1..);
                (Mechanism::HmacSha256, response.slice(..split), proof)
            }
            _ => (Mechanism::Unsupported, response, Bytes::new()),
        };
        let identity = std::str::from_utf8(&identity).map_err(|_| invalid)?;
        Ok(Attempt {
            mechanism,
            identity: identity.to_owned(),
            proof,
        })
    }

    /// Whether success proves the identity (and so may clear its failure record).
    pub(crate) fn proves_identity(&self) -> bool {
        matches!(self.mechanism, Mechanism::HmacSha256 | Mechanism::External)
    }
}

/// Decides `attempt` from `peer` under `credentials`: the server's proof (empty for
/// `ANONYMOUS` and `EXTERNAL`) or why not. The same work is done for a known and an
/// unknown identity.
pub(crate) fn check(
    credentials: &ServerCredentials,
    dummy: &DummyKey,
    attempt: &Attempt,
    peer: Peer,
    server_nonce: &[u8; NONCE_LEN],
    client_nonce: &[u8; NONCE_LEN],
) -> Result<Bytes, Refusal> {
    if attempt.identity.len() > MAX_IDENTITY_LEN {
        return Err(Refusal::IdentityTooLong);
    }
    match attempt.mechanism {
        // An identity that has a secret must prove it: anonymous as that identity would
        // join, recover or replace its nexus. Refused like a wrong secret, so the answer
        // does not tell which identities exist.
        Mechanism::Anonymous
            if credentials.secrets.contains_key(&attempt.identity)
                || credentials.peer_uids.contains_key(&attempt.identity) =>
        {
            Err(Refusal::Failed)
        }
        Mechanism::Anonymous if credentials.allow_anonymous => Ok(Bytes::new()),
        Mechanism::Anonymous => Err(Refusal::AnonymousRefused),
        Mechanism::HmacSha256 => {
            let identity = attempt.identity.as_str();
            let fallback = dummy_secret(dummy, identity);
            let known = credentials.secrets.get(identity);
            let secret = known.map_or(&fallback[..], Vec::as_slice);
            let verified =
                verify_client_proof(secret, server_nonce, client_nonce, identity, &attempt.proof);
            if verified && known.is_some() {
                Ok(Bytes::copy_from_slice(&server_proof(
                    secret,
                    client_nonce,
                    server_nonce,
                    identity,
                )))
            } else {
                Err(Refusal::Failed)
            }
        }
        Mechanism::External => {
            let Some(creds) = peer.local() else {
                return Err(Refusal::ExternalNotLocal);
            };
            match credentials.peer_uids.get(&attempt.identity) {
                Some(&uid) if uid == creds.uid => Ok(Bytes::new()),
                _ => Err(Refusal::Failed),
            }
        }
        Mechanism::Unsupported => Err(Refusal::Mechanism),
    }
}

/// Checks the server's proof in constant time.
pub(crate) fn verify_server_proof(
    secret: &[u8],
    client_nonce: &[u8; NONCE_LEN],
    server_nonce: &[u8; NONCE_LEN],
    identity: &str,
    proof: &[u8],
) -> bool {
    let m = mac(Prover::Server, secret, server_nonce, client_nonce, identity);
    m.verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_frames_carry_the_attempt_the_server_reads() {
        let (ns, nc) = ([1; NONCE_LEN], [2; NONCE_LEN]);
        let attempt = |credentials: &ClientCredentials| {
            let Frame::Auth(auth) = credentials.auth_frame("ann", &ns, &nc) else {
                panic!("an Auth frame")
            };
            Attempt::from_frame(auth).unwrap()
        };
        let anonymous = attempt(&ClientCredentials::Anonymous);
        assert_eq!(anonymous.mechanism, Mechanism::Anonymous);
        assert_eq!(anonymous.identity, "ann");
        let secret = attempt(&ClientCredentials::SharedSecret(b"k".to_vec()));
        assert_eq!(secret.mechanism, Mechanism::HmacSha256);
        assert_eq!(secret.identity, "ann");
        assert!(verify_client_proof(b"k", &ns, &nc, "ann", &secret.proof));
        // A proof without its separator, or too short, is malformed.
        for response in [&b"ann\x01"[..], &[1; PROOF_LEN + 4]] {
            let auth = wire::Auth {
                mechanism: HMAC_SHA256.to_owned(),
                initial_response: Some(Bytes::copy_from_slice(response)),
            };
            assert!(Attempt::from_frame(auth).is_err());
        }
        let unknown = wire::Auth {
            mechanism: "PLAIN".to_owned(),
            initial_response: None,
        };
        assert_eq!(
            Attempt::from_frame(unknown).unwrap().mechanism,
            Mechanism::Unsupported
        );
    }

    #[test]
    fn proofs_bind_secret_nonces_and_identity() {
        let (ns, nc) = ([1; NONCE_LEN], [2; NONCE_LEN]);
        let p = client_proof(b"k", &ns, &nc, "alice");
        assert!(verify_client_proof(b"k", &ns, &nc, "alice", &p));
        assert!(!verify_client_proof(b"x", &ns, &nc, "alice", &p));
        assert!(!verify_client_proof(b"k", &nc, &ns, "alice", &p));
        assert!(!verify_client_proof(b"k", &ns, &nc, "bob", &p));
        // The server's proof is not a replay of the client's.
        assert!(!verify_server_proof(b"k", &nc, &ns, "alice", &p));
        let s = server_proof(b"k", &nc, &ns, "alice");
        assert!(verify_server_proof(b"k", &nc, &ns, "alice", &s));
    }

    /// An unknown identity is refused exactly as a wrong secret is, even when its proof
    /// is the one its dummy secret would accept.
    #[test]
    fn unknown_identity_and_wrong_secret_are_refused_alike() {
        let (ns, nc) = ([1; NONCE_LEN], [2; NONCE_LEN]);
        let creds = ServerCredentials::shared_secrets([("alice".to_string(), b"k".to_vec())]);
        let key = dummy_key(7);
        let attempt = |identity: &str, secret: &[u8]| Attempt {
            mechanism: Mechanism::HmacSha256,
            identity: identity.into(),
            proof: Bytes::copy_from_slice(&client_proof(secret, &ns, &nc, identity)),
        };
        let right = check(
            &creds,
            &key,
            &attempt("alice", b"k"),
            Peer::Unknown,
            &ns,
            &nc,
        )
        .unwrap();
        assert!(verify_server_proof(b"k", &nc, &ns, "alice", &right));
        let wrong = check(
            &creds,
            &key,
            &attempt("alice", b"x"),
            Peer::Unknown,
            &ns,
            &nc,
        );
        let unknown = check(&creds, &key, &attempt("bob", b"k"), Peer::Unknown, &ns, &nc);
        let dummy = dummy_secret(&key, "bob");
        let forged = check(
            &creds,
            &key,
            &attempt("bob", &dummy),
            Peer::Unknown,
            &ns,
            &nc,
        );
        assert_eq!(wrong, Err(Refusal::Failed));
        assert_eq!(unknown, wrong);
        assert_eq!(forged, wrong);
        // Another server's key gives other dummy secrets.
        assert_ne!(dummy_secret(&dummy_key(8), "bob"), dummy);
        let anonymous = Attempt {
            mechanism: Mechanism::Anonymous,
            identity: "guest".into(),
            proof: Bytes::new(),
        };
        assert_eq!(
            check(&creds, &key, &anonymous, Peer::Unknown, &ns, &nc),
            Err(Refusal::AnonymousRefused)
        );
        assert!(
            Refusal::AnonymousRefused
                .reason()
                .contains("--allow-anonymous")
        );
        let long = Attempt {
            identity: "x".repeat(MAX_IDENTITY_LEN + 1),
            ..anonymous
        };
        let open = ServerCredentials::anonymous();
        assert_eq!(
            check(&open, &key, &long, Peer::Unknown, &ns, &nc),
            Err(Refusal::IdentityTooLong)
        );
    }

    /// Found by the `session_server` fuzz target's review: with both anonymous clients
    /// and secrets configured, an anonymous login could claim an identity that has a
    /// secret, and then bind into, recover or replace that identity's nexus.
    #[test]
    fn anonymous_cannot_claim_an_identity_that_has_a_secret() {
        let credentials = ServerCredentials {
            allow_anonymous: true,
            secrets: [("alice".to_owned(), b"k".to_vec())].into_iter().collect(),
            ..ServerCredentials::default()
        };
        let dummy = [3; 32];
        let attempt = |identity: &str| Attempt {
            mechanism: Mechanism::Anonymous,
            identity: identity.to_owned(),
            proof: Bytes::new(),
        };
        let nonces = ([1; NONCE_LEN], [2; NONCE_LEN]);
        assert_eq!(
            check(
                &credentials,
                &dummy,
                &attempt("alice"),
                Peer::Unknown,
                &nonces.0,
                &nonces.1
            ),
            Err(Refusal::Failed)
        );
        assert!(
            check(
                &credentials,
                &dummy,
                &attempt("bob"),
                Peer::Unknown,
                &nonces.0,
                &nonces.1
            )
            .is_ok()
        );
    }

    #[test]
    fn external_grants_a_mapped_identity_to_its_local_user_only() {
        let mut credentials = ServerCredentials::default();
        credentials.peer_uids.insert("backup".into(), 1000);
        let dummy = dummy_key(7);
        let nonces = ([1; NONCE_LEN], [2; NONCE_LEN]);
        let external = |identity: &str| Attempt {
            mechanism: Mechanism::External,
            identity: identity.to_owned(),
            proof: Bytes::new(),
        };
        let local = |uid| {
            Peer::Local(crate::peer::LocalCredentials {
                pid: 42,
                uid,
                gid: uid,
            })
        };
        let decide = |attempt: &Attempt, peer| {
            check(&credentials, &dummy, attempt, peer, &nonces.0, &nonces.1)
        };
        assert_eq!(decide(&external("backup"), local(1000)), Ok(Bytes::new()));
        assert_eq!(
            decide(&external("backup"), local(1001)),
            Err(Refusal::Failed)
        );
        assert_eq!(
            decide(&external("other"), local(1000)),
            Err(Refusal::Failed)
        );
        // Over the network there is nothing to check: refused, saying why.
        let net = Peer::Inet("192.0.2.1".parse().unwrap());
        assert_eq!(
            decide(&external("backup"), net),
            Err(Refusal::ExternalNotLocal)
        );
        assert_eq!(
            decide(&external("backup"), Peer::Unknown),
            Err(Refusal::ExternalNotLocal)
        );
        // A mapped identity is never given away anonymously, even where anonymous is.
        let mut open = credentials.clone();
        open.allow_anonymous = true;
        let anonymous = Attempt {
            mechanism: Mechanism::Anonymous,
            ..external("backup")
        };
        assert_eq!(
            check(&open, &dummy, &anonymous, local(1000), &nonces.0, &nonces.1),
            Err(Refusal::Failed)
        );
        assert!(external("backup").proves_identity());
        // The client's frame names the mechanism and the identity it wants.
        let Frame::Auth(auth) =
            ClientCredentials::External.auth_frame("backup", &nonces.0, &nonces.1)
        else {
            panic!("an Auth frame")
        };
        assert_eq!(Attempt::from_frame(auth).unwrap(), external("backup"));
    }
}
