//! The accepting side of a shared-memory listener: a helper thread that accepts on the
//! rendezvous socket and runs each handshake on a thread of its own, at most
//! [`AcceptorSettings::max_handshakes`] at once (more clients wait in the listen backlog).
//! Every outcome goes to the owning shard through a callback. Nothing here runs on a
//! shard: a client that connects and says nothing holds one handshake thread until its
//! deadline, never a shard, and never the other handshakes.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{LinkParts, handshake};
use crate::protocol::PeerCredentials;
use crate::sys;

/// Handshakes a listener runs at once.
pub(crate) const MAX_HANDSHAKES: usize = 16;
/// How long the acceptor rests when the process is out of descriptors.
const OUT_OF_FDS_PAUSE: Duration = Duration::from_millis(50);

/// How a listener's handshakes go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AcceptorSettings {
    /// The largest ring granted.
    pub(crate) max_ring: usize,
    pub(crate) timeout: Duration,
    pub(crate) max_handshakes: usize,
}

/// A link a handshake established, with its socket and the client's credentials.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) socket: OwnedFd,
    pub(crate) parts: LinkParts,
    pub(crate) creds: Option<PeerCredentials>,
}

/// What became of one accepted client.
#[derive(Debug)]
pub(crate) enum Outcome {
    Established(Arrival),
    Refused(io::Error),
    /// The acceptor stopped (its handshakes ended, its listener is closed): a stopping
    /// shard waits for this.
    Stopped,
}

/// Where outcomes go (called on the handshake threads).
pub(crate) type Deliver = Arc<dyn Fn(Outcome) + Send + Sync>;

/// What the acceptor thread, its handshake threads and the handle share.
struct Shared {
    stop: AtomicBool,
    /// Set once the listener is closed and every handshake has ended.
    ended: AtomicBool,
    /// Rung to wake the acceptor: to stop, or because a handshake slot came free.
    wake: OwnedFd,
    active: AtomicUsize,
    /// Sockets in a handshake, by handshake number, so that stopping can shut them down
    /// (which ends their blocking calls at once). A handshake takes its socket out of
    /// here, under the lock, before the socket is closed or handed on.
    in_handshake: Mutex<Vec<(u64, RawFd)>>,
}

impl Shared {
    fn take_out(&self, id: u64) {
        let mut list = self.in_handshake.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|&(n, _)| n != id);
    }
}

/// The handle a shard keeps of a listener's acceptor. Dropping it stops the acceptor and
/// waits for its thread (which first ends its handshakes).
pub(crate) struct Acceptor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("active", &self.shared.active.load(Ordering::Relaxed))
            .finish()
    }
}

impl Acceptor {
    /// Starts accepting on `listen` (a listening Unix socket) on a helper thread.
    pub(crate) fn spawn(
        listen: OwnedFd,
        settings: AcceptorSettings,
        deliver: Deliver,
    ) -> io::Result<Acceptor> {
        // Readable says a connection is waiting; non-blocking makes sure a client that
        // went away in between does not leave the acceptor blocked in accept.
        sys::set_nonblocking(listen.as_fd(), true)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            wake: sys::eventfd_owned()?,
            active: AtomicUsize::new(0),
            in_handshake: Mutex::new(Vec::new()),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hawser-shm-accept".into())
            .spawn(move || accept_loop(listen, settings, deliver, for_thread))?;
        Ok(Acceptor {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks the acceptor to stop: it closes the listener, shuts down the handshakes in
    /// progress and ends once they have.
    pub(crate) fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        sys::eventfd_ring(self.shared.wake.as_raw_fd());
    }

    /// Whether it has stopped: its listener is closed and its handshakes have ended
    /// (the thread is about to end; dropping the handle joins it).
    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.ended.load(Ordering::Acquire)
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listen: OwnedFd, settings: AcceptorSettings, deliver: Deliver, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    let mut out_of_fds_logged = false;
    while !shared.stop.load(Ordering::Acquire) {
        workers.retain(|w| !w.is_finished());
        let room = shared.active.load(Ordering::Acquire) < settings.max_handshakes;
        let ready = if room {
            sys::poll_readable([shared.wake.as_fd(), listen.as_fd()], None)
        } else {
            sys::poll_readable([shared.wake.as_fd()], None).map(|[w]| [w, false])
        };
        let [woken, incoming] = match ready {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "shared-memory listener: poll failed; it stops");
                break;
            }
        };
        if woken {
            sys::eventfd_drain(shared.wake.as_fd());
        }
        if !incoming || shared.stop.load(Ordering::Acquire) {
            continue;
        }
        let sock = match sys::accept(listen.as_fd()) {
            Ok(sock) => sock,
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR | libc::ECONNABORTED) => continue,
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    if !out_of_fds_logged {
                        tracing::warn!(error = %e, "shared-memory listener: out of descriptors \
                            or memory; accepting paused until some close");
                        out_of_fds_logged = true;
                    }
                    let _ = sys::poll_readable([shared.wake.as_fd()], Some(OUT_OF_FDS_PAUSE));
                    continue;
                }
                _ => {
                    tracing::warn!(error = %e, "shared-memory listener: accept failed; it stops");
                    break;
                }
            },
        };
        out_of_fds_logged = false;
        let id = next_id;
        next_id += 1;
        shared
            .in_handshake
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, sock.as_raw_fd()));
        shared.active.fetch_add(1, Ordering::AcqRel);
        let (deliver, for_thread) = (deliver.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name("hawser-shm-handshake".into())
            .spawn(move || {
                handshake_thread(id, sock, settings, &deliver, &for_thread);
            });
        match spawned {
            Ok(w) => workers.push(w),
            Err(e) => {
                // The closure (and the socket in it) is dropped: the client sees the end.
                shared.take_out(id);
                shared.active.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(error = %e, "shared-memory listener: no thread for a handshake");
            }
        }
    }
    // Stopping: end the handshakes in progress now rather than at their deadlines.
    for &(_, fd) in shared
        .in_handshake
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        sys::shutdown(fd);
    }
    for w in workers {
        let _ = w.join();
    }
    drop(listen);
    shared.ended.store(true, Ordering::Release);
    deliver(Outcome::Stopped);
}

fn handshake_thread(
    id: u64,
    sock: OwnedFd,
    settings: AcceptorSettings,
    deliver: &Deliver,
    shared: &Shared,
) {
    let creds = sys::peer_credentials(sock.as_raw_fd()).ok();
    let result = handshake::serve(sock.as_fd(), settings.max_ring, settings.timeout);
    shared.take_out(id);
    deliver(match result {
        Ok(parts) => Outcome::Established(Arrival {
            socket: sock,
            parts,
            creds,
        }),
        Err(e) => Outcome::Refused(e),
    });
    shared.active.fetch_sub(1, Ordering::AcqRel);
    sys::eventfd_ring(shared.wake.as_raw_fd());
}
