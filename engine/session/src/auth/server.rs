//! The server's side of one authentication exchange: SCRAM-SHA-256(-PLUS) and PLAIN
//! through `rsasl`, checked against the user database; EXTERNAL and ANONYMOUS decided at
//! once from their single message.
//!
//! An unknown identity runs SCRAM against a dummy entry derived from the server's dummy
//! key (same salt on every try, the database's usual iteration count), so the exchange
//! looks the same as for a known identity and fails the same way; PLAIN checks a dummy
//! entry with the same work.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bytes::Bytes;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::prelude::{
    ChannelBindingCallback, Mechname, SASLConfig, SASLServer, Session, SessionError, State,
    Validation,
};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, ValidationError};

use subtle::ConstantTimeEq;

use super::keys::{DummyKey, keyed};
use super::mechanism::unescape_saslname;
use super::scram_shape;
use super::{MAX_IDENTITY_LEN, Mechanism, Refusal, SALT_LEN, ScramEntry, ServerCredentials};
use crate::peer::Peer;

/// What an exchange does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServerStep {
    /// Send this `AuthChallenge` and wait for the client's `AuthResponse`.
    Challenge(Bytes),
    /// Finished: granted (with the mechanism's last words for the `AuthResult`), or
    /// refused.
    Done(Result<Granted, Refusal>),
}

/// A successful authentication.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Granted {
    pub(crate) identity: String,
    /// SCRAM's server-final message (the server's proof); empty for the others.
    pub(crate) additional_data: Bytes,
}

/// The server's user database as `rsasl` asks it, built once per server.
pub(crate) struct UserDb {
    users: HashMap<String, ScramEntry>,
    dummy: DummyKey,
    /// The iteration count of unknown identities' dummy entries: the one most users have.
    dummy_iterations: u32,
}

impl std::fmt::Debug for UserDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDb")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl UserDb {
    fn entry(&self, identity: &str) -> ScramEntry {
        if let Some(entry) = self.users.get(identity) {
            return entry.clone();
        }
        let salt = keyed(&self.dummy, &[b"salt", identity.as_bytes()]);
        ScramEntry {
            salt: salt[..SALT_LEN].to_vec(),
            iterations: self.dummy_iterations,
            stored_key: keyed(&self.dummy, &[b"stored", identity.as_bytes()]),
            server_key: keyed(&self.dummy, &[b"server", identity.as_bytes()]),
        }
    }
}

/// What a finished exchange tells the protocol: the identity, or why not.
struct Verdict;
impl Validation for Verdict {
    type Value = Result<String, Refusal>;
}

impl SessionCallback for UserDb {
    fn callback(
        &self,
        _session: &SessionData,
        context: &Context<'_>,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if request.is::<ScramStoredPassword<'_>>()
            && let Some(escaped) = context.get_ref::<AuthId>()
        {
            // rsasl hands SCRAM's saslname over as sent (`=2C`, `=3D` escapes).
            let identity = unescape_saslname(escaped).unwrap_or_default();
            let entry = self.entry(&identity);
            request.satisfy::<ScramStoredPassword<'_>>(&ScramStoredPassword::new(
                entry.iterations,
                &entry.salt,
                &entry.stored_key,
                &entry.server_key,
            ))?;
        }
        Ok(())
    }

    fn validate(
        &self,
        _session: &SessionData,
        context: &Context<'_>,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let raw = context.get_ref::<AuthId>().unwrap_or_default();
        let password = context.get_ref::<Password>();
        // SCRAM's name arrives escaped; PLAIN's as it is.
        let unescaped = match password {
            Some(_) => Some(raw.to_owned()),
            None => unescape_saslname(raw),
        };
        let identity = unescaped.as_deref().unwrap_or_default();
        let authzid =
            context
                .get_ref::<AuthzId>()
                .filter(|a| !a.is_empty())
                .map(|a| match password {
                    Some(_) => Some(a.to_owned()),
                    None => unescape_saslname(a),
                });
        let verdict = if authzid.is_some_and(|a| a.as_deref() != Some(identity)) {
            Err(Refusal::Malformed)
        } else if let Some(password) = password {
            // PLAIN: the same work for a known and an unknown identity.
            let matches = self.entry(identity).verify_password(password);
            if matches && self.users.contains_key(identity) {
                Ok(identity.to_owned())
            } else {
                Err(Refusal::Failed)
            }
        } else if self.users.contains_key(identity) {
            // SCRAM asks only once the client's proof checked out.
            Ok(identity.to_owned())
        } else {
            Err(Refusal::Failed)
        };
        validate.with::<Verdict, _>(|| Ok(verdict))?;
        Ok(())
    }
}

/// The channel binding data of a connection: its TLS exporter (RFC 9266), if it runs TLS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding(pub(crate) Option<[u8; 32]>);

impl ChannelBindingCallback for Binding {
    fn get_cb_data(&self, cbname: &str) -> Option<&[u8]> {
        match (&self.0, cbname) {
            (Some(exporter), "tls-exporter") => Some(exporter),
            _ => None,
        }
    }
}

/// The SASL side of a server: its `rsasl` configuration over the user database.
#[derive(Clone)]
pub(crate) struct SaslServer {
    config: Arc<SASLConfig>,
}

impl std::fmt::Debug for SaslServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaslServer")
    }
}

impl SaslServer {
    pub(crate) fn new(credentials: &ServerCredentials, dummy: DummyKey) -> SaslServer {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for entry in credentials.users.values() {
            *counts.entry(entry.iterations).or_default() += 1;
        }
        let dummy_iterations = counts
            .into_iter()
            .max_by_key(|&(iterations, n)| (n, iterations))
            .map_or(super::DEFAULT_ITERATIONS, |(iterations, _)| iterations);
        let db = UserDb {
            users: credentials.users.clone(),
            dummy,
            dummy_iterations,
        };
        let config = SASLConfig::builder()
            .with_registry(super::rsasl_registry())
            .with_callback(db)
            .expect("SCRAM and PLAIN are compiled in");
        SaslServer { config }
    }
}

/// Where the exchange stands.
pub(crate) struct ServerExchange {
    mechanism: Mechanism,
    session: Session<Verdict, Binding>,
    /// Messages of the client's read so far.
    received: usize,
    /// The identity the first message claimed: the one the throttle counts against,
    /// and the only one the exchange may grant.
    claimed: String,
}

impl std::fmt::Debug for ServerExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerExchange")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// What the server knows of the connection an attempt comes over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connection<'a> {
    pub(crate) credentials: &'a ServerCredentials,
    pub(crate) sasl: &'a SaslServer,
    pub(crate) peer: Peer,
    /// The TLS exporter, when the connection runs TLS.
    pub(crate) tls_exporter: Option<[u8; 32]>,
    /// The pin of the client's TLS certificate, when it showed one.
    pub(crate) client_pin: Option<[u8; 32]>,
}

impl ServerExchange {
    /// Starts the exchange the client's `Auth` opens: `mechanism` (None: one the server
    /// does not know) with `initial` response. Returns the exchange to keep when it goes
    /// on.
    pub(crate) fn start(
        connection: Connection<'_>,
        mechanism: Option<Mechanism>,
        initial: &[u8],
    ) -> (Option<ServerExchange>, ServerStep) {
        let refuse = |r| (None, ServerStep::Done(Err(r)));
        let tls = connection.tls_exporter.is_some();
        let Some(mechanism) = mechanism else {
            return refuse(Refusal::Mechanism);
        };
        if mechanism.needs_tls() && !tls {
            return refuse(Refusal::NeedsTls);
        }
        let Some(identity) = mechanism.claimed_identity(initial) else {
            return refuse(Refusal::Malformed);
        };
        if identity.len() > MAX_IDENTITY_LEN {
            return refuse(Refusal::IdentityTooLong);
        }
        let credentials = connection.credentials;
        match mechanism {
            // An identity that must prove itself is refused like a wrong password, so the
            // answer does not tell which identities exist.
            Mechanism::Anonymous if credentials.is_protected(&identity) => refuse(Refusal::Failed),
            Mechanism::Anonymous if credentials.allow_anonymous => {
                (None, ServerStep::Done(Ok(granted(identity))))
            }
            Mechanism::Anonymous => refuse(Refusal::AnonymousRefused),
            Mechanism::External => {
                let by_uid = connection
                    .peer
                    .local()
                    .map(|creds| credentials.peer_uids.get(&identity) == Some(&creds.uid));
                let by_certificate = connection.client_pin.map(|pin| {
                    credentials
                        .client_certs
                        .get(&identity)
                        .is_some_and(|granted| bool::from(granted.ct_eq(&pin)))
                });
                match (by_uid, by_certificate) {
                    (None, None) => refuse(Refusal::ExternalNotLocal),
                    (Some(true), _) | (_, Some(true)) => {
                        (None, ServerStep::Done(Ok(granted(identity))))
                    }
                    _ => refuse(Refusal::Failed),
                }
            }
            Mechanism::ScramSha256Plus | Mechanism::ScramSha256 | Mechanism::Plain => {
                if credentials.users.is_empty()
                    || (mechanism == Mechanism::Plain && !credentials.allow_plain)
                {
                    return refuse(Refusal::Mechanism);
                }
                let server = SASLServer::<Verdict, Binding>::with_cb(
                    connection.sasl.config.clone(),
                    Binding(connection.tls_exporter),
                );
                let name = Mechname::parse(mechanism.name().as_bytes())
                    .expect("hawser's mechanism names are valid");
                let Ok(session) = server.start_suggested(name) else {
                    return refuse(Refusal::Mechanism);
                };
                let mut exchange = ServerExchange {
                    mechanism,
                    session,
                    received: 0,
                    claimed: identity,
                };
                let step = exchange.step(initial);
                let keep = matches!(step, ServerStep::Challenge(_));
                (keep.then_some(exchange), step)
            }
        }
    }

    /// Feeds the client's next message.
    pub(crate) fn step(&mut self, input: &[u8]) -> ServerStep {
        let first = self.received == 0;
        self.received += 1;
        let well_formed = match self.mechanism {
            // -PLUS must bind (`p=tls-exporter`); plain SCRAM must not claim to (RFC 5802
            // section 6): the mechanism named and the GS2 flag agree.
            Mechanism::ScramSha256Plus if first => {
                scram_shape::client_first(input) && input.starts_with(b"p=tls-exporter,")
            }
            Mechanism::ScramSha256 if first => {
                scram_shape::client_first(input) && !input.starts_with(b"p=")
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => scram_shape::client_final(input),
            _ => true,
        };
        if !well_formed {
            return ServerStep::Done(Err(Refusal::Malformed));
        }
        let mut out = Vec::new();
        // A panic in the SASL library must cost the peer its connection, not the shard.
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            self.session.step(Some(input), &mut out)
        }));
        let Ok(stepped) = stepped else {
            return ServerStep::Done(Err(Refusal::Malformed));
        };
        match stepped {
            Ok(State::Running) => ServerStep::Challenge(out.into()),
            Ok(State::Finished(_)) => match self.session.validation() {
                // rsasl prepares PLAIN's name (SASLprep): a spelling that prepares to
                // another identity would be throttled under one name and granted another.
                Some(Ok(identity)) if identity != self.claimed => {
                    ServerStep::Done(Err(Refusal::Malformed))
                }
                Some(Ok(identity)) => ServerStep::Done(Ok(Granted {
                    identity,
                    additional_data: out.into(),
                })),
                Some(Err(refusal)) => ServerStep::Done(Err(refusal)),
                // SCRAM wrote its error (`e=...`) instead of asking for a verdict.
                None if out.starts_with(b"e=channel-bindings-dont-match") => {
                    ServerStep::Done(Err(Refusal::ChannelBinding))
                }
                None => ServerStep::Done(Err(Refusal::Failed)),
            },
            Err(SessionError::MechanismError(e))
                if e.to_string()
                    .contains("channel bindings are supported by both") =>
            {
                // `y`: the client can bind but believed we could not: a downgrade.
                ServerStep::Done(Err(Refusal::ChannelBinding))
            }
            Err(_) => ServerStep::Done(Err(Refusal::Malformed)),
        }
    }
}

fn granted(identity: String) -> Granted {
    Granted {
        identity,
        additional_data: Bytes::new(),
    }
}
