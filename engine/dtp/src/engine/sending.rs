//! A sending session: the sans-IO [`Sender`] and its rate controller, the payload mapped
//! (or read) ahead of the pacer, and datagrams batched into GSO sends.
//!
//! Datagrams are sent gathered: each one's header and tag from a small buffer, its data
//! straight from the mapped file, so the kernel's copy is the only one. Where the file
//! cannot be mapped, the data is read into a window and copied into the send buffer.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_shards::{BufHandle, GatherPiece, MappedRange, ShardCtx, UdpId};
use hawser_wire::dtp::Feedback;

use super::first_pass::FirstPassDigests;
use super::{BUFFER, Progress, STAGING, SendPlan};
use crate::rate::RateController;
use crate::tag::TAG_LEN;
use crate::{DatagramKey, Sender, SenderConfig};

/// Most datagrams of one GSO send (the kernel's limit is 64 on older kernels).
const MAX_SEGMENTS: usize = 64;

/// Bytes of the payload a mapped window starts on (multiples of it): each window costs
/// two `mmap`s and a `munmap` (with its TLB shootdown) on the shard, so a few per
/// hundred milliseconds at 10 Gbit/s, not hundreds...
const WINDOW: u64 = 8 << 20;
/// ...and the bytes it covers beyond the next start, so that a batch (at most [`BUFFER`]
/// bytes) that starts in a window ends in it.
const WINDOW_SLACK: u64 = BUFFER as u64;

/// A mapped range shared by the sends gathering from it.
struct SharedRange(Arc<MappedRange>);

impl AsRef<[u8]> for SharedRange {
    fn as_ref(&self) -> &[u8] {
        self.0.data()
    }
}

/// A window of the payload mapped ahead of the pacer.
struct MappedWindow {
    start: u64,
    range: Arc<MappedRange>,
    bytes: Bytes,
}

impl MappedWindow {
    /// The window holding `offset`.
    fn covering(file: &File, total: u64, offset: u64) -> io::Result<Self> {
        let start = offset - offset % WINDOW;
        let len = (WINDOW + WINDOW_SLACK).min(total - start) as usize;
        let range = Arc::new(MappedRange::map(file.as_fd(), start, len, 0)?);
        let bytes = Bytes::from_owner(SharedRange(Arc::clone(&range)));
        Ok(MappedWindow {
            start,
            range,
            bytes,
        })
    }

    fn holds(&self, offset: u64, len: usize) -> bool {
        offset >= self.start && offset + len as u64 <= self.start + self.bytes.len() as u64
    }
}

/// A window of the payload read ahead of the pacer.
#[derive(Debug)]
struct ReadAhead {
    start: u64,
    len: usize,
    buf: Vec<u8>,
}

impl ReadAhead {
    /// `len` bytes at `offset`: from the window, after moving it forward when the pacer
    /// has gone past it, or read on their own (a resend behind the window).
    fn bytes<'a>(
        &'a mut self,
        file: &File,
        total: u64,
        offset: u64,
        len: usize,
        single: &'a mut Vec<u8>,
    ) -> io::Result<&'a [u8]> {
        let end = offset + len as u64;
        let within = offset >= self.start && end <= self.start + self.len as u64;
        if !within && offset < self.start {
            single.resize(len, 0);
            file.read_exact_at(single, offset)?;
            return Ok(single);
        }
        if !within {
            if self.buf.is_empty() {
                self.buf.resize(STAGING, 0);
            }
            let want = (total - offset).min(self.buf.len() as u64) as usize;
            file.read_exact_at(&mut self.buf[..want], offset)?;
            self.start = offset;
            self.len = want;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.buf[at..at + len])
    }
}

/// One transfer's sending side on the shard.
pub(super) struct SendingSession {
    pub(super) sender: Sender,
    controller: Box<dyn RateController>,
    key: DatagramKey,
    file: File,
    total: u64,
    datagram_size: usize,
    read_ahead: ReadAhead,
    single: Vec<u8>,
    /// The mapped window, while the file can be mapped.
    window: Option<MappedWindow>,
    mapping: bool,
    /// The pieces of the batch being gathered (kept, so a batch allocates nothing).
    pieces: Vec<GatherPiece>,
    /// A datagram the pacer let go that starts the next batch (it needs another window).
    carried: Option<(u64, usize)>,
    srtt: Option<Duration>,
    last_feedback: Option<Instant>,
    silence_acted: Option<Instant>,
    report_interval: Duration,
    /// The pacer ran out of the shard's buffers: try again shortly.
    pub(super) starved: bool,
    /// Digests of the blocks the first pass sends, for the owner's payload digest.
    first_pass: FirstPassDigests,
}

impl std::fmt::Debug for SendingSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendingSession").finish_non_exhaustive()
    }
}

/// The pacer's bucket for `rate`: a GSO batch or two milliseconds, whichever is more.
fn burst(rate: u64) -> u64 {
    (2 * BUFFER as u64).max(rate / 500)
}

impl SendingSession {
    pub(super) fn new(plan: SendPlan, key: DatagramKey, report_interval: Duration) -> Self {
        let controller = plan.controller.build(plan.max_rate);
        let rate = controller.initial_rate();
        let chunk = usize::from(plan.datagram_size) - plan.form.header_len() - TAG_LEN;
        let sender = Sender::new(
            SenderConfig {
                session_id: plan.session_id,
                total_size: plan.total_size,
                wanted: plan.wanted,
                form: plan.form,
                chunk,
                rate,
                burst: burst(rate),
                resend_after: Duration::from_millis(100) + 2 * report_interval,
            },
            key.clone(),
        );
        SendingSession {
            sender,
            controller,
            key,
            file: plan.file,
            total: plan.total_size,
            datagram_size: usize::from(plan.datagram_size),
            read_ahead: ReadAhead {
                start: 0,
                len: 0,
                // Allocated on first use: only where the file cannot be mapped.
                buf: Vec::new(),
            },
            single: Vec::new(),
            window: None,
            mapping: true,
            pieces: Vec::with_capacity(3 * MAX_SEGMENTS),
            carried: None,
            srtt: None,
            last_feedback: None,
            silence_acted: None,
            report_interval,
            starved: false,
            first_pass: FirstPassDigests::new(plan.total_size, plan.hash_sent_blocks),
        }
    }

    /// Hands the first pass's digests to the transfer's owner once it is over, or now
    /// (`ending`).
    pub(super) fn hand_over_digests(&mut self, progress: &Progress, ending: bool) {
        if ending || self.sender.first_pass_done() {
            self.first_pass.hand_over(&progress.sent_digests);
        }
    }

    /// A feedback datagram (tag checked here): holes to send again, and a new rate.
    /// `false` if it is not this session's.
    pub(super) fn on_packet(&mut self, now: Instant, packet: &[u8], progress: &Progress) -> bool {
        let Some(body) = self.key.open(packet) else {
            return false;
        };
        let Ok(feedback) = Feedback::decode(body) else {
            return false;
        };
        self.last_feedback = Some(now);
        self.silence_acted = None;
        progress
            .delivered
            .fetch_max(feedback.received_bytes, Ordering::Relaxed);
        if let Some(sample) = self.sender.on_feedback(now, &feedback) {
            if let Some(rtt) = sample.rtt {
                let srtt = self.srtt.map_or(rtt, |s| (s * 7 + rtt) / 8);
                self.srtt = Some(srtt);
                progress
                    .rtt_us
                    .store(srtt.as_micros() as u64, Ordering::Relaxed);
                self.sender
                    .set_resend_after(srtt + 2 * self.report_interval);
            }
            let rate = self.controller.on_sample(&sample);
            tracing::trace!(
                session = self.sender.config().session_id,
                delivery_rate = sample.delivery_rate,
                rtt_us = sample.rtt.map(|r| r.as_micros() as u64),
                loss = sample.loss,
                rate,
                sent_bytes = self.sender.sent().0,
                "DTP rate sample"
            );
            self.set_rate(rate, progress);
        }
        true
    }

    fn set_rate(&mut self, rate: u64, progress: &Progress) {
        self.sender.set_rate(rate, burst(rate));
        progress.rate.store(rate, Ordering::Relaxed);
    }

    /// Reports stopped coming while datagrams go: slow down (once per silence period).
    pub(super) fn check_silence(&mut self, now: Instant, progress: &Progress) -> Option<Instant> {
        let since = self.last_feedback?;
        let period = self.srtt.map_or(Duration::from_millis(200), |s| {
            (s * 4).max(Duration::from_millis(50))
        });
        let reference = self.silence_acted.unwrap_or(since);
        let due = reference + period;
        if now < due {
            return Some(due);
        }
        if !self.sender.is_idle() {
            let rate = self.controller.on_silence(now - since);
            self.set_rate(rate, progress);
        }
        self.silence_acted = Some(now);
        Some(now + period)
    }

    /// Sends what the pacer allows now to `peer`, in GSO batches; when to come back.
    pub(super) fn pump(
        &mut self,
        ctx: &mut ShardCtx<'_>,
        socket: UdpId,
        peer: SocketAddr,
        now: Instant,
        progress: &Progress,
    ) -> io::Result<Option<Instant>> {
        self.starved = false;
        loop {
            let Some(buf) = ctx.alloc_buffer() else {
                self.starved = true;
                return Ok(Some(now + Duration::from_micros(200)));
            };
            let batch = if self.mapping {
                self.gather_batch(buf, now, progress)?
            } else {
                self.copy_batch(buf, now, progress)?
            };
            match batch {
                Some(Batch::Gathered(head, body, gso)) => {
                    ctx.send_datagram_gathered(socket, peer, head, body, &self.pieces, gso)?
                }
                Some(Batch::Copied(buf, gso)) => ctx.send_datagram(socket, peer, buf, gso),
                None if self.carried.is_some() => {} // the mapping failed: copy it
                None => {
                    self.hand_over_digests(progress, false);
                    return Ok(self.sender.poll_timeout(now));
                }
            }
        }
    }

    /// The next datagram: the one carried over, or what the pacer lets go now.
    fn next_datagram(&mut self, now: Instant) -> Option<(u64, usize)> {
        self.carried
            .take()
            .or_else(|| self.sender.next_datagram(now))
    }

    /// A batch of datagrams gathered from one mapped window (headers and tags in `head`,
    /// the pieces in `self.pieces`); `None` if the pacer let nothing go.
    fn gather_batch(
        &mut self,
        mut head: BufHandle,
        now: Instant,
        progress: &Progress,
    ) -> io::Result<Option<Batch>> {
        self.pieces.clear();
        let header_len = self.sender.header_len();
        let mut used = 0;
        let mut batch = BatchSizes::default();
        while batch.has_room(self.datagram_size) && used + header_len + TAG_LEN <= head.capacity() {
            let Some((offset, len)) = self.next_datagram(now) else {
                break;
            };
            if !self.window.as_ref().is_some_and(|w| w.holds(offset, len)) {
                if batch.segments > 0 {
                    // One send gathers from one window: this one starts the next batch.
                    self.carried = Some((offset, len));
                    break;
                }
                match MappedWindow::covering(&self.file, self.total, offset) {
                    Ok(window) => self.window = Some(window),
                    Err(_) => {
                        // Read instead, from now on (a file system that cannot map, or
                        // the process's mappings all taken).
                        self.mapping = false;
                        self.window = None;
                        self.carried = Some((offset, len));
                        return Ok(None);
                    }
                }
            }
            let window = self.window.as_ref().expect("set above");
            let at = (offset - window.start) as usize;
            let data = &window.range.data()[at..at + len];
            let room = &mut head.as_mut_full()[used..used + header_len + TAG_LEN];
            self.sender
                .encode_header_into(offset, room)
                .ok_or_else(|| io::Error::other("no room for a datagram header"))?;
            let tag = self.key.tag_of_parts(&room[..header_len], data);
            self.first_pass.on_sent(offset, data);
            if window.range.vanished() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was being sent (another process truncated it); \
                     send it again once it is no longer being rewritten",
                ));
            }
            room[header_len..].copy_from_slice(&tag);
            self.pieces.extend([
                GatherPiece::Head {
                    start: used,
                    len: header_len,
                },
                GatherPiece::Body { start: at, len },
                GatherPiece::Head {
                    start: used + header_len,
                    len: TAG_LEN,
                },
            ]);
            used += header_len + TAG_LEN;
            progress.bytes.fetch_add(len as u64, Ordering::Relaxed);
            progress.datagrams.fetch_add(1, Ordering::Relaxed);
            if !batch.add(header_len + len + TAG_LEN, self.datagram_size) {
                break;
            }
        }
        if batch.segments == 0 {
            return Ok(None);
        }
        head.set_len(used);
        let body = self
            .window
            .as_ref()
            .expect("a batch has a window")
            .bytes
            .clone();
        Ok(Some(Batch::Gathered(head, body, batch.gso())))
    }

    /// A batch of datagrams copied whole into `buf`; `None` if the pacer let nothing go.
    fn copy_batch(
        &mut self,
        mut buf: BufHandle,
        now: Instant,
        progress: &Progress,
    ) -> io::Result<Option<Batch>> {
        let room = buf.capacity().min(BUFFER);
        let mut batch = BatchSizes::default();
        while batch.has_room(self.datagram_size) && batch.filled + self.datagram_size <= room {
            let Some((offset, len)) = self.next_datagram(now) else {
                break;
            };
            let data =
                self.read_ahead
                    .bytes(&self.file, self.total, offset, len, &mut self.single)?;
            self.first_pass.on_sent(offset, data);
            let out = &mut buf.as_mut_full()[batch.filled..batch.filled + self.datagram_size];
            let size = self
                .sender
                .encode_into(offset, data, out)
                .ok_or_else(|| io::Error::other("a datagram longer than its size"))?;
            progress.bytes.fetch_add(len as u64, Ordering::Relaxed);
            progress.datagrams.fetch_add(1, Ordering::Relaxed);
            if !batch.add(size, self.datagram_size) {
                break;
            }
        }
        if batch.segments == 0 {
            return Ok(None);
        }
        buf.set_len(batch.filled);
        Ok(Some(Batch::Copied(buf, batch.gso())))
    }
}

/// One GSO send's datagrams.
enum Batch {
    /// Headers and tags, the window the data is gathered from, the segment size.
    Gathered(BufHandle, Bytes, Option<u16>),
    /// Whole datagrams, the segment size.
    Copied(BufHandle, Option<u16>),
}

/// The sizes of a batch being filled.
#[derive(Default)]
struct BatchSizes {
    filled: usize,
    segments: usize,
    segment_size: usize,
}

impl BatchSizes {
    /// Whether another datagram of up to `datagram_size` bytes fits one GSO send.
    fn has_room(&self, datagram_size: usize) -> bool {
        self.segments < MAX_SEGMENTS && self.filled + datagram_size <= BUFFER
    }

    /// Counts a datagram of `size` bytes; `false` when it ends the batch. GSO sends equal
    /// segments, the last may be shorter: a short datagram (an interval's end) ends a
    /// batch, or goes alone when first.
    fn add(&mut self, size: usize, datagram_size: usize) -> bool {
        self.filled += size;
        self.segments += 1;
        if self.segments == 1 {
            self.segment_size = size;
            size == datagram_size
        } else {
            size >= self.segment_size
        }
    }

    fn gso(&self) -> Option<u16> {
        (self.segments > 1).then_some(self.segment_size as u16)
    }
}
