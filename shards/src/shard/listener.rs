//! Listening sockets of a shard: multishot accepts, connections kept here or handed
//! round-robin to every shard or placed by their first bytes (`route`), and a pause instead of a spin when file descriptors run out.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::cqueue;

use super::Core;
use super::op::{OpKind, user_data};
use crate::mesh::Envelope;
use crate::protocol::Protocol;
use crate::sys;

/// Builds a protocol for each accepted connection (argument: the shard it will live on).
pub type ProtocolFactory = Arc<dyn Fn(usize) -> Box<dyn Protocol> + Send + Sync>;

/// The first pause of a listener out of file descriptors, and the longest.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(50);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

pub(super) struct Listener {
    pub(super) fd: RawFd,
    factory: ProtocolFactory,
    armed: bool,
    closing: bool,
    /// Accepting is paused until then: the process or system ran out of file
    /// descriptors. Re-armed by a timer, or sooner when a connection closes.
    pub(super) paused_until: Option<Instant>,
    /// The pause after the next failure (doubles while failures go on).
    pause: Duration,
    /// Hand accepted connections round-robin to all shards (acceptor mode) instead of
    /// keeping them here.
    spread: bool,
    next_target: usize,
    /// Places each accepted connection by its first bytes (instead of `spread`).
    router: Option<super::Router>,
}

impl Core {
    /// Adopts a listening socket and starts accepting on it.
    pub(super) fn add_listener(
        &mut self,
        fd: RawFd,
        factory: ProtocolFactory,
        spread: bool,
        router: Option<super::Router>,
    ) {
        let index = self.listeners.len() as u32;
        self.listeners.push(Some(Listener {
            fd,
            factory,
            armed: false,
            closing: false,
            paused_until: None,
            pause: ACCEPT_PAUSE_MIN,
            spread,
            next_target: self.id,
            router,
        }));
        self.arm_accept(index);
    }

    fn arm_accept(&mut self, index: u32) {
        let Some(l) = self.listeners[index as usize].as_mut() else {
            return;
        };
        if l.armed || l.closing || l.paused_until.is_some() {
            return;
        }
        l.armed = true;
        self.ring
            .accept_multishot(l.fd, user_data(OpKind::Accept, 0, index));
    }

    /// Stops accepting on every listener (the shard is stopping).
    pub(super) fn close_listeners(&mut self) {
        for index in 0..self.listeners.len() {
            if let Some(l) = self.listeners[index].as_mut() {
                l.closing = true;
                if l.armed {
                    let target = user_data(OpKind::Accept, 0, index as u32);
                    self.ring.cancel(target, user_data(OpKind::Cancel, 0, 0));
                } else {
                    sys::close(l.fd);
                    self.listeners[index] = None;
                }
            }
        }
    }

    /// Re-arms paused listeners (`index`, or all with `None`) whose pause is over, or
    /// every paused one when a connection just closed (`now` is then far enough).
    pub(super) fn resume_accepting(&mut self, index: Option<u32>, now: Instant) {
        let indices: Vec<u32> = match index {
            Some(i) => vec![i],
            None => (0..self.listeners.len() as u32).collect(),
        };
        for i in indices {
            let Some(l) = self.listeners.get_mut(i as usize).and_then(|l| l.as_mut()) else {
                continue;
            };
            if l.paused_until
                .is_some_and(|at| at <= now || index.is_none())
            {
                l.paused_until = None;
                self.arm_accept(i);
            }
        }
    }

    pub(super) fn on_accept(&mut self, index: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let Some(listener) = self
            .listeners
            .get_mut(index as usize)
            .and_then(|l| l.as_mut())
        else {
            if res >= 0 {
                sys::close(res);
            }
            return;
        };
        if !more {
            listener.armed = false;
        }
        if res >= 0 {
            if listener.closing {
                sys::close(res);
            } else {
                // The algorithm was checked when the listener's side was configured; a
                // failure here leaves the connection on the system's default.
                let _ = self.settings.apply_tcp_options(res);
                if let Some(router) = listener.router.clone() {
                    let factory = listener.factory.clone();
                    self.start_route(sys::owned_fd(res), factory, router);
                } else {
                    let target = if listener.spread {
                        let t = listener.next_target;
                        listener.next_target = (t + 1) % self.settings.shard_count;
                        t
                    } else {
                        self.id
                    };
                    if target == self.id {
                        let proto = (listener.factory)(self.id);
                        self.stats.accepts += 1;
                        self.open_conn(res, proto);
                    } else {
                        let factory = listener.factory.clone();
                        self.post(
                            target,
                            Envelope::Adopt {
                                fd: sys::owned_fd(res),
                                factory,
                            },
                        );
                    }
                }
            }
        } else if res != -libc::ECANCELED
            && res != -libc::EINVAL
            && res != -libc::EMFILE
            && res != -libc::ENFILE
        {
            tracing::warn!(shard = self.id, error = %io::Error::from_raw_os_error(-res), "accept failed");
        }
        let listener = self.listeners[index as usize].as_mut().expect("checked");
        if res >= 0 && listener.pause != ACCEPT_PAUSE_MIN {
            listener.pause = ACCEPT_PAUSE_MIN;
            tracing::info!(shard = self.id, "accepting connections again");
        }
        if !listener.armed {
            if listener.closing {
                sys::close(listener.fd);
                self.listeners[index as usize] = None;
            } else if res == -libc::EMFILE || res == -libc::ENFILE {
                // Retrying at once would spin a core on the same error: pause (the
                // pending connections wait in the listen backlog) and try again after
                // a while, or as soon as a connection of this shard closes.
                if listener.pause == ACCEPT_PAUSE_MIN {
                    tracing::warn!(
                        shard = self.id,
                        error = %io::Error::from_raw_os_error(-res),
                        "out of file descriptors: accepting paused until some close \
                         (raise `ulimit -n` or the server's connection limits)"
                    );
                }
                let pause = listener.pause;
                listener.pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                let at = self.now + pause;
                listener.paused_until = Some(at);
                self.stats.accept_pauses += 1;
                self.timers.push_listener(at, index);
            } else if res >= 0 || res == -libc::EAGAIN {
                self.arm_accept(index);
            } else {
                // A listener that fails for good is dropped rather than retried in a loop.
                sys::close(listener.fd);
                self.listeners[index as usize] = None;
            }
        }
    }
}
