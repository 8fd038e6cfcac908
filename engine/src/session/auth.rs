//! The authentication step every connection passes before it may join a nexus.
//!
//! Two mechanisms for now, carried in the DSP `Auth` / `AuthResult` frames as SASL
//! mechanisms with an initial response; the SASL mechanisms and TLS plug into the same
//! step later:
//! - `ANONYMOUS`: the client states an identity, nothing is proven (trusted networks).
//! - `HMAC-SHA256` shared secret, mutual challenge-response: both sides contribute a
//!   16-byte nonce in their `Hello`; the initial response is `identity ‖ 0 ‖ proof`; the client proves knowledge of the secret with
//!   `HMAC(secret, "hawser-auth-client" ‖ server nonce ‖ client nonce ‖ identity)` and the
//!   server answers with `HMAC(secret, "hawser-auth-server" ‖ client nonce ‖ server nonce ‖
//!   identity)`, so neither side can be impersonated by replaying an old exchange and the
//!   secret never travels. Nonces come from the driver (the state machines read no
//!   entropy themselves).

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of each side's nonce.
pub const NONCE_LEN: usize = 16;
/// Length of a proof (an HMAC-SHA256 tag).
pub const PROOF_LEN: usize = 32;

/// An authentication mechanism as named in the hello frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// No proof: the identity is taken at its word.
    Anonymous,
    /// Mutual HMAC-SHA256 challenge-response over a shared secret.
    HmacSha256,
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
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        match self {
            ClientCredentials::Anonymous => f.write_str("Anonymous"),
            ClientCredentials::SharedSecret(_) => f.write_str("SharedSecret(..)"),
        }
    }
}

impl ClientCredentials {
    pub(crate) fn mechanism(&self) -> Mechanism {
        match self {
            ClientCredentials::Anonymous => Mechanism::Anonymous,
            ClientCredentials::SharedSecret(_) => Mechanism::HmacSha256,
        }
    }
}

/// What a server accepts.
#[derive(Clone, Default)]
pub struct ServerCredentials {
    /// Accept `ANONYMOUS` connections.
    pub allow_anonymous: bool,
    /// Shared secrets by client identity, for `HMAC-SHA256`.
    pub secrets: HashMap<String, Vec<u8>>,
}

impl fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCredentials")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("identities", &self.secrets.len())
            .finish()
    }
}

impl ServerCredentials {
    /// Only anonymous connections.
    pub fn anonymous() -> Self {
        ServerCredentials {
            allow_anonymous: true,
            secrets: HashMap::new(),
        }
    }

    /// Shared secrets only, by identity.
    pub fn shared_secrets(secrets: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        ServerCredentials {
            allow_anonymous: false,
            secrets: secrets.into_iter().collect(),
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
}
