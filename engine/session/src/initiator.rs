//! The initiating half of a channel: request ids, the slot table as the initiator sees
//! it, flow control, trunking, retries after connection loss, and cancellation.
//!
//! A request takes a free slot when first sent and keeps that (slot, sequence id) for its
//! whole life: a retry over another connection re-sends the same pair, which is what lets
//! the responder answer it from its reply cache instead of executing it again. The slot
//! is released only when a response arrives (or the nexus is lost), so the slot count
//! bounds the requests in flight: the channel's window.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use hawser_wire::dsp::HEADER_LEN;

use super::client::CallOptions;
use super::config::ChannelAttributes;
use super::error::CallError;
use super::event::Event;
use super::exception::{RemoteException, session_types};
use super::frames;
use super::links::Links;
use super::nexus::Ctx;
use super::throttle::TokenBucket;
use super::types::{Channel, ExchangeId, IdMap, LinkId, NexusId, RequestId, SlotKey};

#[derive(Debug, Clone, Copy, Default)]
struct InitiatorSlot {
    last_seq: u32,
    busy: Option<RequestId>,
}

#[derive(Debug)]
struct Outgoing {
    exchange: ExchangeId,
    body: Bytes,
    options: CallOptions,
    /// Assigned at first send: (slot, seq, order).
    assigned: Option<(u32, u32, u64)>,
    /// The connection carrying the latest copy; `None` while waiting for one.
    conn: Option<LinkId>,
    started: Instant,
    cancel: bool,
    /// Times transmitted. Once a request has copies on more than one connection, the
    /// responder may route its reply over any of them, so it is re-sent after any loss.
    copies: u32,
}

impl Outgoing {
    fn wire_bytes(&self) -> u64 {
        (self.body.len() + HEADER_LEN) as u64
    }
}

/// The initiator side of one channel of one nexus.
#[derive(Debug)]
pub(crate) struct Initiator {
    channel: Channel,
    attrs: ChannelAttributes,
    /// Slots the responder currently lets us use (≤ `attrs.slots`).
    credit: u32,
    slots: Vec<InitiatorSlot>,
    /// Which slots are free, one bit per slot: finding the lowest free slot takes a few
    /// word tests instead of a scan of every slot (a hot spot with hundreds in flight).
    free: FreeSlots,
    /// Requests not yet sent, in call order.
    queue: VecDeque<RequestId>,
    /// Requests holding a slot whose connection was lost, waiting for another one.
    resend: VecDeque<RequestId>,
    outstanding: IdMap<RequestId, Outgoing>,
    next_request: u64,
    next_order: u64,
    throttle: Option<TokenBucket>,
}

/// Picks the open member connection with the fewest outstanding request bytes.
pub(crate) fn least_loaded<P>(links: &Links<P>, members: &[LinkId]) -> Option<LinkId> {
    members
        .iter()
        .filter_map(|c| links.get(c))
        .filter(|l| l.is_open())
        .min_by_key(|l| (l.outstanding_bytes, l.queued()))
        .map(|l| l.id)
}

impl Initiator {
    pub(crate) fn new(
        channel: Channel,
        attrs: ChannelAttributes,
        throttle: Option<TokenBucket>,
    ) -> Self {
        Initiator {
            channel,
            attrs,
            credit: attrs.slots,
            slots: vec![InitiatorSlot::default(); attrs.slots as usize],
            free: FreeSlots::all(attrs.slots),
            queue: VecDeque::new(),
            resend: VecDeque::new(),
            outstanding: IdMap::default(),
            next_request: 1,
            next_order: 1,
            throttle,
        }
    }

    /// Installs the negotiated attributes (before anything was sent).
    pub(crate) fn set_attributes(&mut self, attrs: ChannelAttributes) {
        self.attrs = attrs;
        self.credit = attrs.slots;
        self.slots = vec![InitiatorSlot::default(); attrs.slots as usize];
        self.free = FreeSlots::all(attrs.slots);
    }

    pub(crate) fn attributes(&self) -> ChannelAttributes {
        self.attrs
    }

    pub(crate) fn channel(&self) -> Channel {
        self.channel
    }

    /// The responder's current window.
    pub(crate) fn set_credit(&mut self, slots: u32) {
        self.credit = slots.clamp(1, self.attrs.slots);
    }

    /// Queues a request.
    pub(crate) fn submit(
        &mut self,
        now: Instant,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
    ) -> Result<RequestId, CallError> {
        let size = options.body_size(&body);
        if size > self.attrs.max_request_size as usize {
            return Err(CallError::RequestTooLarge {
                size,
                max: self.attrs.max_request_size,
            });
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.outstanding.insert(
            id,
            Outgoing {
                exchange,
                body,
                options,
                assigned: None,
                conn: None,
                started: now,
                cancel: false,
                copies: 0,
            },
        );
        self.queue.push_back(id);
        Ok(id)
    }

    fn free_slot(&self) -> Option<u32> {
        let usable = self.credit.min(self.slots.len() as u32);
        self.free.lowest().filter(|&slot| slot < usable)
    }

    fn transmit<P>(&mut self, id: RequestId, conn: LinkId, links: &mut Links<P>) {
        let Some(out) = self.outstanding.get_mut(&id) else {
            return;
        };
        let Some((slot, seq, order)) = out.assigned else {
            return;
        };
        let Some(link) = links.get_mut(&conn) else {
            return;
        };
        let key = SlotKey {
            slot,
            seq,
            request: id,
        };
        let request = frames::request(self.channel, key, out.exchange, order, out.body.clone());
        if out.options.precompressed {
            if !link.send_compressed(&request) {
                // This connection did not agree on lz4: from now on the request is raw.
                let Ok(raw) = hawser_wire::dsp::decompress_body(
                    &out.body,
                    self.attrs.max_request_size as usize,
                ) else {
                    return;
                };
                out.body = Bytes::from(raw);
                out.options.precompressed = false;
                let request =
                    frames::request(self.channel, key, out.exchange, order, out.body.clone());
                link.send_uncompressed(&request);
            }
        } else if out.options.uncompressed {
            link.send_uncompressed(&request);
        } else {
            link.send(&request);
        }
        if out.cancel {
            // The responder may never have seen the earlier Cancel: repeat it.
            link.send(&frames::cancel(self.channel, key));
        }
        link.outstanding_bytes += out.wire_bytes();
        out.conn = Some(conn);
        out.copies += 1;
    }

    /// Sends what can be sent: retries first (they hold slots), then new requests while a
    /// slot, the throttle and a connection allow, in call order.
    pub(crate) fn dispatch<P>(&mut self, now: Instant, cx: &mut Ctx<'_, P>) {
        while let Some(&id) = self.resend.front() {
            let Some(conn) = least_loaded(cx.links, cx.members) else {
                return;
            };
            self.resend.pop_front();
            if self.outstanding.contains_key(&id) {
                cx.stats.retries += 1;
                if let Some(o) = self.outstanding.get(&id) {
                    cx.stats.bytes_sent += o.body.len() as u64;
                }
                self.transmit(id, conn, cx.links);
            }
        }
        while let Some(&id) = self.queue.front() {
            let Some(slot) = self.free_slot() else {
                return;
            };
            let Some(conn) = least_loaded(cx.links, cx.members) else {
                return;
            };
            let Some(out) = self.outstanding.get(&id) else {
                self.queue.pop_front();
                continue;
            };
            let size = out.options.body_size(&out.body);
            if size > self.attrs.max_request_size as usize {
                // Only possible when the call was queued before negotiation shrank the
                // limit; it fails without having been sent.
                self.queue.pop_front();
                self.outstanding.remove(&id);
                cx.events.push_back(Event::Completed {
                    nexus: cx.nexus,
                    request: id,
                    result: Err(CallError::RequestTooLarge {
                        size,
                        max: self.attrs.max_request_size,
                    }),
                });
                continue;
            }
            if let Some(bucket) = &mut self.throttle
                && !bucket.try_take(now, out.body.len() as u64)
            {
                return;
            }
            self.queue.pop_front();
            let s = &mut self.slots[slot as usize];
            s.last_seq = s.last_seq.wrapping_add(1);
            s.busy = Some(id);
            self.free.take(slot);
            let seq = s.last_seq;
            let order = if out.options.ordered {
                self.next_order += 1;
                self.next_order - 1
            } else {
                0
            };
            cx.stats.requests_sent += 1;
            cx.stats.bytes_sent += out.body.len() as u64;
            if let Some(out) = self.outstanding.get_mut(&id) {
                out.assigned = Some((slot, seq, order));
                out.started = now;
            }
            self.transmit(id, conn, cx.links);
        }
    }

    /// When the throttle lets the next queued request go, if it is what holds it back.
    /// Not while no connection of `members` could carry it: a bucket with tokens gives an
    /// instant already past, which `dispatch` cannot clear without a connection, so the
    /// timer would stay due and the driver spin until one binds (and binding dispatches).
    pub(crate) fn throttle_deadline<P>(
        &self,
        links: &Links<P>,
        members: &[LinkId],
    ) -> Option<Instant> {
        let bucket = self.throttle.as_ref()?;
        let id = self.queue.front()?;
        self.free_slot()?;
        least_loaded(links, members)?;
        let out = self.outstanding.get(id)?;
        Some(bucket.ready_at(out.body.len() as u64))
    }

    /// A response (`Ok`) or response-error (`Err`, the encoded exception) arrived for
    /// `key`: completes the request it answers, if still outstanding (duplicates from
    /// replays are ignored).
    pub(crate) fn on_response<P>(
        &mut self,
        now: Instant,
        key: SlotKey,
        result: Result<Bytes, Bytes>,
        cx: &mut Ctx<'_, P>,
    ) {
        let SlotKey { slot, seq, request } = key;
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if s.busy != Some(request) || s.last_seq != seq {
            return;
        }
        let Some(out) = self.outstanding.remove(&request) else {
            return;
        };
        s.busy = None;
        self.free.give(slot);
        if let Some(conn) = out.conn
            && let Some(link) = cx.links.get_mut(&conn)
        {
            link.outstanding_bytes = link.outstanding_bytes.saturating_sub(out.wire_bytes());
        }
        self.resend.retain(|r| *r != request);
        cx.stats.requests_completed += 1;
        cx.stats
            .record_latency(out.exchange, now.saturating_duration_since(out.started));
        let result = match result {
            Ok(body) => {
                if body.len() > self.attrs.max_response_size as usize {
                    Err(CallError::ResponseTooLarge)
                } else {
                    Ok(body)
                }
            }
            Err(exception) => Err(exception_to_error(&exception, out.body.len())),
        };
        cx.events.push_back(Event::Completed {
            nexus: cx.nexus,
            request,
            result,
        });
    }

    /// The connection is gone: its requests wait for another one, keeping their slots.
    ///
    /// So do requests already sent more than once: the responder answers on the
    /// connection where a copy arrived last, and an old copy can overtake the retry, so
    /// their reply may have been on the lost connection even though their latest copy was
    /// not. Re-sending is safe — the responder ignores or replays duplicates — and rare.
    pub(crate) fn on_link_lost<P>(&mut self, conn: LinkId, links: &mut Links<P>) {
        let mut lost: Vec<RequestId> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.conn == Some(conn) || (o.copies > 1 && o.conn.is_some()))
            .map(|(id, _)| *id)
            .collect();
        // Retry in the original order so ordered requests keep their relative order.
        lost.sort_unstable();
        for id in lost {
            if let Some(o) = self.outstanding.get_mut(&id)
                && let Some(link) = o.conn.take().and_then(|c| links.get_mut(&c))
            {
                link.outstanding_bytes = link.outstanding_bytes.saturating_sub(o.wire_bytes());
            }
            self.resend.push_back(id);
        }
    }

    /// Cancels a request: at once if it was never sent, otherwise by asking the responder
    /// (the request completes when the responder answers).
    pub(crate) fn cancel<P>(&mut self, request: RequestId, cx: &mut Ctx<'_, P>) {
        let Some(out) = self.outstanding.get_mut(&request) else {
            return;
        };
        if out.cancel {
            return;
        }
        cx.stats.cancels += 1;
        match out.assigned {
            None => {
                self.outstanding.remove(&request);
                self.queue.retain(|r| *r != request);
                cx.events.push_back(Event::Completed {
                    nexus: cx.nexus,
                    request,
                    result: Err(CallError::Cancelled),
                });
            }
            Some((slot, seq, _)) => {
                out.cancel = true;
                if let Some(conn) = out.conn
                    && let Some(link) = cx.links.get_mut(&conn)
                {
                    let key = SlotKey { slot, seq, request };
                    link.send(&frames::cancel(self.channel, key));
                }
            }
        }
    }

    /// Completes every request with `error` (nexus lost or destroyed).
    pub(crate) fn fail_all(
        &mut self,
        nexus: NexusId,
        error: &CallError,
        events: &mut VecDeque<Event>,
    ) {
        let mut ids: Vec<RequestId> = self.outstanding.keys().copied().collect();
        ids.sort_unstable();
        for request in ids {
            events.push_back(Event::Completed {
                nexus,
                request,
                result: Err(error.clone()),
            });
        }
        self.outstanding.clear();
        self.queue.clear();
        self.resend.clear();
        for s in &mut self.slots {
            s.busy = None;
        }
        self.free = FreeSlots::all(self.slots.len() as u32);
    }

    /// Requests not yet completed.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Requests that hold a slot (sent at least once and not completed).
    pub(crate) fn in_flight(&self) -> usize {
        self.slots.len() - self.free.count()
    }
}

/// A set of free slot numbers as a bitmap.
#[derive(Debug, Clone)]
struct FreeSlots(Vec<u64>);

impl FreeSlots {
    /// Slots `0..n`, all free.
    fn all(n: u32) -> Self {
        let n = n as usize;
        let mut words = vec![u64::MAX; n.div_ceil(64)];
        if let Some(last) = words.last_mut()
            && !n.is_multiple_of(64)
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        FreeSlots(words)
    }

    fn lowest(&self) -> Option<u32> {
        self.0
            .iter()
            .enumerate()
            .find(|(_, word)| **word != 0)
            .map(|(i, word)| i as u32 * 64 + word.trailing_zeros())
    }

    fn take(&mut self, slot: u32) {
        if let Some(word) = self.0.get_mut(slot as usize / 64) {
            *word &= !(1u64 << (slot % 64));
        }
    }

    fn give(&mut self, slot: u32) {
        if let Some(word) = self.0.get_mut(slot as usize / 64) {
            *word |= 1u64 << (slot % 64);
        }
    }

    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The error a ResponseError stands for; `size` is the request's body size.
fn exception_to_error(bytes: &[u8], size: usize) -> CallError {
    let Some(e) = RemoteException::decode(bytes) else {
        return CallError::Remote(RemoteException::new(
            "hawser.session.MalformedException",
            "the peer sent an exception that could not be decoded",
        ));
    };
    match e.type_name.as_str() {
        session_types::CANCELLED => CallError::Cancelled,
        session_types::MISORDERED | session_types::BAD_SLOT => CallError::Misordered,
        session_types::TOO_LARGE => CallError::ResponseTooLarge,
        session_types::NOT_CACHED => CallError::ReplyNotCached,
        session_types::REQUEST_TOO_LARGE => CallError::RefusedTooLarge {
            size,
            message: e.message,
        },
        _ => CallError::Remote(e),
    }
}

#[cfg(test)]
mod exception_tests {
    use super::*;

    #[test]
    fn a_request_refused_as_too_large_fails_with_the_responders_words() {
        let refusal = RemoteException::new(
            session_types::REQUEST_TOO_LARGE,
            "request body of 2000 bytes exceeds the negotiated max_request_size of 1024 bytes",
        );
        let error = exception_to_error(&refusal.encode(), 2000);
        assert_eq!(
            error,
            CallError::RefusedTooLarge {
                size: 2000,
                message: refusal.message.clone(),
            }
        );
        assert!(error.to_string().contains("max_request_size of 1024"));
    }
}

#[cfg(test)]
mod free_slots_tests {
    use super::FreeSlots;

    #[test]
    fn lowest_free_slot_follows_takes_and_gives() {
        for n in [1u32, 63, 64, 65, 256] {
            let mut free = FreeSlots::all(n);
            assert_eq!(free.count(), n as usize);
            for slot in 0..n {
                assert_eq!(free.lowest(), Some(slot));
                free.take(slot);
            }
            assert_eq!(free.lowest(), None, "{n} slots all taken");
            free.give(n / 2);
            free.give(n - 1);
            assert_eq!(free.lowest(), Some(n / 2));
            assert_eq!(free.count(), if n > 1 { 2 } else { 1 });
        }
    }
}

#[cfg(test)]
mod throttle_tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::{CallOptions, Initiator};
    use crate::config::{ChannelAttributes, Timers};
    use crate::error::LinkCloseReason;
    use crate::link::Link;
    use crate::links::Links;
    use crate::throttle::{ThrottleConfig, TokenBucket};
    use crate::types::{Channel, ExchangeId, LinkId};

    /// Found by the `session_server` fuzz target: an orphaned nexus with a queued,
    /// throttled backchannel call kept `poll_timeout` at an instant already past, which
    /// `handle_timeout` could not clear without a connection (a busy loop in the driver).
    #[test]
    fn the_throttle_is_no_deadline_without_a_connection_to_send_on() {
        let now = Instant::now();
        let config = ThrottleConfig {
            bytes_per_second: 1000,
            burst_bytes: 100,
        };
        let attrs = ChannelAttributes::default();
        let mut initiator =
            Initiator::new(Channel::Back, attrs, Some(TokenBucket::new(config, now)));
        initiator
            .submit(
                now,
                ExchangeId(1),
                Bytes::from_static(b"x"),
                CallOptions::default(),
            )
            .unwrap();
        let mut links: Links<()> = Links::default();
        assert_eq!(initiator.throttle_deadline(&links, &[]), None, "no member");
        let conn = LinkId(1);
        links.insert(conn, Link::new(conn, (), now, Timers::default()));
        assert_eq!(
            initiator.throttle_deadline(&links, &[conn]),
            Some(now),
            "the bucket has tokens: due now"
        );
        links
            .get_mut(&conn)
            .unwrap()
            .close(LinkCloseReason::TransportLost, None);
        assert_eq!(initiator.throttle_deadline(&links, &[conn]), None, "closed");
    }
}
