//! [`Echo`]: sends every byte back, keeping the received buffers rather than copying them.

use std::collections::VecDeque;
use std::time::Instant;

use crate::pool::BufHandle;
use crate::protocol::{Protocol, Received, Transmit};

/// Echoes every byte back, zero-copy: it retains the receive buffer and sends it in place.
#[derive(Debug, Default)]
pub struct Echo {
    held: VecDeque<BufHandle>,
    copied: Vec<u8>,
    eof: bool,
}

impl Echo {
    /// A fresh echo state machine.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Protocol for Echo {
    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        if !input.is_pooled() {
            self.copied.extend_from_slice(&input);
        } else if let Some(buf) = input.retain() {
            self.held.push_back(buf);
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
    }

    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        while let Some(buf) = self.held.pop_front() {
            out.write_buf(buf);
        }
        if !self.copied.is_empty() {
            out.write(&self.copied);
            self.copied.clear();
        }
    }

    fn wants_close(&self) -> bool {
        self.eof && self.held.is_empty()
    }
}
