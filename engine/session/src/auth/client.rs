//! The client's side of authentication: choosing a mechanism from the server's list, and
//! running it (SCRAM-SHA-256(-PLUS) and PLAIN through `rsasl`; EXTERNAL and ANONYMOUS are
//! the identity alone).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rsasl::callback::{CallbackError, Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::{Iterations, Salt, SaltedPassword};
use rsasl::prelude::{Mechname, SASLClient, SASLConfig, Session, SessionError, State};
use rsasl::property::{AuthId, Password};

use super::scram_shape;
use super::server::Binding;
use super::users::salted_password;
use super::{ClientCredentials, ITERATIONS, Mechanism};

/// Why a client cannot authenticate with what the server offers (decided before sending
/// anything), or why the server's answers are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// Nothing offered fits the client's credentials.
    #[error("the server offers {offered} and none fits this client ({have}); {advice}")]
    NoCommonMechanism {
        offered: String,
        have: &'static str,
        advice: &'static str,
    },
    /// An anonymous client, and the server does not list ANONYMOUS.
    #[error("{}", super::Refusal::AnonymousRefused.reason())]
    AnonymousRefused,
    /// The mechanism the client insists on is not offered, or does not fit.
    #[error("--sasl-mechanism {wanted}: {why}")]
    Insisted { wanted: Mechanism, why: String },
    /// The server asks for a SCRAM iteration count outside 4096..=10,000,000: below, a
    /// recorded exchange is cheap to guess the password from; above, it would keep the
    /// client busy for minutes.
    #[error(
        "the server asks for {0} SCRAM iterations (this client accepts 4096 to 10000000): \
         not answering"
    )]
    IterationCount(u32),
    /// The server's SCRAM messages do not verify: it does not know the password (an
    /// impostor), or a relay changed them.
    #[error("the server failed to prove it knows the password ({0}): not trusting it")]
    ServerNotProven(String),
}

/// The mechanisms credentials can use, strongest first.
fn usable(credentials: &ClientCredentials, tls: bool) -> Vec<Mechanism> {
    match credentials {
        ClientCredentials::Anonymous => vec![Mechanism::Anonymous],
        ClientCredentials::External => vec![Mechanism::External],
        ClientCredentials::Password(_) if tls => vec![
            Mechanism::ScramSha256Plus,
            Mechanism::ScramSha256,
            Mechanism::Plain,
        ],
        ClientCredentials::Password(_) => vec![Mechanism::ScramSha256],
    }
}

/// Picks the mechanism: the strongest the server offers that `credentials` can use over
/// this connection, or `insist` if it is offered and fits.
pub(crate) fn choose(
    offered: &[Mechanism],
    credentials: &ClientCredentials,
    tls: bool,
    insist: Option<Mechanism>,
) -> Result<Mechanism, NegotiationError> {
    let usable = usable(credentials, tls);
    let offered_text = if offered.is_empty() {
        "no mechanism".to_owned()
    } else {
        super::mechanism::encode_list(offered)
    };
    if let Some(wanted) = insist {
        let why = if wanted.needs_tls() && !tls {
            "it is accepted over TLS only (add --tls)".to_owned()
        } else if !offered.contains(&wanted) {
            format!("the server offers {offered_text} on this connection")
        } else if !usable.contains(&wanted) {
            "these credentials cannot use it".to_owned()
        } else {
            return Ok(wanted);
        };
        return Err(NegotiationError::Insisted { wanted, why });
    }
    if let Some(&best) = usable.iter().find(|m| offered.contains(m)) {
        return Ok(best);
    }
    let (have, advice) = match credentials {
        ClientCredentials::Anonymous => return Err(NegotiationError::AnonymousRefused),
        ClientCredentials::External => (
            "EXTERNAL by user id",
            "the server grants no identity to local users: use a password instead",
        ),
        ClientCredentials::Password(_) => (
            "a password",
            "ask the operator to add your identity (hawser passwd) or to allow \
             anonymous clients",
        ),
    };
    Err(NegotiationError::NoCommonMechanism {
        offered: offered_text,
        have,
        advice,
    })
}

/// The SaltedPassword a client derived for one salt and iteration count: the other
/// connections of its trunk, and its reconnections, skip PBKDF2.
#[derive(Debug, Default)]
pub(crate) struct SaltedCache(Mutex<Option<Salted>>);

/// A SaltedPassword and the salt and iteration count it was derived with.
#[derive(Debug)]
struct Salted {
    salt: Vec<u8>,
    iterations: u32,
    password: [u8; 32],
}

impl SaltedCache {
    fn get_or_derive(&self, password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
        let mut cached = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match cached.as_ref() {
            Some(c) if c.salt == salt && c.iterations == iterations => c.password,
            _ => {
                let salted = salted_password(password, salt, iterations);
                *cached = Some(Salted {
                    salt: salt.to_vec(),
                    iterations,
                    password: salted,
                });
                salted
            }
        }
    }
}

/// The client's identity and password as `rsasl` asks for them.
struct Login {
    identity: String,
    password: Arc<[u8]>,
    channel_binding: bool,
    cache: Arc<SaltedCache>,
}

impl SessionCallback for Login {
    fn callback(
        &self,
        session: &SessionData,
        context: &Context<'_>,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if request.is::<SaltedPassword>() {
            let (Some(salt), Some(&iterations)) =
                (context.get_ref::<Salt>(), context.get_ref::<Iterations>())
            else {
                return Ok(());
            };
            // The server chooses the count: a hostile one must not make us spin for
            // minutes, nor make our proof cheap to guess from.
            if !ITERATIONS.contains(&iterations) {
                return Err(SessionError::CallbackError(CallbackError::NoValue));
            }
            let salted = self.cache.get_or_derive(&self.password, salt, iterations);
            request.satisfy::<SaltedPassword>(&salted)?;
            return Ok(());
        }
        request.satisfy::<AuthId>(self.identity.as_str())?;
        // Only PLAIN sends the password; SCRAM gets SaltedPassword above or nothing, so
        // rsasl can never run PBKDF2 with a count the server chose.
        if session.mechanism().mechanism.as_str() == Mechanism::Plain.name() {
            request.satisfy::<Password>(&self.password)?;
        }
        Ok(())
    }

    fn enable_channel_binding(&self) -> bool {
        self.channel_binding
    }
}

/// One exchange in progress.
pub(crate) struct ClientExchange {
    mechanism: Mechanism,
    session: Option<Session<rsasl::validate::NoValidation, Binding>>,
}

impl std::fmt::Debug for ClientExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientExchange")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl ClientExchange {
    /// Starts `mechanism` as `identity`: the exchange and the `Auth` frame's initial
    /// response. `offered` is the server's list (SCRAM tells the server when the client
    /// could have bound the channel but the list did not offer it: a downgrade).
    pub(crate) fn start(
        mechanism: Mechanism,
        offered: &[Mechanism],
        identity: &str,
        credentials: &ClientCredentials,
        tls_exporter: Option<[u8; 32]>,
        cache: &Arc<SaltedCache>,
    ) -> Result<(ClientExchange, Bytes), NegotiationError> {
        let password = match credentials {
            ClientCredentials::Password(p) if mechanism.is_password() => p.clone(),
            _ => {
                let exchange = ClientExchange {
                    mechanism,
                    session: None,
                };
                return Ok((exchange, Bytes::copy_from_slice(identity.as_bytes())));
            }
        };
        // Bind when the server offers PLUS; declare that we could ('y') when it does not
        // although we run TLS; 'n' only without TLS or when told to use plain SCRAM.
        let insisting_plain_scram =
            mechanism == Mechanism::ScramSha256 && offered.contains(&Mechanism::ScramSha256Plus);
        let channel_binding = tls_exporter.is_some() && !insisting_plain_scram;
        let login = Login {
            identity: identity.to_owned(),
            password,
            channel_binding,
            cache: Arc::clone(cache),
        };
        let config = SASLConfig::builder()
            .with_registry(super::rsasl_registry())
            .with_callback(login)
            .expect("SCRAM and PLAIN are compiled in");
        let client = SASLClient::with_cb(config, Binding(tls_exporter));
        // With binding enabled and the plain name alone, rsasl's SCRAM client sends 'y'.
        let name = Mechname::parse(mechanism.name().as_bytes()).expect("hawser's names are valid");
        let mut session =
            client
                .start_suggested(&[name])
                .map_err(|e| NegotiationError::Insisted {
                    wanted: mechanism,
                    why: e.to_string(),
                })?;
        let mut initial = Vec::new();
        session
            .step(None, &mut initial)
            .map_err(|e| NegotiationError::Insisted {
                wanted: mechanism,
                why: e.to_string(),
            })?;
        let exchange = ClientExchange {
            mechanism,
            session: Some(session),
        };
        Ok((exchange, initial.into()))
    }

    /// The mechanism running.
    pub(crate) fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Answers the server's challenge (the `AuthResponse`).
    pub(crate) fn respond(&mut self, challenge: &[u8]) -> Result<Bytes, NegotiationError> {
        let Some(session) = self.session.as_mut() else {
            return Err(NegotiationError::ServerNotProven(
                "a challenge for a one-message mechanism".into(),
            ));
        };
        if matches!(
            self.mechanism,
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus
        ) {
            match scram_shape::server_first(challenge) {
                None => {
                    return Err(NegotiationError::ServerNotProven(
                        "a malformed SCRAM server-first message".into(),
                    ));
                }
                Some(count) if !ITERATIONS.contains(&count) => {
                    return Err(NegotiationError::IterationCount(count));
                }
                Some(_) => {}
            }
        }
        let mut out = Vec::new();
        let stepped = catch_unwind(AssertUnwindSafe(|| session.step(Some(challenge), &mut out)))
            .map_err(|_| NegotiationError::ServerNotProven("a malformed challenge".into()))?;
        match stepped {
            Ok(State::Running) => Ok(out.into()),
            Ok(State::Finished(_)) => Err(NegotiationError::ServerNotProven(
                "the exchange ended early".into(),
            )),
            Err(e) => Err(NegotiationError::ServerNotProven(e.to_string())),
        }
    }

    /// Checks the server's last words (the `AuthResult` of a success): for SCRAM, its
    /// proof of knowing the password.
    pub(crate) fn finish(&mut self, additional_data: &[u8]) -> Result<(), NegotiationError> {
        let Some(session) = self.session.as_mut() else {
            return if additional_data.is_empty() {
                Ok(())
            } else {
                Err(NegotiationError::ServerNotProven(
                    "unexpected data in the result".into(),
                ))
            };
        };
        if self.mechanism == Mechanism::Plain {
            return Ok(());
        }
        if !scram_shape::server_final(additional_data) {
            return Err(NegotiationError::ServerNotProven(
                "a malformed SCRAM server-final message".into(),
            ));
        }
        let mut out = Vec::new();
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            session.step(Some(additional_data), &mut out)
        }))
        .map_err(|_| NegotiationError::ServerNotProven("a malformed result".into()))?;
        match stepped {
            Ok(State::Finished(_)) => Ok(()),
            Ok(State::Running) => Err(NegotiationError::ServerNotProven(
                "the exchange is not finished".into(),
            )),
            Err(e) => Err(NegotiationError::ServerNotProven(e.to_string())),
        }
    }
}
