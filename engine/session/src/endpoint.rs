//! The endpoint both sides are: the table of connections and everything done with a
//! connection whichever side holds it — bytes in, frames decoded and dispatched, bytes
//! out, losses and closes, statistics — with what differs (handshake, nexus lifecycle,
//! timers) behind [`Side`]. [`ClientEndpoint`](super::ClientEndpoint) is
//! `Endpoint<ClientSide>`, [`ServerEndpoint`](super::ServerEndpoint) is
//! `Endpoint<ServerSide>`.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use bytes::BytesMut;

use super::budget::Reservation;
use super::codec::Frame;
use super::config::Timers;
use super::error::{LinkCloseReason, ProtocolError};
use super::event::Event;
use super::link::{GoAwayCode, Link, TransmitSink, Triaged, go_away_code};
use super::links::Links;
use super::stats::{ConnectionStats, ConnectionTotals};
use super::types::LinkId;

/// One end of the trunk connections of a nexus: a client ([`ClientSide`](super::ClientSide))
/// or a server ([`ServerSide`](super::ServerSide)). The methods here are the driver's
/// interface, the same for both sides (see the crate docs for the loop that drives
/// them); each side adds its own (connecting or accepting, calls, answers, destroy).
#[derive(Debug)]
pub struct Endpoint<S: Side> {
    pub(crate) links: Links<S::Phase>,
    next_link: u64,
    pub(crate) events: VecDeque<Event>,
    pub(crate) side: S,
    /// What the connections already forgotten carried: reports count the bytes of a
    /// connection that died mid-job.
    forgotten: ConnectionTotals,
}

/// What one side of an [`Endpoint`] does on its own: the hooks the shared connection
/// plumbing calls. Implemented by this crate's two sides only.
pub trait Side: Sized {
    /// Where a connection of this side is in its handshake.
    type Phase: fmt::Debug;

    /// Refuses `frame` before anything else sees it, heartbeats included.
    fn screen(_phase: &Self::Phase, _frame: &Frame) -> Result<(), ProtocolError> {
        Ok(())
    }

    /// Handles a frame from `conn` that is not a heartbeat or a GoAway; `reservation` is
    /// the receive budget it was read under, if any (dropped once this returns, unless
    /// kept).
    fn on_frame(
        ep: &mut Endpoint<Self>,
        now: Instant,
        conn: LinkId,
        frame: Frame,
        reservation: Option<Reservation>,
    ) -> Result<(), ProtocolError>;

    /// `conn` was just closed (and [`Event::ConnectionClosed`] queued): settles what it
    /// counted for.
    fn on_close(ep: &mut Endpoint<Self>, now: Instant, conn: LinkId);

    /// The frames that arrived on `conn` were handled.
    fn after_frames(_ep: &mut Endpoint<Self>, _now: Instant, _conn: LinkId) {}

    /// `conn`'s receive buffer was asked for (`lent`: and handed out).
    fn after_lend(_ep: &mut Endpoint<Self>, _conn: LinkId, _lent: bool) {}

    /// `sent` bytes of `conn`, still open, went to the driver.
    fn after_transmit(_ep: &mut Endpoint<Self>, _conn: LinkId, _sent: usize) {}

    /// `conn` was forgotten: its last bytes are out, or its transport is gone.
    fn after_forget(_ep: &mut Endpoint<Self>, _conn: LinkId) {}

    /// The statistics of a connection just forgotten, for totals that outlive it.
    fn forgotten_stats(_ep: &mut Endpoint<Self>, _stats: ConnectionStats) {}

    /// The driver reported `conn`'s transport gone (it is closed and forgotten by now).
    fn after_lost(_ep: &mut Endpoint<Self>, _now: Instant) {}

    /// See [`Endpoint::poll_timeout`].
    fn poll_timeout(ep: &Endpoint<Self>) -> Option<Instant>;

    /// See [`Endpoint::handle_timeout`].
    fn handle_timeout(ep: &mut Endpoint<Self>, now: Instant);
}

impl<S: Side> Endpoint<S> {
    /// An endpoint with no connection yet.
    pub(crate) fn with_side(side: S) -> Self {
        Endpoint {
            links: Links::default(),
            next_link: 1,
            events: VecDeque::new(),
            side,
            forgotten: ConnectionTotals::default(),
        }
    }

    /// Registers a new transport connection in handshake phase `phase`.
    pub(crate) fn open_link(
        &mut self,
        now: Instant,
        phase: S::Phase,
        timers: Timers,
    ) -> &mut Link<S::Phase> {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        self.links.insert(id, Link::new(id, phase, now, timers));
        self.links.get_mut(&id).expect("just inserted")
    }

    /// Bytes arrived on `conn`.
    pub fn handle_input(&mut self, now: Instant, conn: LinkId, bytes: &[u8]) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.receive(now, bytes);
        self.handle_frames(now, conn);
    }

    /// The receive buffer of `conn`, for a driver that receives straight into its spare
    /// capacity instead of handing bytes to [`handle_input`](Self::handle_input): it has
    /// room for at least 64 KiB and for the rest of an incomplete frame, so a large body
    /// lands in its frame's storage without a copy. Give it back with
    /// [`handle_received`](Self::handle_received). `None` for an unknown or closing
    /// connection, and (server) for one whose next frame must wait for the receive
    /// budget: the driver then does not read it until
    /// [`next_budget_wakeup`](super::ServerEndpoint::next_budget_wakeup) names it.
    pub fn recv_buffer(&mut self, now: Instant, conn: LinkId) -> Option<BytesMut> {
        let buf = self.links.get_mut(&conn)?.lend_rx(now);
        S::after_lend(self, conn, buf.is_some());
        buf
    }

    /// The buffer from [`recv_buffer`](Self::recv_buffer) came back with `filled` new
    /// bytes: handles the frames they complete.
    pub fn handle_received(&mut self, now: Instant, conn: LinkId, buf: BytesMut, filled: usize) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.return_rx(now, buf, filled);
        self.handle_frames(now, conn);
    }

    /// Decodes and handles the complete frames waiting on `conn`.
    fn handle_frames(&mut self, now: Instant, conn: LinkId) {
        while let Some(link) = self.links.get_mut(&conn) {
            let (frame, reservation) = match link.next_frame() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    self.fail_link(now, conn, e);
                    break;
                }
            };
            if let Err(e) = S::screen(&link.phase, &frame) {
                self.fail_link(now, conn, e);
                break;
            }
            let handled = match link.triage(now, frame) {
                Triaged::Handled => Ok(()),
                Triaged::GoneAway(reason) => {
                    self.close_link(now, conn, reason, None);
                    Ok(())
                }
                Triaged::Frame(frame) => S::on_frame(self, now, conn, frame, reservation),
            };
            if let Err(e) = handled {
                self.fail_link(now, conn, e);
                break;
            }
        }
        S::after_frames(self, now, conn);
    }

    /// Moves bytes to send on `conn` into `out`; returns how many were added. After
    /// [`Event::ConnectionClosed`] for `conn`, the last bytes come out once and the
    /// connection is forgotten.
    pub fn poll_transmit(
        &mut self,
        _now: Instant,
        conn: LinkId,
        out: &mut impl TransmitSink,
    ) -> usize {
        let Some(link) = self.links.get_mut_unmarked(&conn) else {
            return 0;
        };
        let sent = link.poll_transmit(out);
        if link.is_open() {
            S::after_transmit(self, conn, sent);
        } else {
            self.forget_link(conn);
        }
        sent
    }

    /// The transport of `conn` failed or was closed by the peer.
    pub fn connection_lost(&mut self, now: Instant, conn: LinkId) {
        if self.links.get(&conn).is_some_and(Link::is_open) {
            self.close_link(now, conn, LinkCloseReason::TransportLost, None);
        }
        self.forget_link(conn);
        S::after_lost(self, now);
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must run (on a server,
    /// at worst a little early: it then finds nothing due).
    pub fn poll_timeout(&self) -> Option<Instant> {
        S::poll_timeout(self)
    }

    /// Runs the timers that are due: heartbeats, dead connections, handshake and frame
    /// deadlines, and the side's own (reconnection, recovery, grace periods, delayed
    /// answers, throttling).
    pub fn handle_timeout(&mut self, now: Instant) {
        S::handle_timeout(self, now);
    }

    /// The next event for the application or the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves into `out` the connections changed since the last call: only they can have
    /// bytes for [`poll_transmit`](Self::poll_transmit) (a connection closed since may be
    /// among them, and gives its last bytes there).
    pub fn drain_changed(&mut self, out: &mut Vec<LinkId>) {
        self.links.drain_changed(out);
    }

    /// Statistics of one connection.
    pub fn connection_stats(&self, conn: LinkId) -> Option<&ConnectionStats> {
        self.links.get(&conn).map(|l| &l.stats)
    }

    /// Frames and bytes of every connection this endpoint ever had: the open ones and
    /// those closed and forgotten.
    pub fn connection_totals(&self) -> ConnectionTotals {
        let mut totals = self.forgotten;
        for link in self.links.values() {
            totals.add(&link.stats);
        }
        totals
    }

    /// Connections known (open, or closed with last bytes to send).
    pub fn connections(&self) -> usize {
        self.links.len()
    }

    /// Closes `conn` for a protocol error, telling the peer why.
    pub(crate) fn fail_link(&mut self, now: Instant, conn: LinkId, e: ProtocolError) {
        let code = go_away_code(&e);
        self.close_link(now, conn, LinkCloseReason::Protocol(e), Some(code));
    }

    /// Closes `conn` (with a GoAway when `code` is given), tells the driver, and lets the
    /// side settle what the connection counted for. Nothing if it is closed already.
    pub(crate) fn close_link(
        &mut self,
        now: Instant,
        conn: LinkId,
        reason: LinkCloseReason,
        code: Option<GoAwayCode>,
    ) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if !link.is_open() {
            return;
        }
        link.close(reason.clone(), code);
        self.events
            .push_back(Event::ConnectionClosed { conn, reason });
        S::on_close(self, now, conn);
    }

    /// Forgets a connection whose last bytes are out (or that can send nothing more).
    fn forget_link(&mut self, conn: LinkId) {
        let forgotten = self.links.remove(&conn);
        if let Some(link) = &forgotten {
            self.forgotten.add(&link.stats);
        }
        self.links.shrink_if_sparse();
        S::after_forget(self, conn);
        if let Some(link) = forgotten {
            S::forgotten_stats(self, link.stats);
        }
    }
}
