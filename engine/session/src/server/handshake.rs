//! How the server authenticates a connection: every attempt, whatever its mechanism,
//! passes through one decision with the failure throttle around it, answered at once or,
//! for a penalised source or identity, only after the throttle's delay.

use std::time::Instant;

use bytes::Bytes;
use hawser_wire::dsp::Status;

use super::{Phase, ServerEndpoint, ServerPhase, describe_source};
use crate::auth::{self, Attempt, NONCE_LEN};
use crate::error::LinkCloseReason;
use crate::frames;
use crate::guard::source_of;
use crate::link::GoAwayCode;
use crate::types::LinkId;

impl ServerEndpoint {
    /// Checks an Auth, now or after the throttle's delay.
    pub(super) fn on_auth(
        &mut self,
        now: Instant,
        conn: LinkId,
        client_nonce: [u8; NONCE_LEN],
        server_nonce: [u8; NONCE_LEN],
        attempt: Attempt,
    ) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let source = source_of(link.peer);
        let key = self.side.auth_throttle.identity_key(&attempt.identity);
        let delay = self.side.auth_throttle.delay(now, source, key);
        if delay.is_zero() {
            self.authenticate(now, conn, client_nonce, server_nonce, attempt);
        } else if let Some(link) = self.links.get_mut(&conn) {
            link.phase = ServerPhase(Phase::AuthDelayed {
                until: now + delay,
                client_nonce,
                server_nonce,
                attempt,
            });
        }
    }

    /// Decides an authentication attempt and answers it: the one place every mechanism
    /// passes through, with the throttle around it.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        conn: LinkId,
        client_nonce: [u8; NONCE_LEN],
        server_nonce: [u8; NONCE_LEN],
        attempt: Attempt,
    ) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let source = source_of(link.peer);
        let key = self.side.auth_throttle.identity_key(&attempt.identity);
        if self.side.auth_throttle.over_rate(now, source) {
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
            return;
        }
        let peer = link.peer;
        let decided = auth::check(
            &self.side.config.credentials,
            &self.side.dummy_key,
            &attempt,
            peer,
            &server_nonce,
            &client_nonce,
        );
        match decided {
            Ok(proof) => {
                if attempt.proves_identity() {
                    self.side.auth_throttle.proven(key);
                }
                let Some(link) = self.links.get_mut(&conn) else {
                    return;
                };
                link.send(&frames::auth_result(Status::OK, proof, String::new()));
                link.phase = ServerPhase(Phase::Authenticated {
                    identity: attempt.identity,
                });
                self.side.unauthenticated -= 1;
            }
            Err(refusal) => {
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
    }
}
