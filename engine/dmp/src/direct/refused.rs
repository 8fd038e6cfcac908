//! A direct connection the server cannot serve (its DMP configuration failed): the
//! greeting's place gets the reason, then the connection closes.

use std::time::Instant;

use bytes::BytesMut;
use hawser_runtime::direct::{Protocol, Received, Transmit};

use super::put_response;
use crate::broker::Refusal;

/// Answers the first bytes with its refusal and closes.
#[derive(Debug)]
pub struct Refused {
    refusal: Refusal,
    answered: bool,
    heard: bool,
}

impl Refused {
    /// A connection refused for `refusal`.
    pub fn new(refusal: Refusal) -> Self {
        Refused {
            refusal,
            answered: false,
            heard: false,
        }
    }
}

impl Protocol for Refused {
    fn receives_into_own_buffer(&self) -> bool {
        true
    }

    fn recv_buffer(&mut self, _now: Instant) -> Option<BytesMut> {
        (!self.heard).then(|| BytesMut::with_capacity(64))
    }

    fn handle_received(&mut self, _now: Instant, _buf: BytesMut, filled: usize) {
        self.heard |= filled > 0;
    }

    fn handle_input(&mut self, _now: Instant, _input: Received<'_>) {}

    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        if self.heard && !self.answered {
            let mut text = Vec::new();
            put_response(&mut text, self.refusal.code, &self.refusal.text);
            out.write(&text);
            self.answered = true;
        }
    }

    fn wants_close(&self) -> bool {
        self.answered
    }
}
