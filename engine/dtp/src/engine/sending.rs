//! A sending session: the sans-IO [`Sender`] and its rate controller, the payload read
//! ahead of the pacer, and datagrams batched into GSO sends.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hawser_shards::{ShardCtx, UdpId};
use hawser_wire::dtp::Feedback;

use super::{BUFFER, Progress, STAGING, SendPlan};
use crate::rate::RateController;
use crate::tag::TAG_LEN;
use crate::{DatagramKey, Sender, SenderConfig};

/// Most datagrams of one GSO send (the kernel's limit is 64 on older kernels).
const MAX_SEGMENTS: usize = 64;

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
    srtt: Option<Duration>,
    last_feedback: Option<Instant>,
    silence_acted: Option<Instant>,
    report_interval: Duration,
    /// The pacer ran out of the shard's buffers: try again shortly.
    pub(super) starved: bool,
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
                buf: vec![0; STAGING],
            },
            single: Vec::new(),
            srtt: None,
            last_feedback: None,
            silence_acted: None,
            report_interval,
            starved: false,
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
            let Some(mut buf) = ctx.alloc_buffer() else {
                self.starved = true;
                return Ok(Some(now + Duration::from_micros(200)));
            };
            let room = buf.capacity().min(BUFFER);
            let mut filled = 0;
            let mut segments = 0;
            let mut segment_size = 0;
            while segments < MAX_SEGMENTS && filled + self.datagram_size <= room {
                let Some((offset, len)) = self.sender.next_datagram(now) else {
                    break;
                };
                let data =
                    self.read_ahead
                        .bytes(&self.file, self.total, offset, len, &mut self.single)?;
                let out = &mut buf.as_mut_full()[filled..filled + self.datagram_size];
                let size = self
                    .sender
                    .encode_into(offset, data, out)
                    .ok_or_else(|| io::Error::other("a datagram longer than its size"))?;
                filled += size;
                segments += 1;
                progress.bytes.fetch_add(len as u64, Ordering::Relaxed);
                progress.datagrams.fetch_add(1, Ordering::Relaxed);
                // GSO sends equal segments, the last may be shorter: a short datagram
                // (an interval's end) ends a batch, or goes alone when first.
                if segments == 1 {
                    segment_size = size;
                    if size < self.datagram_size {
                        break;
                    }
                } else if size < segment_size {
                    break;
                }
            }
            if segments == 0 {
                return Ok(self.sender.poll_timeout(now));
            }
            buf.set_len(filled);
            let gso = (segments > 1).then_some(segment_size as u16);
            ctx.send_datagram(socket, peer, buf, gso);
        }
    }
}
