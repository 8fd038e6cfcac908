//! The sending side of a transfer: which bytes go next (what was asked, in order, then
//! the holes reports name), paced to a rate at microsecond resolution, and the datagrams'
//! bytes (header, data, tag).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hawser_wire::dtp::{Datagram, DatagramForm, Feedback, HoleReport, Interval, IntervalSet};

use crate::rate::RateSample;
use crate::tag::DatagramKey;

/// First-pass send times kept to match feedback echoes against (a ring).
const ECHO_SAMPLES: usize = 4096;
/// At most one echo sample per this much time.
const ECHO_SAMPLE_SPACING: Duration = Duration::from_micros(200);
/// How far the first pass had come, noted at most this often...
const FIRST_PASS_MARK_SPACING: Duration = Duration::from_millis(1);
/// ...in at most this many marks (the oldest go first: what is due is then found later).
const FIRST_PASS_MARKS: usize = 4096;

/// When its bucket runs dry, the pacer waits for this much sending time to accumulate.
const PACER_WAKE: Duration = Duration::from_micros(250);

/// When a first-pass datagram left, and how many datagrams had left by then.
#[derive(Debug, Clone, Copy)]
struct EchoSample {
    offset: u64,
    at: Instant,
    datagrams: u64,
    /// Bytes of datagrams sent by then.
    bytes: u64,
}

/// One report's cumulative counts.
#[derive(Debug, Clone, Copy)]
struct Delivered {
    at: Instant,
    bytes: u64,
    datagrams: u64,
    /// Datagrams sent up to the one the report echoed: at least this many (the echo
    /// sample at or before it)...
    sent_low: u64,
    /// ...and at most this many (the datagrams before the next sample).
    sent_high: u64,
    /// The echo sample's send time and the datagram bytes sent by then.
    echo_sent: Option<(Instant, u64)>,
}

/// What the previous feedback said, to turn the next into rates.
#[derive(Debug, Clone, Copy)]
struct LastFeedback {
    sequence: u32,
}

/// How a transfer is sent.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The session.
    pub session_id: u32,
    /// The payload's size.
    pub total_size: u64,
    /// What was asked for (empty: the whole payload).
    pub wanted: IntervalSet,
    /// The datagrams' form.
    pub form: DatagramForm,
    /// Data bytes per datagram (the UDP payload less the form's header and the tag).
    pub chunk: usize,
    /// Bytes per second of datagrams (headers and tags included); never above it.
    pub rate: u64,
    /// Bytes that may leave back to back (the pacer's bucket).
    pub burst: u64,
    /// A hole re-sent this recently is not re-sent again for a later report (which was
    /// written before the first resend could arrive): about the round trip plus the
    /// receiver's report interval.
    pub resend_after: Duration,
}

/// One transfer's sending side.
#[derive(Debug)]
pub struct Sender {
    config: SenderConfig,
    key: DatagramKey,
    /// What is left to send, first pass and re-requested holes alike: canonical
    /// intervals, ascending (a deque, so that sending from the front allocates nothing).
    pending: VecDeque<Interval>,
    /// The pacer: bytes it may send now, and when it last counted.
    tokens: f64,
    counted_at: Option<Instant>,
    stopped: bool,
    /// Holes queued again lately, and when: not queued again before `resend_after`.
    recent: VecDeque<(Instant, IntervalSet)>,
    sent_bytes: u64,
    datagrams: u64,
    /// Send times of first-pass datagrams, ascending by offset.
    echoes: VecDeque<EchoSample>,
    /// The end of the highest datagram sent: one starting there or beyond is first pass.
    first_pass_end: u64,
    /// Where the first pass ends: the end of the last byte wanted.
    wanted_end: u64,
    /// (when, `first_pass_end` then), ascending: what of the first pass went long enough
    /// ago that a report may name it missing.
    first_pass_marks: VecDeque<(Instant, u64)>,
    last_feedback: Option<LastFeedback>,
    /// What the reports of about the last half round trip said: the delivery rate and
    /// the loss are taken over that, not over one report's few ms.
    delivered: VecDeque<Delivered>,
    srtt: Option<Duration>,
}

impl Sender {
    /// A sender of everything `config` asks for.
    pub fn new(config: SenderConfig, key: DatagramKey) -> Self {
        let pending = if config.wanted.is_empty() {
            IntervalSet::whole(config.total_size)
        } else {
            config.wanted.clone()
        };
        let wanted_end = pending.as_slice().last().map_or(0, |i| i.end());
        Sender {
            wanted_end,
            tokens: config.burst as f64,
            config,
            key,
            pending: pending.as_slice().iter().copied().collect(),
            counted_at: None,
            stopped: false,
            recent: VecDeque::new(),
            sent_bytes: 0,
            datagrams: 0,
            echoes: VecDeque::with_capacity(ECHO_SAMPLES),
            first_pass_end: 0,
            first_pass_marks: VecDeque::new(),
            last_feedback: None,
            delivered: VecDeque::new(),
            srtt: None,
        }
    }

    /// The setup.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Paces at `rate` bytes per second from now on, with a bucket of `burst` bytes.
    pub fn set_rate(&mut self, rate: u64, burst: u64) {
        self.config.rate = rate.max(1);
        self.config.burst = burst.max(1);
        self.tokens = self.tokens.min(self.config.burst as f64);
    }

    /// Sets how long a hole re-sent is not re-sent again (see [`SenderConfig`]).
    pub fn set_resend_after(&mut self, resend_after: Duration) {
        self.config.resend_after = resend_after;
    }

    fn datagram_len(&self, data: usize) -> u64 {
        (self.config.form.header_len() + data + crate::tag::TAG_LEN) as u64
    }

    fn refill(&mut self, now: Instant) {
        if let Some(at) = self.counted_at {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            self.tokens =
                (self.tokens + elapsed * self.config.rate as f64).min(self.config.burst as f64);
        }
        self.counted_at = Some(now);
    }

    /// The next datagram to send now, as (offset, data length), or `None` when nothing
    /// is left or the pacer says wait (see [`poll_timeout`](Self::poll_timeout)).
    pub fn next_datagram(&mut self, now: Instant) -> Option<(u64, usize)> {
        if self.stopped {
            return None;
        }
        let first = *self.pending.front()?;
        let len = (first.length().min(self.config.chunk as u64)) as usize;
        self.refill(now);
        let cost = self.datagram_len(len) as f64;
        if self.tokens < cost {
            return None;
        }
        self.tokens -= cost;
        match Interval::new(first.offset() + len as u64, first.length() - len as u64) {
            Some(shorter) => self.pending[0] = shorter,
            None => {
                self.pending.pop_front();
            }
        }
        self.sent_bytes += cost as u64;
        self.datagrams += 1;
        // Only first-pass sends time echoes: a resent hole above the last sample would
        // otherwise lend its late send time to an earlier datagram the receiver echoes.
        if first.offset() >= self.first_pass_end {
            self.first_pass_end = first.offset() + len as u64;
            self.note_send(now, first.offset());
            self.mark_first_pass(now);
        }
        Some((first.offset(), len))
    }

    /// Whether every wanted byte has been sent once (resends may follow).
    pub fn first_pass_done(&self) -> bool {
        self.first_pass_end >= self.wanted_end
    }

    fn mark_first_pass(&mut self, now: Instant) {
        match self.first_pass_marks.back_mut() {
            Some((at, end)) if now.saturating_duration_since(*at) < FIRST_PASS_MARK_SPACING => {
                *end = self.first_pass_end;
                return;
            }
            _ => {}
        }
        if self.first_pass_marks.len() == FIRST_PASS_MARKS {
            self.first_pass_marks.pop_front();
        }
        self.first_pass_marks.push_back((now, self.first_pass_end));
    }

    /// The end of what the first pass had sent `resend_after` ago: a report may name a
    /// hole below it; above it, datagrams may still be on their way (a receiver that
    /// heard nothing for a while names the whole tail).
    fn first_pass_due(&mut self, now: Instant) -> u64 {
        let window = self.config.resend_after;
        let old_enough = |at: &Instant| now.saturating_duration_since(*at) >= window;
        while self
            .first_pass_marks
            .get(1)
            .is_some_and(|(at, _)| old_enough(at))
        {
            self.first_pass_marks.pop_front();
        }
        match self.first_pass_marks.front() {
            Some((at, end)) if old_enough(at) => *end,
            _ => 0,
        }
    }

    /// When the pacer lets the next datagram go (`None`: nothing left to send).
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let first = self.pending.front()?;
        let len = first.length().min(self.config.chunk as u64) as usize;
        // Wake for a batch of datagrams, not for each: at high rates a wake-up per
        // datagram costs more than sending it.
        let batch =
            (self.config.rate as f64 * PACER_WAKE.as_secs_f64()).min(self.config.burst as f64);
        let missing = (self.datagram_len(len) as f64).max(batch) - self.tokens;
        if missing <= 0.0 {
            return Some(now);
        }
        let wait = Duration::from_secs_f64(missing / self.config.rate.max(1) as f64);
        Some(self.counted_at.unwrap_or(now) + wait)
    }

    /// Writes the datagram of `data` at `offset`: header, data, tag.
    pub fn encode(&self, offset: u64, data: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.resize(
            self.datagram(offset, data).encoded_len() + crate::TAG_LEN,
            0,
        );
        self.encode_into(offset, data, out)
            .expect("sized for the datagram and its tag");
    }

    /// Writes the datagram of `data` at `offset` at the start of `out` (where it is sent
    /// from, so the bytes are copied once); its length. `None` if `out` is too short.
    pub fn encode_into(&self, offset: u64, data: &[u8], out: &mut [u8]) -> Option<usize> {
        let datagram = self.datagram(offset, data);
        let len = datagram.encoded_len();
        if out.len() < len + crate::TAG_LEN {
            return None;
        }
        datagram.encode(&mut &mut out[..len]);
        Some(self.key.seal_in_place(out, len))
    }

    /// Bytes of each datagram's header.
    pub fn header_len(&self) -> usize {
        self.config.form.header_len()
    }

    /// Writes the header of the datagram at `offset` at the start of `out` (for a send
    /// that gathers its data from elsewhere); its length. `None` if `out` is too short.
    pub fn encode_header_into(&self, offset: u64, out: &mut [u8]) -> Option<usize> {
        let len = self.header_len();
        let out = out.get_mut(..len)?;
        self.datagram(offset, &[]).encode_header(&mut &mut out[..]);
        Some(len)
    }

    fn datagram<'a>(&self, offset: u64, data: &'a [u8]) -> Datagram<'a> {
        match self.config.form {
            DatagramForm::Basic => Datagram::Basic {
                // The basic form is chosen only for payloads whose offsets fit 32 bits.
                offset: offset as u32,
                data,
            },
            DatagramForm::Extended => Datagram::Extended {
                session_id: self.config.session_id,
                offset,
                data,
            },
        }
    }

    /// A hole report from the receiver: its holes (within what was asked, and not
    /// re-sent within `resend_after`) go again; a `stop` ends the sending.
    pub fn on_report(&mut self, now: Instant, report: &HoleReport) {
        if report.session_id != self.config.session_id {
            return;
        }
        if report.stop {
            self.stopped = true;
            return;
        }
        let wanted = if self.config.wanted.is_empty() {
            IntervalSet::whole(self.config.total_size)
        } else {
            self.config.wanted.clone()
        };
        let window = self.config.resend_after;
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= window)
        {
            self.recent.pop_front();
        }
        let mut recently = IntervalSet::new();
        for (_, set) in &self.recent {
            for i in set.as_slice() {
                recently.insert(*i);
            }
        }
        let due = self.first_pass_due(now);
        // Merged through an interval set: once per report, not per datagram.
        let mut pending =
            IntervalSet::from_canonical(self.pending.drain(..).collect()).unwrap_or_default();
        let mut queued = IntervalSet::new();
        for hole in report.holes.as_slice() {
            // Only what was asked for: a report cannot make the server send elsewhere.
            if !wanted.contains(hole.offset(), hole.length()) {
                continue;
            }
            // Only what went long enough ago to be missed.
            let Some(hole) = Interval::new(
                hole.offset(),
                hole.end().min(due).saturating_sub(hole.offset()),
            ) else {
                continue;
            };
            let one = IntervalSet::from_canonical(vec![hole]).unwrap_or_default();
            for fresh in recently.missing_within(&one).as_slice() {
                pending.insert(*fresh);
                queued.insert(*fresh);
            }
        }
        if !queued.is_empty() {
            self.recent.push_back((now, queued));
        }
        self.pending = pending.as_slice().iter().copied().collect();
    }

    /// Keeps the send time of a first-pass datagram (one beyond every offset sampled),
    /// at most one per [`ECHO_SAMPLE_SPACING`].
    fn note_send(&mut self, now: Instant, offset: u64) {
        if let Some(last) = self.echoes.back()
            && (offset <= last.offset
                || now.saturating_duration_since(last.at) < ECHO_SAMPLE_SPACING)
        {
            return;
        }
        if self.echoes.len() == ECHO_SAMPLES {
            self.echoes.pop_front();
        }
        self.echoes.push_back(EchoSample {
            offset,
            at: now,
            datagrams: self.datagrams,
            bytes: self.sent_bytes,
        });
    }

    /// A feedback report from the receiver's data socket: its holes go again (as
    /// [`on_report`](Self::on_report)), and, when it is newer than the last one, what it
    /// says of the path: the delivery rate, a round trip through its echo, the loss since
    /// the previous report. Older (reordered) reports only add holes.
    pub fn on_feedback(&mut self, now: Instant, feedback: &Feedback) -> Option<RateSample> {
        if feedback.session_id != self.config.session_id {
            return None;
        }
        self.on_report(
            now,
            &HoleReport {
                session_id: feedback.session_id,
                stop: feedback.complete,
                holes: feedback.holes.clone(),
            },
        );
        if self
            .last_feedback
            .is_some_and(|last| feedback.sequence <= last.sequence)
        {
            return None;
        }
        // The newest first-pass datagram at or below the echoed offset.
        let index = self
            .echoes
            .partition_point(|e| e.offset <= feedback.echo_offset);
        let echo = index
            .checked_sub(1)
            .and_then(|i| self.echoes.get(i))
            .copied();
        let hold = Duration::from_micros(feedback.echo_hold_us.into());
        let rtt = echo.and_then(|e| now.checked_duration_since(e.at)?.checked_sub(hold));
        // Samples are spaced in time, so a burst's datagrams share one: the echoed
        // datagram's count is known within the burst.
        let (sent_low, sent_high) = match echo {
            Some(e) => (
                e.datagrams,
                self.echoes
                    .get(index)
                    .map_or(self.datagrams, |next| next.datagrams - 1),
            ),
            None => (self.datagrams, self.datagrams),
        };
        self.last_feedback = Some(LastFeedback {
            sequence: feedback.sequence,
        });
        if let Some(rtt) = rtt {
            self.srtt = Some(self.srtt.map_or(rtt, |s| (s * 7 + rtt) / 8));
        }
        // Delivery over the last half round trip (at least 20 ms, at most 64 reports
        // kept): long enough to smooth bursts, short enough that a probing round's rate
        // is not averaged away with the draining one after it.
        let window =
            (self.srtt.unwrap_or(Duration::from_millis(100)) / 2).max(Duration::from_millis(20));
        self.delivered.push_back(Delivered {
            at: now,
            bytes: feedback.received_bytes,
            datagrams: feedback.received_datagrams,
            sent_low,
            sent_high,
            echo_sent: echo.map(|e| (e.at, e.bytes)),
        });
        while self.delivered.len() > 64
            || self.delivered.len() > 2
                && self
                    .delivered
                    .get(1)
                    .is_some_and(|d| now.saturating_duration_since(d.at) >= window)
        {
            self.delivered.pop_front();
        }
        // The receiver counts data bytes; the pacer counts whole datagrams.
        let chunk = self.config.chunk.max(1) as f64;
        let overhead = self.datagram_len(self.config.chunk) as f64 / chunk;
        let (first, last) = (self.delivered.front(), self.delivered.back());
        let (delivery_rate, loss, lost) = match (first, last) {
            // Over less than half the window a rate is noise (a burst, a GRO run): none.
            (Some(a), Some(b)) if b.at.saturating_duration_since(a.at) < window / 2 => {
                (0.0, 0.0, 0)
            }
            (Some(a), Some(b)) => {
                let received = b.bytes.saturating_sub(a.bytes) as f64 / (b.at - a.at).as_secs_f64();
                // Nothing arrives faster than it was sent: a receiver that catches up
                // after a stall reports a burst the path never carried.
                let rate = match (a.echo_sent, b.echo_sent) {
                    (Some((sent_a, bytes_a)), Some((sent_b, bytes_b))) if sent_b > sent_a => {
                        let sent_rate = bytes_b.saturating_sub(bytes_a) as f64
                            / (sent_b - sent_a).as_secs_f64()
                            / overhead;
                        received.min(sent_rate)
                    }
                    _ => received,
                };
                // Only what surely went and did not arrive counts as lost: the counts'
                // uncertainty would otherwise read as a steady loss of a datagram or two.
                let surely_sent = b.sent_low.saturating_sub(a.sent_high);
                let got = b.datagrams.saturating_sub(a.datagrams);
                let sent = (b.sent_low + b.sent_high).saturating_sub(a.sent_low + a.sent_high) / 2;
                let lost = surely_sent.saturating_sub(got);
                let loss = if sent > 0 {
                    (lost as f64 / sent as f64).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                (rate, loss, lost)
            }
            _ => (feedback.delivery_rate as f64, 0.0, 0),
        };
        Some(RateSample {
            now,
            delivery_rate: (delivery_rate * overhead) as u64,
            rtt,
            loss,
            lost,
        })
    }

    /// Whether the receiver said it is complete (or paused).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Whether nothing waits to be sent.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes sent (datagrams whole) and datagrams.
    pub fn sent(&self) -> (u64, u64) {
        (self.sent_bytes, self.datagrams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(total: u64, chunk: usize) -> Sender {
        Sender::new(
            SenderConfig {
                session_id: 9,
                total_size: total,
                wanted: IntervalSet::whole(total),
                form: DatagramForm::Basic,
                chunk,
                rate: 1 << 30,
                burst: 1 << 20,
                resend_after: Duration::from_millis(10),
            },
            DatagramKey::new([7; 32]),
        )
    }

    fn feedback(sequence: u32, echo_offset: u64, holes: IntervalSet) -> Feedback {
        Feedback {
            session_id: 9,
            sequence,
            complete: false,
            final_pass: false,
            received_bytes: 0,
            received_datagrams: 0,
            delivery_rate: 0,
            echo_offset,
            echo_hold_us: 0,
            holes,
        }
    }

    #[test]
    fn a_resent_hole_does_not_time_the_echo_of_an_earlier_datagram() {
        let start = Instant::now();
        let mut sender = sender(4000, 1000);
        // Four datagrams in one burst: only the first is sampled (sample spacing).
        for _ in 0..4 {
            sender.next_datagram(start).unwrap();
        }
        // 50 ms later the receiver reports the third as a hole; it goes again.
        let later = start + Duration::from_millis(50);
        let hole = IntervalSet::from_canonical(vec![Interval::new(2000, 1000).unwrap()]).unwrap();
        sender.on_feedback(later, &feedback(1, 1000, hole));
        assert_eq!(sender.next_datagram(later), Some((2000, 1000)));
        // The fourth's echo (it arrived long ago) is timed from the burst, not the resend.
        let sample = sender
            .on_feedback(
                later + Duration::from_millis(5),
                &feedback(2, 3000, IntervalSet::new()),
            )
            .unwrap();
        assert!(
            sample.rtt.unwrap() >= Duration::from_millis(55),
            "round trip {:?}",
            sample.rtt
        );
    }

    /// A receiver that heard nothing for a while names the whole tail missing, datagrams
    /// still on their way included: only what went `resend_after` ago goes again.
    #[test]
    fn a_tail_report_resends_only_what_went_long_enough_ago() {
        let start = Instant::now();
        let mut sender = sender(10_000, 1000);
        for _ in 0..4 {
            sender.next_datagram(start).unwrap();
        }
        let later = start + Duration::from_millis(20);
        for _ in 0..4 {
            sender.next_datagram(later).unwrap();
        }
        // At 25 ms: everything from 1000 on is reported missing. The first four went
        // 25 ms ago (past the 10 ms), the next four 5 ms ago.
        let tail = IntervalSet::from_canonical(vec![Interval::new(1000, 9000).unwrap()]).unwrap();
        let report_at = start + Duration::from_millis(25);
        sender.on_feedback(report_at, &feedback(1, 0, tail.clone()));
        let mut sent = Vec::new();
        while let Some((offset, _)) = sender.next_datagram(report_at) {
            sent.push(offset);
        }
        // 1000-3999 again, then the first pass goes on from 8000.
        assert_eq!(sent, vec![1000, 2000, 3000, 8000, 9000]);
        // Reported again at 30 ms, the second four are due (the first were just resent,
        // the last two just sent).
        let much_later = start + Duration::from_millis(30);
        sender.on_feedback(much_later, &feedback(2, 0, tail));
        let mut sent = Vec::new();
        while let Some((offset, _)) = sender.next_datagram(much_later) {
            sent.push(offset);
        }
        assert_eq!(sent, vec![4000, 5000, 6000, 7000]);
    }

    #[test]
    fn encoding_in_place_gives_the_bytes_of_the_appending_encoder() {
        for form in [DatagramForm::Basic, DatagramForm::Extended] {
            let sender = Sender::new(
                SenderConfig {
                    session_id: 9,
                    total_size: 10_000,
                    wanted: IntervalSet::whole(10_000),
                    form,
                    chunk: 1000,
                    rate: 1 << 20,
                    burst: 1 << 16,
                    resend_after: Duration::from_millis(100),
                },
                DatagramKey::new([7; 32]),
            );
            let data: Vec<u8> = (0..1000).map(|i| i as u8).collect();
            let mut appended = Vec::new();
            sender.encode(4000, &data, &mut appended);
            let mut room = vec![0xee; appended.len() + 5];
            let len = sender.encode_into(4000, &data, &mut room).unwrap();
            assert_eq!(&room[..len], &appended[..], "{form:?}");
            assert_eq!(room[len], 0xee, "nothing written past the datagram");
            assert_eq!(
                sender.encode_into(4000, &data, &mut room[..appended.len() - 1]),
                None,
                "too little room is refused"
            );
        }
    }
}
