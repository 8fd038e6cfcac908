//! The responding half of a channel: the slot table with its per-slot reply cache (the
//! exactly-once machinery), ordered delivery, and cancellation of running handlers.
//!
//! Rules, per slot (as NFSv4.1 sessions): a request whose sequence id is the slot's last
//! plus one is new — deliver it to the handler once and cache its reply; a request with
//! the slot's last sequence id is a retry — replay the cached reply (or, while the
//! handler still runs, just note where to answer); anything else is misordered. The table
//! belongs to the nexus, not to a connection, so a retry over any connection of the
//! nexus, before or after reconnecting, finds the cached reply.
//!
//! A new request larger than the negotiated maximum request size takes its sequence id
//! like any other but never reaches the handler: when its turn comes, the responder
//! answers it with `hawser.session.RequestTooLarge` (cached like a reply), so the slot
//! and the ordered sequence move on.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use hawser_wire::dsp::Request;

use super::codec::Frame;
use super::config::ChannelAttributes;
use super::event::{Event, IncomingRequest, Reply};
use super::exception::{RemoteException, session_types};
use super::frames;
use super::initiator::least_loaded;
use super::nexus::Ctx;
use super::types::{Channel, ExchangeId, LinkId, NexusId, RequestId, SlotKey};

#[derive(Debug, Clone)]
enum Cached {
    Response(Bytes),
    Error(Bytes),
    /// The reply was bigger than the negotiated cache: a retry learns that it ran.
    TooBigToCache,
}

#[derive(Debug)]
enum SlotState {
    /// Nothing received yet on this slot.
    Empty,
    /// The handler has the request (or it waits for its turn among ordered requests).
    Executing {
        request: RequestId,
        exchange: ExchangeId,
        /// Where the first copy of the request arrived.
        reply_conn: LinkId,
        /// Where later copies (retries, or an old copy overtaken by its retry) arrived.
        /// The reply goes to every one still open: the initiator's current copy is among
        /// them, or has not arrived yet and will get the replay. Empty (unallocated)
        /// unless the request was retried.
        more_conns: Vec<LinkId>,
        cancel: bool,
        /// Body of an ordered request waiting for its predecessors; `None` once delivered.
        held: Option<Bytes>,
    },
    /// The reply of the slot's last sequence id.
    Done { request: RequestId, reply: Cached },
}

#[derive(Debug)]
struct ResponderSlot {
    last_seq: u32,
    state: SlotState,
}

/// The responder side of one channel of one nexus.
#[derive(Debug)]
pub(crate) struct Responder {
    channel: Channel,
    attrs: ChannelAttributes,
    slots: Vec<ResponderSlot>,
    /// The order number of the next ordered request to deliver.
    next_order: u64,
    /// Ordered requests that arrived early, by order number → slot.
    waiting: BTreeMap<u64, u32>,
    cached_bytes: usize,
}

fn new_slots(n: u32) -> Vec<ResponderSlot> {
    (0..n)
        .map(|_| ResponderSlot {
            last_seq: 0,
            state: SlotState::Empty,
        })
        .collect()
}

/// A session-level refusal of the request `key` names: an exception of type `ty`.
fn error_frame(channel: Channel, key: SlotKey, ty: &str) -> Frame {
    frames::response_error(channel, key, RemoteException::new(ty, ty).encode())
}

impl Responder {
    pub(crate) fn new(channel: Channel, attrs: ChannelAttributes) -> Self {
        Responder {
            channel,
            attrs,
            slots: new_slots(attrs.slots),
            next_order: 1,
            waiting: BTreeMap::new(),
            cached_bytes: 0,
        }
    }

    pub(crate) fn set_attributes(&mut self, attrs: ChannelAttributes) {
        self.attrs = attrs;
        self.slots = new_slots(attrs.slots);
    }

    pub(crate) fn attributes(&self) -> ChannelAttributes {
        self.attrs
    }

    /// A request frame arrived on `conn`.
    pub(crate) fn on_request<P>(
        &mut self,
        conn: LinkId,
        frame: Request<Bytes>,
        cx: &mut Ctx<'_, P>,
    ) {
        let channel = self.channel;
        let key = SlotKey::new(frame.slot, frame.sequence, frame.request_id);
        let SlotKey { slot, seq, request } = key;
        let exchange = ExchangeId(frame.exchange);
        // Order numbers start at 1; a peer sending 0 gets it treated as unordered.
        let order = frame.order.unwrap_or(0);
        let body = frame.body;
        let reply_here = |cx: &mut Ctx<'_, P>, f: Frame| {
            if let Some(link) = cx.links.get_mut(&conn) {
                link.send(&f);
            }
        };
        let Some(s) = self.slots.get_mut(slot as usize) else {
            cx.stats.misordered += 1;
            reply_here(cx, error_frame(channel, key, session_types::BAD_SLOT));
            return;
        };
        let executing = matches!(s.state, SlotState::Executing { .. });
        if seq == s.last_seq.wrapping_add(1) && !executing {
            if order != 0 && order < self.next_order {
                cx.stats.misordered += 1;
                reply_here(cx, error_frame(channel, key, session_types::MISORDERED));
                return;
            }
            if let SlotState::Done { reply, .. } = &s.state {
                self.cached_bytes -= cached_len(reply);
            }
            s.last_seq = seq;
            if body.len() <= self.attrs.max_request_size as usize {
                cx.stats.requests_executed += 1;
                cx.stats.bytes_received += body.len() as u64;
            }
            let deliver_now = order == 0 || order == self.next_order;
            s.state = SlotState::Executing {
                request,
                exchange,
                reply_conn: conn,
                more_conns: Vec::new(),
                cancel: false,
                held: if deliver_now {
                    None
                } else {
                    Some(body.clone())
                },
            };
            if !deliver_now {
                self.waiting.insert(order, slot);
                return;
            }
            let handle = IncomingRequest {
                nexus: cx.nexus,
                channel,
                slot,
                seq,
                request,
                exchange,
            };
            self.deliver(handle, body, false, cx);
            if order != 0 {
                self.next_order += 1;
                self.release_waiting(cx);
            }
            return;
        }
        if seq == s.last_seq {
            match &mut s.state {
                SlotState::Done {
                    request: done_request,
                    reply,
                } if *done_request == request => {
                    cx.stats.replays += 1;
                    let f = reply_frame(channel, key, reply);
                    reply_here(cx, f);
                    return;
                }
                SlotState::Executing {
                    request: running,
                    reply_conn,
                    more_conns,
                    ..
                } if *running == request => {
                    cx.stats.duplicates_ignored += 1;
                    if *reply_conn != conn && !more_conns.contains(&conn) {
                        more_conns.push(conn);
                    }
                    return;
                }
                _ => {}
            }
        }
        cx.stats.misordered += 1;
        reply_here(cx, error_frame(channel, key, session_types::MISORDERED));
    }

    /// Hands a request whose turn has come to the handler, or, if it is larger than the
    /// negotiated maximum, answers it here with `RequestTooLarge` (the handler never sees
    /// it).
    fn deliver<P>(
        &mut self,
        handle: IncomingRequest,
        body: Bytes,
        cancelled: bool,
        cx: &mut Ctx<'_, P>,
    ) {
        let max = self.attrs.max_request_size;
        if body.len() > max as usize {
            let refusal = RemoteException::new(
                session_types::REQUEST_TOO_LARGE,
                format!(
                    "request body of {} bytes exceeds the negotiated max_request_size of \
                     {max} bytes",
                    body.len()
                ),
            );
            self.respond(&handle, Reply::Err(refusal), cx);
            return;
        }
        cx.events.push_back(Event::Request {
            request: handle,
            body,
        });
        if cancelled {
            cx.events
                .push_back(Event::CancelRequested { request: handle });
        }
    }

    /// Delivers ordered requests whose turn has come.
    fn release_waiting<P>(&mut self, cx: &mut Ctx<'_, P>) {
        while let Some(slot) = self.waiting.remove(&self.next_order) {
            self.next_order += 1;
            let s = &mut self.slots[slot as usize];
            if let SlotState::Executing {
                request,
                exchange,
                cancel,
                held,
                ..
            } = &mut s.state
                && let Some(body) = held.take()
            {
                let handle = IncomingRequest {
                    nexus: cx.nexus,
                    channel: self.channel,
                    slot,
                    seq: s.last_seq,
                    request: *request,
                    exchange: *exchange,
                };
                let cancelled = *cancel;
                self.deliver(handle, body, cancelled, cx);
            }
        }
    }

    /// The handler answered. Returns false if the handle is stale (nexus recreated, slot
    /// reused, already answered).
    pub(crate) fn respond<P>(
        &mut self,
        handle: &IncomingRequest,
        reply: Reply,
        cx: &mut Ctx<'_, P>,
    ) -> bool {
        let Some(s) = self.slots.get_mut(handle.slot as usize) else {
            return false;
        };
        let (reply_conn, more_conns) = match &mut s.state {
            SlotState::Executing {
                request,
                reply_conn,
                more_conns,
                held: None,
                ..
            } if *request == handle.request && s.last_seq == handle.seq => {
                (*reply_conn, std::mem::take(more_conns))
            }
            _ => return false,
        };
        let (full, cached) = match reply {
            Reply::Ok(body) if body.len() > self.attrs.max_response_size as usize => {
                let e = RemoteException::new(
                    session_types::TOO_LARGE,
                    "response exceeds the negotiated maximum",
                )
                .encode();
                (Cached::Error(e.clone()), Cached::Error(e))
            }
            Reply::Ok(body) => (Cached::Response(body.clone()), Cached::Response(body)),
            Reply::Err(e) => {
                let e = e.encode();
                (Cached::Error(e.clone()), Cached::Error(e))
            }
            Reply::Cancelled => {
                let e = RemoteException::new(session_types::CANCELLED, "cancelled").encode();
                (Cached::Error(e.clone()), Cached::Error(e))
            }
        };
        let cached = if cached_len(&cached) > self.attrs.max_cached_response_size as usize {
            Cached::TooBigToCache
        } else {
            cached
        };
        self.cached_bytes += cached_len(&cached);
        s.state = SlotState::Done {
            request: handle.request,
            reply: cached,
        };
        let key = SlotKey {
            slot: handle.slot,
            seq: handle.seq,
            request: handle.request,
        };
        let f = reply_frame(self.channel, key, &full);
        // Answer on every open member connection that carried a copy; if none is left,
        // on any member; with none at all, the initiator's retry gets the replay.
        let mut sent = false;
        for conn in std::iter::once(reply_conn).chain(more_conns) {
            if cx.members.contains(&conn)
                && let Some(link) = cx.links.get_mut(&conn)
                && link.is_open()
            {
                link.send(&f);
                sent = true;
            }
        }
        if !sent
            && let Some(link) =
                least_loaded(cx.links, cx.members).and_then(|c| cx.links.get_mut(&c))
        {
            link.send(&f);
        }
        true
    }

    /// The initiator asked to cancel the request `key` names.
    pub(crate) fn on_cancel(&mut self, nexus: NexusId, key: SlotKey, events: &mut VecDeque<Event>) {
        let SlotKey { slot, seq, request } = key;
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if s.last_seq != seq {
            return;
        }
        if let SlotState::Executing {
            request: running,
            exchange,
            cancel,
            held,
            ..
        } = &mut s.state
            && *running == request
            && !*cancel
        {
            *cancel = true;
            // A request still waiting for its turn is told when it is delivered.
            if held.is_none() {
                events.push_back(Event::CancelRequested {
                    request: IncomingRequest {
                        nexus,
                        channel: self.channel,
                        slot,
                        seq,
                        request,
                        exchange: *exchange,
                    },
                });
            }
        }
    }

    /// Tells every running handler to stop (the nexus is going away).
    pub(crate) fn cancel_all(&mut self, nexus: NexusId, events: &mut VecDeque<Event>) {
        for (slot, s) in self.slots.iter().enumerate() {
            if let SlotState::Executing {
                request,
                exchange,
                held: None,
                ..
            } = &s.state
            {
                events.push_back(Event::CancelRequested {
                    request: IncomingRequest {
                        nexus,
                        channel: self.channel,
                        slot: slot as u32,
                        seq: s.last_seq,
                        request: *request,
                        exchange: *exchange,
                    },
                });
            }
        }
    }

    /// The request `slot` is executing (or holding, ordered, for its predecessors).
    pub(crate) fn executing(&self, slot: u32) -> Option<RequestId> {
        match self.slots.get(slot as usize)?.state {
            SlotState::Executing { request, .. } => Some(request),
            _ => None,
        }
    }

    /// Slots whose request is executing.
    pub(crate) fn executing_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::Executing { .. }))
            .count()
    }

    /// Bytes held by the reply cache (bounded by slots × max cached response size).
    pub(crate) fn cached_bytes(&self) -> usize {
        self.cached_bytes
    }

    /// Ordered requests waiting for a predecessor (bounded by the slot count).
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

fn cached_len(c: &Cached) -> usize {
    match c {
        Cached::Response(b) | Cached::Error(b) => b.len(),
        Cached::TooBigToCache => 0,
    }
}

/// The answer to the request `key` names, from what the slot keeps.
fn reply_frame(channel: Channel, key: SlotKey, c: &Cached) -> Frame {
    match c {
        Cached::Response(body) => frames::response(channel, key, body.clone()),
        Cached::Error(exception) => frames::response_error(channel, key, exception.clone()),
        Cached::TooBigToCache => error_frame(channel, key, session_types::NOT_CACHED),
    }
}
