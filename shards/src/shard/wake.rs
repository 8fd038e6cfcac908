//! Wake-ups a protocol asks for from inside its callbacks, where it has no
//! [`ShardCtx`](super::ShardCtx): a message broker's feed that a publisher's bytes just
//! filled, or a publisher a draining feed lets read again.

use std::cell::RefCell;

use super::Core;
use super::conn::ConnId;
use crate::mesh::{AppMessage, Envelope};

thread_local! {
    static WAKES: RefCell<Vec<ConnId>> = const { RefCell::new(Vec::new()) };
}

/// Asks the shard to poll `conn` again (its transmit, and its receive if paused) in the
/// next loop iteration. Call it from a protocol callback or a task on a shard thread; a
/// connection of another shard is sent a wake-up message over the mesh.
pub fn wake_connection(conn: ConnId) {
    if conn == ConnId::detached(conn.slot) {
        return; // a simulator's: no shard to wake
    }
    WAKES.with(|w| w.borrow_mut().push(conn));
}

impl Core {
    /// Marks every connection woken since the last call dirty.
    pub(super) fn take_wakes(&mut self) {
        let mut wakes = WAKES.with(|w| std::mem::take(&mut *w.borrow_mut()));
        for &conn in &wakes {
            match self.slot_of(conn) {
                Some(slot) => self.mark_dirty(slot),
                None if usize::from(conn.shard) != self.id
                    && usize::from(conn.shard) < self.settings.shard_count =>
                {
                    self.post(
                        usize::from(conn.shard),
                        Envelope::ToConn {
                            conn,
                            msg: AppMessage::new(0, 0),
                        },
                    )
                }
                None => {}
            }
        }
        wakes.clear();
        // Give the allocation back unless wakes were queued meanwhile.
        WAKES.with(|w| {
            let mut w = w.borrow_mut();
            if w.is_empty() {
                *w = wakes;
            }
        });
    }

    pub(super) fn wakes_pending() -> bool {
        WAKES.with(|w| w.try_borrow().is_ok_and(|w| !w.is_empty()))
    }
}
