//! The part of a nexus both endpoints share: this side's initiating channel, the peer's
//! channel it responds on, the member connections, and the statistics.
//!
//! The client initiates on the fore channel and responds on the backchannel; the server
//! the other way round. Everything else is identical, which is the seed's "the channels
//! are functionally identical, modulo the negotiated parameters".

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use hawser_wire::dsp::Credit;

use super::client::CallOptions;
use super::codec::{Frame, REQUEST_OVERHEAD};
use super::config::ChannelAttributes;
use super::error::{CallError, ProtocolError};
use super::event::{Event, IncomingRequest, Reply};
use super::initiator::Initiator;
use super::link::Link;
use super::links::Links;
use super::responder::Responder;
use super::stats::NexusStats;
use super::throttle::TokenBucket;
use super::types::{Channel, ExchangeId, LinkId, NexusId, RequestId, SlotKey};

/// Memory held by a nexus, for bounds checks (the simulator asserts on it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Outgoing requests not yet completed (queued or in flight).
    pub outstanding: usize,
    /// Outgoing requests holding a slot.
    pub in_flight: usize,
    /// Bytes in the reply cache.
    pub cached_bytes: usize,
    /// Ordered incoming requests waiting for a predecessor.
    pub waiting_ordered: usize,
    /// Bytes in the member connections' buffers.
    pub link_buffers: usize,
    /// Incoming requests executing (responder slots in use).
    pub executing: usize,
}

/// What the initiator's and responder's operations work with besides their own state:
/// the nexus's id, member connections and statistics, and the endpoint's events.
pub(crate) struct Ctx<'a, P> {
    pub(crate) nexus: NexusId,
    pub(crate) links: &'a mut Links<P>,
    pub(crate) members: &'a [LinkId],
    pub(crate) stats: &'a mut NexusStats,
    pub(crate) events: &'a mut VecDeque<Event>,
}

/// One nexus as either side keeps it: its two channel halves and its members.
#[derive(Debug)]
pub(crate) struct NexusCore {
    pub(crate) id: NexusId,
    pub(crate) initiator: Initiator,
    pub(crate) responder: Responder,
    /// Connections bound to this nexus, in bind order.
    pub(crate) members: Vec<LinkId>,
    pub(crate) stats: NexusStats,
}

impl NexusCore {
    pub(crate) fn new(
        id: NexusId,
        initiate_on: Channel,
        initiate: ChannelAttributes,
        respond: ChannelAttributes,
        throttle: Option<TokenBucket>,
    ) -> Self {
        let respond_on = match initiate_on {
            Channel::Fore => Channel::Back,
            Channel::Back => Channel::Fore,
        };
        NexusCore {
            id,
            initiator: Initiator::new(initiate_on, initiate, throttle),
            responder: Responder::new(respond_on, respond),
            members: Vec::new(),
            stats: NexusStats::default(),
        }
    }

    /// The largest payload a member connection may receive.
    pub(crate) fn max_payload(&self) -> u32 {
        let i = self.initiator.attributes();
        let r = self.responder.attributes();
        (r.max_request_size.saturating_add(REQUEST_OVERHEAD as u32))
            .max(i.max_response_size)
            // Session-level errors (a few dozen bytes) must fit even with tiny limits.
            .max(4096)
    }

    /// The channel halves and the context their operations take, borrowed at once.
    fn split<'a, P>(
        &'a mut self,
        links: &'a mut Links<P>,
        events: &'a mut VecDeque<Event>,
    ) -> (&'a mut Initiator, &'a mut Responder, Ctx<'a, P>) {
        let cx = Ctx {
            nexus: self.id,
            links,
            members: &self.members,
            stats: &mut self.stats,
            events,
        };
        (&mut self.initiator, &mut self.responder, cx)
    }

    pub(crate) fn call<P>(
        &mut self,
        now: Instant,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
        links: &mut Links<P>,
        events: &mut VecDeque<Event>,
    ) -> Result<RequestId, CallError> {
        let id = self.initiator.submit(now, exchange, body, options)?;
        self.dispatch(now, links, events);
        Ok(id)
    }

    pub(crate) fn dispatch<P>(
        &mut self,
        now: Instant,
        links: &mut Links<P>,
        events: &mut VecDeque<Event>,
    ) {
        let (initiator, _, mut cx) = self.split(links, events);
        initiator.dispatch(now, &mut cx);
    }

    pub(crate) fn respond<P>(
        &mut self,
        handle: &IncomingRequest,
        reply: Reply,
        links: &mut Links<P>,
        events: &mut VecDeque<Event>,
    ) -> bool {
        let (_, responder, mut cx) = self.split(links, events);
        responder.respond(handle, reply, &mut cx)
    }

    pub(crate) fn cancel<P>(
        &mut self,
        request: RequestId,
        links: &mut Links<P>,
        events: &mut VecDeque<Event>,
    ) {
        let (initiator, _, mut cx) = self.split(links, events);
        initiator.cancel(request, &mut cx);
    }

    /// Handles a request-level frame from a member connection.
    pub(crate) fn on_frame<P>(
        &mut self,
        now: Instant,
        conn: LinkId,
        frame: Frame,
        links: &mut Links<P>,
        events: &mut VecDeque<Event>,
    ) -> Result<(), ProtocolError> {
        let mine = self.initiator.channel();
        let (initiator, responder, mut cx) = self.split(links, events);
        match frame {
            Frame::Request(request) if request.channel != mine => {
                responder.on_request(conn, request, &mut cx);
            }
            Frame::Cancel(c) if c.channel != mine => {
                let key = SlotKey::new(c.slot, c.sequence, c.request_id);
                responder.on_cancel(cx.nexus, key, cx.events);
            }
            Frame::Response(r) if r.channel == mine => {
                let key = SlotKey::new(r.slot, r.sequence, r.request_id);
                initiator.on_response(now, key, Ok(r.body), &mut cx);
                initiator.dispatch(now, &mut cx);
            }
            Frame::ResponseError(r) if r.channel == mine => {
                let key = SlotKey::new(r.slot, r.sequence, r.request_id);
                initiator.on_response(now, key, Err(r.exception), &mut cx);
                initiator.dispatch(now, &mut cx);
            }
            Frame::Credit(Credit { channel, slots }) if channel == mine => {
                initiator.set_credit(slots);
                initiator.dispatch(now, &mut cx);
            }
            other => return Err(ProtocolError::Unexpected(other.kind().name())),
        }
        Ok(())
    }

    /// A member connection is gone: its requests wait for another connection.
    pub(crate) fn on_link_lost<P>(
        &mut self,
        now: Instant,
        conn: LinkId,
        links: &mut Links<P>,
        events: &mut VecDeque<Event>,
    ) {
        if let Some(i) = self.members.iter().position(|c| *c == conn) {
            self.members.remove(i);
            self.stats.connections_lost += 1;
        }
        self.initiator.on_link_lost(conn, links);
        self.dispatch(now, links, events);
    }

    /// Nothing ever executed here, nothing was ever sent to the peer's handlers and
    /// nothing is outstanding: dropping this nexus loses no work and leaves no activity
    /// behind.
    pub(crate) fn is_pristine(&self) -> bool {
        self.stats.requests_executed == 0
            && self.stats.requests_sent == 0
            && self.initiator.outstanding() == 0
    }

    /// No request ever went out or came in (some may be queued): a peer that forgot this
    /// nexus cannot have run anything of it.
    pub(crate) fn never_used(&self) -> bool {
        self.stats.requests_sent == 0
            && self.stats.requests_executed == 0
            && self.initiator.in_flight() == 0
    }

    /// Fails everything outgoing and stops every running handler.
    pub(crate) fn shut_down(&mut self, error: &CallError, events: &mut VecDeque<Event>) {
        self.initiator.fail_all(self.id, error, events);
        self.responder.cancel_all(self.id, events);
    }

    pub(crate) fn footprint<P>(&self, links: &Links<P>) -> Footprint {
        Footprint {
            outstanding: self.initiator.outstanding(),
            in_flight: self.initiator.in_flight(),
            cached_bytes: self.responder.cached_bytes(),
            waiting_ordered: self.responder.waiting(),
            link_buffers: self
                .members
                .iter()
                .filter_map(|c| links.get(c))
                .map(Link::buffered)
                .sum(),
            executing: self.responder.executing_count(),
        }
    }
}
