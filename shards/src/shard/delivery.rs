//! What reaches a shard from outside its ring, drained once per loop iteration: buffers
//! coming home, messages over the SPSC mesh (one chunk per peer), the local inbox, and
//! control tasks from other threads (the [`Poster`] of the helper threads a shard starts
//! among them). Messages a shard sends wait in its outboxes until the loop moves them into
//! the mesh.

use std::sync::Arc;

use crossbeam::channel::Sender;

use super::Core;
use super::ctx::ShardCtx;
use crate::mesh::{Doorbell, Envelope, ShardTask};
use crate::pool::RETURNS;

/// Posts tasks to a shard from any thread (control plane: boxed tasks over its command
/// channel, and a ring of its doorbell if it is parked).
#[derive(Clone)]
pub(super) struct Poster {
    commands: Sender<ShardTask>,
    doorbell: Arc<Doorbell>,
}

impl Poster {
    pub(super) fn new(commands: Sender<ShardTask>, doorbell: Arc<Doorbell>) -> Self {
        Poster { commands, doorbell }
    }

    /// Runs `task` on the shard. Once the shard is gone the task is dropped, and with it
    /// whatever it carried.
    pub(super) fn run(&self, task: ShardTask) {
        if self.commands.send(task).is_ok() {
            self.doorbell.ring_if_parked();
        }
    }
}

impl Core {
    /// Queues `env` for shard `to` (this one included).
    #[inline]
    pub(super) fn post(&mut self, to: usize, env: Envelope) {
        if to == self.id {
            self.local_inbox.push_back(env);
        } else {
            self.stats.mesh_out += 1;
            self.mesh.outboxes[to].push_back(env);
        }
    }

    #[inline]
    fn deliver(&mut self, env: Envelope) {
        match env {
            Envelope::ReturnBuffer(id) => {
                self.stats.buffers_returned_from_peers += 1;
                self.pool.recycle(id);
            }
            Envelope::App { from, msg } => self.with_handler(|h, ctx| h.on_message(ctx, from, msg)),
            Envelope::ToConn { conn, msg } => {
                if let Some(slot) = self.slot_of(conn) {
                    let now = self.now;
                    let c = self.conns[slot as usize].as_mut().expect("slot_of checked");
                    c.proto.handle_message(now, msg);
                    self.mark_dirty(slot);
                }
            }
            Envelope::Task(task) => task(&mut ShardCtx { core: self }),
            Envelope::Adopt { fd, factory } => {
                if self.stopping {
                    return; // dropping the OwnedFd closes it
                }
                let proto = factory(self.id);
                self.stats.accepts += 1;
                self.open_conn(std::os::fd::IntoRawFd::into_raw_fd(fd), proto);
            }
        }
    }

    pub(super) fn drain_inputs(&mut self) {
        // Buffers dropped on this thread since the last iteration.
        RETURNS.with(|r| {
            let mut r = r.borrow_mut();
            std::mem::swap(&mut r.local, &mut self.returns_local);
            std::mem::swap(&mut r.remote, &mut self.returns_remote);
        });
        for i in 0..self.returns_local.len() {
            let id = self.returns_local[i];
            self.pool.recycle(id);
        }
        self.returns_local.clear();
        for i in 0..self.returns_remote.len() {
            let (owner, id) = self.returns_remote[i];
            self.post(owner, Envelope::ReturnBuffer(id));
        }
        self.returns_remote.clear();
        while let Some(id) = self.pool.shared.foreign_returns.pop() {
            self.pool.recycle(id);
        }
        // The SPSC mesh: one chunk per peer.
        self.stats.mesh_occupancy = self.mesh.inbound_len() as u64;
        for from in 0..self.mesh.consumers.len() {
            let Some(mut consumer) = self.mesh.consumers[from].take() else {
                continue;
            };
            let n = consumer.slots();
            if n > 0
                && let Ok(chunk) = consumer.read_chunk(n)
            {
                self.stats.mesh_in += n as u64;
                for env in chunk {
                    self.deliver(env);
                }
            }
            self.mesh.consumers[from] = Some(consumer);
        }
        let mut local = self.local_inbox.len();
        while local > 0 {
            let Some(env) = self.local_inbox.pop_front() else {
                break;
            };
            self.deliver(env);
            local -= 1;
        }
        while let Ok(task) = self.commands.try_recv() {
            task(&mut ShardCtx { core: self });
        }
    }
}
