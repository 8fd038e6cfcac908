//! The engine's shard handler: routes each datagram of the data socket to its session,
//! runs the pacers and receivers when their time comes, and ends sessions.
//!
//! A datagram from an address already bound to sessions goes to them (the first whose
//! tag matches); one from a new address is tried against the sessions still waiting for
//! their peer at that IP (the nexus peer's), and binds the first it authenticates for.
//! Nothing else is looked at.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hawser_shards::{AppMessage, BufHandle, ShardCtx, ShardHandler, UdpId};

use super::receiving::ReceivingSession;
use super::routes::Routes;
use super::sending::SendingSession;
use super::{COMMANDS, Command, EngineConfig, Progress, Summary, far_future};
use crate::DatagramKey;

thread_local! {
    /// The data socket, bound by the engine's start on this shard's thread.
    static SOCKET: Cell<Option<UdpId>> = const { Cell::new(None) };
}

/// How often a receiver repeats its hello until the first datagram comes.
const HELLO_EVERY: Duration = Duration::from_millis(50);
/// Largest feedback datagram.
const FEEDBACK_MAX: usize = 1200;
/// The soonest the engine's timer is set for.
const MIN_TIMER: Duration = Duration::from_micros(20);
/// The timer token of the engine's one timer.
const TICK: u64 = 1;

/// What the engine hands each (the only) shard.
pub(super) struct Setup {
    pub(super) config: EngineConfig,
    pub(super) inbox: Arc<Mutex<Option<mpsc::Receiver<Command>>>>,
    pub(super) sessions: Arc<AtomicU64>,
}

enum Role {
    Send(Box<SendingSession>),
    Receive(Box<ReceivingSession>),
}

struct Session {
    peer_ip: IpAddr,
    peer: Option<SocketAddr>,
    role: Role,
    progress: Arc<Progress>,
    done: mpsc::Sender<Result<Summary, String>>,
    started: Instant,
    last_heard: Instant,
}

/// Why a session ends.
enum End {
    Done(Option<u128>),
    Failed(String),
}

/// The shard's sessions.
pub(super) struct DtpShard {
    config: EngineConfig,
    inbox: Option<mpsc::Receiver<Command>>,
    count: Arc<AtomicU64>,
    sessions: HashMap<u32, Session>,
    routes: Routes,
    timer_at: Option<Instant>,
}

impl DtpShard {
    pub(super) fn new(setup: &Setup) -> Self {
        let inbox = setup.inbox.lock().unwrap_or_else(|e| e.into_inner()).take();
        DtpShard {
            config: setup.config.clone(),
            inbox,
            count: Arc::clone(&setup.sessions),
            sessions: HashMap::new(),
            routes: Routes::default(),
            timer_at: None,
        }
    }

    /// Called on the shard's thread with the socket just bound.
    pub(super) fn adopt_socket(_ctx: &mut ShardCtx<'_>, socket: UdpId) {
        SOCKET.with(|s| s.set(Some(socket)));
    }

    fn open(&mut self, now: Instant, command: Command) {
        let (id, session) = match command {
            Command::Barrier(ack) => {
                let _ = ack.send(());
                return;
            }
            Command::Stop(id) => {
                let end = match self.sessions.get_mut(&id).map(|s| &mut s.role) {
                    Some(Role::Receive(r)) => match r.journal(now, true) {
                        Ok(_) => End::Failed("stopped before the transfer completed".into()),
                        Err(e) => End::Failed(format!("stopped; journal not written: {e}")),
                    },
                    Some(Role::Send(_)) => End::Done(None),
                    None => return,
                };
                self.end(id, end, now);
                return;
            }
            Command::Send(plan, progress, done) => {
                let key = DatagramKey::new(plan.key);
                let (id, peer_ip, peer) = (plan.session_id, plan.peer_ip, plan.peer);
                let sending = SendingSession::new(*plan, key, self.config.report_interval);
                let session = Session {
                    peer_ip,
                    peer,
                    role: Role::Send(Box::new(sending)),
                    progress,
                    done,
                    started: now,
                    last_heard: now,
                };
                (id, session)
            }
            Command::Receive(plan, progress, done) => {
                let key = DatagramKey::new(plan.key);
                let (id, peer_ip, peer) = (plan.session_id, plan.peer_ip, plan.peer);
                let receiving = ReceivingSession::new(*plan, key, self.config.report_interval, now);
                let session = Session {
                    peer_ip,
                    peer,
                    role: Role::Receive(Box::new(receiving)),
                    progress,
                    done,
                    started: now,
                    last_heard: now,
                };
                (id, session)
            }
        };
        if self.sessions.contains_key(&id) {
            let _ = session
                .done
                .send(Err(format!("DTP session {id} exists already")));
            return;
        }
        if self.sessions.len() >= self.config.max_sessions {
            let _ = session.done.send(Err(format!(
                "{} DTP sessions run already (the limit); try again later",
                self.config.max_sessions
            )));
            return;
        }
        self.routes.add(id, session.peer_ip, session.peer);
        self.sessions.insert(id, session);
        self.count
            .store(self.sessions.len() as u64, Ordering::Relaxed);
    }

    fn end(&mut self, id: u32, end: End, now: Instant) {
        let Some(mut session) = self.sessions.remove(&id) else {
            return;
        };
        if let Role::Send(sending) = &mut session.role {
            sending.hand_over_digests(&session.progress, true);
        }
        self.count
            .store(self.sessions.len() as u64, Ordering::Relaxed);
        self.routes.remove(id);
        let p = &session.progress;
        let mut summary = Summary {
            bytes: p.bytes.load(Ordering::Relaxed),
            datagrams: p.datagrams.load(Ordering::Relaxed),
            resent: 0,
            duplicates: 0,
            unauthentic: 0,
            refused: 0,
            digest: None,
            elapsed: now.saturating_duration_since(session.started),
        };
        match &session.role {
            Role::Receive(r) => {
                let s = r.receiver.stats();
                summary.duplicates = s.duplicates;
                summary.unauthentic = s.unauthentic;
                summary.refused = s.refused;
            }
            Role::Send(s) => {
                let wanted = s.sender.config().wanted.covered();
                let wanted = if wanted == 0 {
                    s.sender.config().total_size
                } else {
                    wanted
                };
                summary.resent = summary.bytes.saturating_sub(wanted);
            }
        }
        let result = match end {
            End::Done(digest) => {
                summary.digest = digest;
                Ok(summary)
            }
            End::Failed(why) => Err(why),
        };
        let _ = session.done.send(result);
    }

    /// One packet from `from`: to its session, binding a new peer when it authenticates.
    fn route(&mut self, now: Instant, from: SocketAddr, packet: &[u8]) {
        let sessions = &mut self.sessions;
        let routed = self.routes.route(from, |id| match sessions.get_mut(&id) {
            Some(session) => Self::offer(session, now, packet),
            None => Ok(false),
        });
        match routed {
            Some((routed, Ok(()))) if routed.bound => {
                if let Some(session) = self.sessions.get_mut(&routed.session) {
                    session.peer = Some(from);
                }
            }
            Some((routed, Err(e))) => self.end(
                routed.session,
                End::Failed(format!("cannot write the payload: {e}")),
                now,
            ),
            Some(_) | None => {}
        }
    }

    /// Offers a packet to one session: `Ok(true)` when it is the session's.
    fn offer(session: &mut Session, now: Instant, packet: &[u8]) -> std::io::Result<bool> {
        let taken = match &mut session.role {
            Role::Send(s) => Ok(s.on_packet(now, packet, &session.progress)),
            Role::Receive(r) => r.on_packet(now, packet, &session.progress),
        };
        if matches!(taken, Ok(true)) {
            session.last_heard = now;
        }
        taken
    }

    /// Runs every session's due work; arms the timer for the next.
    fn service(&mut self, ctx: &mut ShardCtx<'_>, now: Instant) {
        let Some(socket) = SOCKET.with(Cell::get) else {
            return;
        };
        let mut next = far_future(now);
        let mut ends = Vec::new();
        for (&id, session) in &mut self.sessions {
            if now.saturating_duration_since(session.last_heard) > self.config.idle_timeout {
                ends.push((
                    id,
                    End::Failed(format!(
                        "no datagram from the peer for {} s",
                        self.config.idle_timeout.as_secs()
                    )),
                ));
                continue;
            }
            next = next.min(session.last_heard + self.config.idle_timeout);
            match &mut session.role {
                Role::Send(s) => {
                    if s.sender.is_stopped() {
                        ends.push((id, End::Done(None)));
                        continue;
                    }
                    let Some(peer) = session.peer else { continue };
                    if let Some(at) = s.check_silence(now, &session.progress) {
                        next = next.min(at);
                    }
                    match s.pump(ctx, socket, peer, now, &session.progress) {
                        Ok(Some(at)) => next = next.min(at),
                        Ok(None) => {}
                        Err(e) => {
                            ends.push((id, End::Failed(format!("cannot read the payload: {e}"))))
                        }
                    }
                }
                Role::Receive(r) => {
                    if let Err(e) = r.hash_complete_blocks() {
                        ends.push((
                            id,
                            End::Failed(format!("cannot read back the payload: {e}")),
                        ));
                        continue;
                    }
                    if let Some(peer) = session.peer {
                        if !r.heard && r.hello_at.is_none_or(|at| now >= at + HELLO_EVERY) {
                            r.hello_at = Some(now);
                            send_small(ctx, socket, peer, r.hello());
                        }
                        if !r.heard {
                            next = next.min(now + HELLO_EVERY);
                        }
                        if let Some(bytes) = r.poll_feedback(now, FEEDBACK_MAX) {
                            send_small(ctx, socket, peer, Some(bytes));
                        }
                    }
                    if r.receiver.is_complete() {
                        let end = match r.finish(now) {
                            Ok(digest) => {
                                // The last word, said thrice: a lost one costs the sender
                                // only a few resends until the nexus says stop.
                                if let Some(peer) = session.peer {
                                    for _ in 0..3 {
                                        let bytes = r.poll_feedback(now, FEEDBACK_MAX);
                                        send_small(ctx, socket, peer, bytes);
                                    }
                                }
                                End::Done(Some(digest))
                            }
                            Err(e) => End::Failed(format!("cannot finish the payload: {e}")),
                        };
                        ends.push((id, end));
                        continue;
                    }
                    if let Some(at) = r.receiver.poll_timeout() {
                        next = next.min(at);
                    }
                    match r.journal(now, false) {
                        Ok(Some(at)) => next = next.min(at),
                        Ok(None) => {}
                        Err(e) => ends.push((id, End::Failed(format!("cannot journal: {e}")))),
                    }
                }
            }
        }
        for (id, end) in ends {
            self.end(id, end, now);
        }
        // Never in the past: the shard fires due timers in a loop until none is due.
        let next = next.max(now + MIN_TIMER);
        if self.timer_at.is_none_or(|at| next < at || at <= now) {
            self.timer_at = Some(next);
            ctx.set_timer(next, TICK);
        }
    }
}

/// Sends a small datagram (feedback, hello) in a buffer of its own.
fn send_small(ctx: &mut ShardCtx<'_>, socket: UdpId, peer: SocketAddr, bytes: Option<&[u8]>) {
    let Some(bytes) = bytes else { return };
    let Some(mut buf) = ctx.alloc_buffer() else {
        return; // the next report says it again
    };
    buf.as_mut_full()[..bytes.len()].copy_from_slice(bytes);
    buf.set_len(bytes.len());
    ctx.send_datagram(socket, peer, buf, None);
}

impl ShardHandler for DtpShard {
    fn on_message(&mut self, ctx: &mut ShardCtx<'_>, _from: usize, msg: AppMessage) {
        if msg.tag != COMMANDS {
            return;
        }
        let now = ctx.now();
        let mut commands = Vec::new();
        if let Some(inbox) = &self.inbox {
            while let Ok(command) = inbox.try_recv() {
                commands.push(command);
            }
        }
        for command in commands {
            self.open(now, command);
        }
        self.service(ctx, now);
    }

    fn on_timer(&mut self, ctx: &mut ShardCtx<'_>, _token: u64) {
        let now = ctx.now();
        if self.timer_at.is_some_and(|at| at <= now) {
            self.timer_at = None;
        }
        self.service(ctx, now);
    }

    fn on_datagram(
        &mut self,
        ctx: &mut ShardCtx<'_>,
        _socket: UdpId,
        from: Option<SocketAddr>,
        payload: BufHandle,
        segment_size: Option<u16>,
    ) {
        let Some(from) = from else { return };
        let now = ctx.now();
        let bytes = payload.as_slice();
        match segment_size {
            Some(size) if size > 0 => {
                for packet in bytes.chunks(usize::from(size)) {
                    self.route(now, from, packet);
                }
            }
            _ => self.route(now, from, bytes),
        }
        drop(payload);
        self.service(ctx, now);
    }
}
