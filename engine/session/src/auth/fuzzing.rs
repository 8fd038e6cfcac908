//! The authentication exchanges as the endpoints run them, without the frames, TLS and
//! failure throttle around them: the door of the `sasl_messages` fuzz target (feature
//! `fuzzing`, not part of the API). A TLS session is stood for by its exporter, so PLAIN
//! and SCRAM-SHA-256-PLUS are reached without a TLS handshake.

use std::sync::Arc;

use bytes::Bytes;

use super::client::{ClientExchange, NegotiationError, SaltedCache, choose};
use super::server::{Connection, SaslServer, ServerExchange, ServerStep};
use super::{
    ClientCredentials, Mechanism, ServerCredentials, dummy_key, mechanism_list,
    parse_mechanism_list,
};
use crate::peer::Peer;

/// A server's side of authentication: its credentials and their `rsasl` configuration.
#[derive(Debug)]
pub struct Server {
    credentials: ServerCredentials,
    sasl: SaslServer,
}

/// What the server answers a client's message with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An `AuthChallenge` with this data; the exchange waits for an `AuthResponse`.
    Challenge(Bytes),
    /// Granted: the `AuthResult` OK, with the mechanism's last words.
    Granted {
        identity: String,
        additional_data: Bytes,
    },
    /// Refused: the `AuthResult`'s reason.
    Refused(&'static str),
}

impl From<ServerStep> for Step {
    fn from(step: ServerStep) -> Step {
        match step {
            ServerStep::Challenge(data) => Step::Challenge(data),
            ServerStep::Done(Ok(granted)) => Step::Granted {
                identity: granted.identity,
                additional_data: granted.additional_data,
            },
            ServerStep::Done(Err(refusal)) => Step::Refused(refusal.reason()),
        }
    }
}

impl Server {
    /// A server with these credentials; `seed` as `ServerEndpoint::new` takes it (it keys
    /// the dummy entries of unknown identities).
    pub fn new(credentials: ServerCredentials, seed: u64) -> Server {
        let sasl = SaslServer::new(&credentials, dummy_key(seed));
        Server { credentials, sasl }
    }

    /// The list of mechanisms the server sends after Hello, on a connection with TLS or
    /// without.
    pub fn mechanisms(&self, tls: bool) -> String {
        mechanism_list(&self.credentials.offered(tls))
    }

    /// A client's `Auth`: the mechanism's name as sent and the initial response, over a
    /// connection from `peer` running TLS with `tls_exporter` (or not). The exchange is
    /// returned while it goes on.
    pub fn start(
        &self,
        mechanism: &str,
        initial: &[u8],
        peer: Peer,
        tls_exporter: Option<[u8; 32]>,
    ) -> (Option<ServerSession>, Step) {
        let connection = Connection {
            credentials: &self.credentials,
            sasl: &self.sasl,
            peer,
            tls_exporter,
            client_pin: None,
        };
        // As the server reads an `Auth` frame (`Attempt::from_frame`).
        let mechanism = mechanism.parse::<Mechanism>().ok();
        let (exchange, step) = ServerExchange::start(connection, mechanism, initial);
        (exchange.map(ServerSession), step.into())
    }
}

/// A server's exchange in progress.
#[derive(Debug)]
pub struct ServerSession(ServerExchange);

impl ServerSession {
    /// The client's `AuthResponse`. After anything but a challenge the exchange is over:
    /// the server drops it.
    pub fn step(&mut self, response: &[u8]) -> Step {
        self.0.step(response).into()
    }
}

/// What a client remembers of its SCRAM derivation (one password's; the client endpoint
/// shares one across its trunk).
#[derive(Debug, Default)]
pub struct SaltCache(Arc<SaltedCache>);

/// A client's exchange in progress.
#[derive(Debug)]
pub struct ClientSession(ClientExchange);

impl ClientSession {
    /// What the client endpoint does with the server's list of mechanisms: chooses one
    /// (`insist`: the configured `sasl_mechanism`) and starts it. Returns the `Auth` it
    /// sends: the mechanism and the initial response.
    pub fn start(
        list: &[u8],
        credentials: &ClientCredentials,
        identity: &str,
        tls_exporter: Option<[u8; 32]>,
        insist: Option<Mechanism>,
        cache: &SaltCache,
    ) -> Result<(ClientSession, Mechanism, Bytes), NegotiationError> {
        let offered = parse_mechanism_list(list);
        let mechanism = choose(&offered, credentials, tls_exporter.is_some(), insist)?;
        let (exchange, initial) = ClientExchange::start(
            mechanism,
            &offered,
            identity,
            credentials,
            tls_exporter,
            &cache.0,
        )?;
        Ok((ClientSession(exchange), mechanism, initial))
    }

    /// The server's `AuthChallenge`: the `AuthResponse`, or why the client hangs up (it
    /// then drops the exchange).
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Bytes, NegotiationError> {
        self.0.respond(challenge)
    }

    /// The `AuthResult` OK's additional data: whether the client trusts the server.
    pub fn finish(&mut self, additional_data: &[u8]) -> Result<(), NegotiationError> {
        self.0.finish(additional_data)
    }
}
