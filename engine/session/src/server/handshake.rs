//! How the server authenticates a connection: every attempt, whatever its mechanism,
//! passes through one decision with the failure throttle around it, answered at once or,
//! for a penalised source or identity, only after the throttle's delay. Multi-step
//! mechanisms (SCRAM) go on through challenges; their end is decided in the same place.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_wire::dsp::{self as wire, Status};

use super::{Phase, ServerEndpoint, ServerPhase, describe_source};
use crate::auth::server::{Connection, Granted, ServerExchange, ServerStep};
use crate::auth::{Mechanism, Refusal};
use crate::error::LinkCloseReason;
use crate::frames;
use crate::guard::{Source, source_of};
use crate::link::GoAwayCode;
use crate::types::LinkId;

/// One authentication attempt as the client's `Auth` opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// `None`: a mechanism this implementation does not know.
    pub(crate) mechanism: Option<Mechanism>,
    /// The identity the initial response claims (empty when it does not parse): the key
    /// of the failure throttle.
    pub(crate) identity: String,
    pub(crate) initial: Bytes,
}

impl Attempt {
    pub(crate) fn from_frame(auth: wire::Auth<Bytes, String>) -> Attempt {
        let mechanism = auth.mechanism.parse::<Mechanism>().ok();
        let initial = auth.initial_response.unwrap_or_default();
        let identity = mechanism
            .and_then(|m| m.claimed_identity(&initial))
            .unwrap_or_default();
        Attempt {
            mechanism,
            identity,
            initial,
        }
    }
}

impl ServerEndpoint {
    /// Checks an Auth, now or after the throttle's delay. SCRAM's first message checks
    /// nothing (the answer is the salt and count, the same for every identity's dummy):
    /// its exchange starts at once and the throttle gates the response that carries the
    /// proof, so exchanges run side by side cannot outpace it.
    pub(super) fn on_auth(&mut self, now: Instant, conn: LinkId, attempt: Attempt) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let source = source_of(link.peer);
        let key = self.side.auth_throttle.identity_key(&attempt.identity);
        let proof_later = matches!(
            attempt.mechanism,
            Some(Mechanism::ScramSha256 | Mechanism::ScramSha256Plus)
        );
        let delay = if proof_later {
            Duration::ZERO
        } else {
            self.side.auth_throttle.delay(now, source, key)
        };
        if delay.is_zero() {
            self.authenticate(now, conn, attempt);
        } else if let Some(link) = self.links.get_mut(&conn) {
            link.phase = ServerPhase(Phase::AuthDelayed {
                until: now + delay,
                attempt,
            });
        }
    }

    /// Starts the exchange an attempt opens, unless its source is over the rate of
    /// failures.
    pub(super) fn authenticate(&mut self, now: Instant, conn: LinkId, attempt: Attempt) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let source = source_of(link.peer);
        if self.side.auth_throttle.over_rate(now, source) {
            let key = self.side.auth_throttle.identity_key(&attempt.identity);
            self.refuse_unchecked(now, conn, source, key);
            return;
        }
        let connection = Connection {
            credentials: &self.side.config.credentials,
            sasl: &self.side.sasl,
            peer: link.peer,
            tls_exporter: link.tls_exporter(),
            client_pin: link.tls_peer_pin(),
        };
        let (exchange, step) =
            ServerExchange::start(connection, attempt.mechanism, &attempt.initial);
        self.after_step(now, conn, attempt, exchange.map(Box::new), step);
    }

    /// The client's answer to a challenge: checked now or after the throttle's delay.
    pub(super) fn on_auth_response(&mut self, now: Instant, conn: LinkId, data: Bytes) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        let placeholder = ServerPhase(Phase::AwaitAuth);
        let Phase::Authenticating { exchange, attempt } =
            std::mem::replace(&mut link.phase, placeholder).0
        else {
            return;
        };
        let source = source_of(link.peer);
        let key = self.side.auth_throttle.identity_key(&attempt.identity);
        let delay = self.side.auth_throttle.delay(now, source, key);
        if delay.is_zero() {
            self.check_response(now, conn, exchange, attempt, &data);
        } else if let Some(link) = self.links.get_mut(&conn) {
            link.phase = ServerPhase(Phase::ResponseDelayed {
                until: now + delay,
                exchange,
                attempt,
                response: data,
            });
        }
    }

    /// Feeds a response to its exchange and answers, unless its source is over the rate
    /// of failures.
    pub(super) fn check_response(
        &mut self,
        now: Instant,
        conn: LinkId,
        mut exchange: Box<ServerExchange>,
        attempt: Attempt,
        response: &[u8],
    ) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let source = source_of(link.peer);
        if self.side.auth_throttle.over_rate(now, source) {
            let key = self.side.auth_throttle.identity_key(&attempt.identity);
            self.refuse_unchecked(now, conn, source, key);
            return;
        }
        let step = exchange.step(response);
        self.after_step(now, conn, attempt, Some(exchange), step);
    }

    /// Closes a connection whose attempt is not checked (its source failed too often in
    /// the last second), counting it as a failure.
    fn refuse_unchecked(&mut self, now: Instant, conn: LinkId, source: Source, key: u64) {
        // Not checked: an answer, even a refusal, would tell a guesser something.
        self.side.auth_throttle.failure(now, source, key);
        let text = format!(
            "too many failed authentications from {} in the last second; this attempt \
             was not checked: try again in a few seconds",
            describe_source(source)
        );
        self.close_link(
            now,
            conn,
            LinkCloseReason::Refused(text),
            Some(GoAwayCode::AUTH_FAILED),
        );
    }

    /// Sends a challenge, or the outcome with the throttle told.
    fn after_step(
        &mut self,
        now: Instant,
        conn: LinkId,
        attempt: Attempt,
        exchange: Option<Box<ServerExchange>>,
        step: ServerStep,
    ) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        let source = source_of(link.peer);
        let key = self.side.auth_throttle.identity_key(&attempt.identity);
        match step {
            ServerStep::Challenge(data) => {
                link.send(&frames::auth_challenge(data));
                if let Some(exchange) = exchange {
                    link.phase = ServerPhase(Phase::Authenticating { exchange, attempt });
                }
            }
            ServerStep::Done(Ok(Granted {
                identity,
                additional_data,
            })) => {
                if attempt.mechanism.is_some_and(Mechanism::proves_identity) {
                    self.side.auth_throttle.proven(key);
                }
                link.send(&frames::auth_result(
                    Status::OK,
                    additional_data,
                    String::new(),
                ));
                link.anonymous = attempt.mechanism == Some(Mechanism::Anonymous);
                link.phase = ServerPhase(Phase::Authenticated { identity });
                self.side.unauthenticated -= 1;
            }
            ServerStep::Done(Err(refusal)) => self.refuse_auth(now, conn, source, key, refusal),
        }
    }

    fn refuse_auth(
        &mut self,
        now: Instant,
        conn: LinkId,
        source: Source,
        key: u64,
        refusal: Refusal,
    ) {
        self.side.auth_throttle.failure(now, source, key);
        if let Some(link) = self.links.get_mut(&conn) {
            link.send(&frames::auth_result(
                refusal.status(),
                Bytes::new(),
                refusal.reason().into(),
            ));
        }
        self.close_link(
            now,
            conn,
            LinkCloseReason::Refused(refusal.reason().into()),
            Some(GoAwayCode::AUTH_FAILED),
        );
    }
}
