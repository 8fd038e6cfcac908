//! The receiving side of a transfer: which bytes arrived, what each datagram is (new
//! data, a duplicate, or dropped: spoofed, another session's, out of the request), and
//! the hole reports that ask the sender for what is missing.

use std::time::{Duration, Instant};

use hawser_wire::dtp::{Datagram, DatagramForm, Feedback, HoleReport, Interval, IntervalSet};

use crate::tag::DatagramKey;

/// What the receiver made of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Data with bytes not received before: write `data` at `offset`.
    New {
        /// Payload offset of the first byte.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// Every byte of it had arrived already.
    Duplicate,
    /// Its tag does not match (spoofed, corrupted, or another session's key): dropped.
    Unauthentic,
    /// Authentic, but not of this session, not within what was asked, or malformed.
    Refused,
}

/// Counters of a receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Datagrams with new bytes.
    pub new: u64,
    /// Bytes received for the first time.
    pub new_bytes: u64,
    /// Datagrams whose bytes had all arrived.
    pub duplicates: u64,
    /// Datagrams dropped for their tag.
    pub unauthentic: u64,
    /// Authentic datagrams out of the session or the request.
    pub refused: u64,
}

/// How a transfer was set up (from the transfer response).
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The session.
    pub session_id: u32,
    /// The payload's size.
    pub total_size: u64,
    /// What was asked for (the whole payload, or the intervals a resume asks again);
    /// within `total_size` (the service checks a request against the payload).
    pub wanted: IntervalSet,
    /// The datagrams' form.
    pub form: DatagramForm,
    /// How often to report holes while datagrams come.
    pub report_interval: Duration,
}

/// One transfer's receiving side.
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    key: DatagramKey,
    received: IntervalSet,
    stats: ReceiverStats,
    next_report: Option<Instant>,
    /// Past the last byte received so far (the sender sends in order: beyond it, bytes
    /// may simply not have been sent yet).
    frontier: u64,
    /// The frontier at the last report: holes below it have had a report interval to be
    /// filled by late (reordered) datagrams, so they are reported.
    reportable: u64,
    /// New bytes came since the last report.
    fresh: bool,
    /// Feedback reports sent (the hello is 0).
    sequence: u32,
    /// The datagram that last moved the frontier, and when it arrived: echoed so that the
    /// sender can time the round trip.
    echo: Option<(u64, Instant)>,
    /// When the last feedback went, and the new bytes counted then.
    last_feedback: Option<(Instant, u64)>,
    /// Authentic datagrams, duplicates included.
    authentic: u64,
}

impl Receiver {
    /// A receiver of nothing yet.
    pub fn new(config: ReceiverConfig, key: DatagramKey) -> Self {
        Self::resume(config, key, IntervalSet::new())
    }

    /// A receiver that has `received` already (a resumed transfer).
    pub fn resume(config: ReceiverConfig, key: DatagramKey, received: IntervalSet) -> Self {
        Receiver {
            config,
            key,
            received,
            stats: ReceiverStats::default(),
            next_report: None,
            frontier: 0,
            reportable: 0,
            fresh: false,
            sequence: 0,
            echo: None,
            last_feedback: None,
            authentic: 0,
        }
    }

    /// The setup.
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// Takes one datagram (its UDP payload, tag included).
    pub fn on_datagram<'a>(&mut self, now: Instant, packet: &'a [u8]) -> Verdict<'a> {
        let Some(body) = self.key.open(packet) else {
            self.stats.unauthentic += 1;
            return Verdict::Unauthentic;
        };
        let Ok(datagram) = Datagram::decode(body, self.config.form) else {
            self.stats.refused += 1;
            return Verdict::Refused;
        };
        if let Datagram::Extended { session_id, .. } = datagram
            && session_id != self.config.session_id
        {
            self.stats.refused += 1;
            return Verdict::Refused;
        }
        self.authentic += 1;
        let (offset, data) = (datagram.offset(), datagram.data());
        let Some(interval) = Interval::new(offset, data.len() as u64) else {
            self.stats.refused += 1;
            return Verdict::Refused;
        };
        if interval.end() > self.config.total_size
            || !self.config.wanted.is_empty()
                && !self.config.wanted.contains(offset, data.len() as u64)
        {
            self.stats.refused += 1;
            return Verdict::Refused;
        }
        if self.received.contains(offset, data.len() as u64) {
            self.stats.duplicates += 1;
            return Verdict::Duplicate;
        }
        self.last_feedback
            .get_or_insert((now, self.stats.new_bytes));
        let before = self.received.covered();
        self.received.insert(interval);
        self.stats.new += 1;
        self.stats.new_bytes += self.received.covered() - before;
        if interval.end() > self.frontier {
            self.frontier = interval.end();
            self.echo = Some((offset, now));
        }
        self.fresh = true;
        self.next_report
            .get_or_insert(now + self.config.report_interval);
        Verdict::New { offset, data }
    }

    /// What arrived: data there is usable now, whatever holes remain (immediate access).
    pub fn received(&self) -> &IntervalSet {
        &self.received
    }

    /// Whether `[offset, offset + length)` has arrived whole.
    pub fn has(&self, offset: u64, length: u64) -> bool {
        self.received.contains(offset, length)
    }

    fn wanted(&self) -> IntervalSet {
        if self.config.wanted.is_empty() {
            IntervalSet::whole(self.config.total_size)
        } else {
            self.config.wanted.clone()
        }
    }

    /// What is still missing.
    pub fn holes(&self) -> IntervalSet {
        self.received.missing_within(&self.wanted())
    }

    /// Whether everything asked for arrived.
    pub fn is_complete(&self) -> bool {
        self.holes().is_empty()
    }

    /// A hole report, when one is due: every `report_interval` while datagrams come, and
    /// at once when the transfer is complete (`stop`, no holes).
    ///
    /// While new bytes come, a report names the holes below the frontier of the previous
    /// report (what should have arrived by now, reordering allowed for); once nothing new
    /// came for an interval, every hole, the tail included (the sender's first pass is
    /// over, or its last datagrams were lost).
    pub fn poll_report(&mut self, now: Instant) -> Option<HoleReport> {
        self.take_report(now).map(|(report, _)| report)
    }

    /// The report due, and whether it names every hole (the final pass).
    fn take_report(&mut self, now: Instant) -> Option<(HoleReport, bool)> {
        let complete = self.is_complete();
        let due = self.next_report.is_some_and(|t| now >= t);
        if !complete && !due {
            return None;
        }
        self.next_report = (!complete).then(|| now + self.config.report_interval);
        let final_pass = complete || !self.fresh;
        let holes = if final_pass {
            self.holes()
        } else {
            let wanted_here = intersect(&self.wanted(), &IntervalSet::whole(self.reportable));
            self.received.missing_within(&wanted_here)
        };
        self.reportable = self.frontier;
        self.fresh = false;
        Some((
            HoleReport {
                session_id: self.config.session_id,
                stop: complete,
                holes,
            },
            final_pass,
        ))
    }

    /// The feedback report due (as [`poll_report`](Self::poll_report)) with what the
    /// sender's rate control needs: the delivery rate since the previous report, the
    /// echo of the newest datagram, the datagrams counted. At most `max_holes` holes, the
    /// lowest: the rest go in later reports.
    pub fn poll_feedback(&mut self, now: Instant, max_holes: usize) -> Option<Feedback> {
        let (report, final_pass) = self.take_report(now)?;
        let new_bytes = self.stats.new_bytes;
        let delivery_rate = match self.last_feedback {
            Some((at, counted)) => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                if elapsed > 0.0 {
                    ((new_bytes - counted) as f64 / elapsed) as u64
                } else {
                    0
                }
            }
            None => 0,
        };
        self.last_feedback = Some((now, new_bytes));
        self.sequence += 1;
        let holes = if report.holes.len() > max_holes {
            IntervalSet::from_canonical(report.holes.as_slice()[..max_holes].to_vec())
                .unwrap_or_default()
        } else {
            report.holes
        };
        let (echo_offset, hold) = self.echo.map_or((0, Duration::ZERO), |(offset, at)| {
            (offset, now.saturating_duration_since(at))
        });
        Some(Feedback {
            session_id: self.config.session_id,
            sequence: self.sequence,
            complete: report.stop,
            final_pass,
            received_bytes: new_bytes,
            received_datagrams: self.authentic,
            delivery_rate,
            echo_offset,
            echo_hold_us: u32::try_from(hold.as_micros()).unwrap_or(u32::MAX),
            holes,
        })
    }

    /// The hello: feedback number 0, which tells the sender where the receiver is.
    pub fn hello(&self) -> Feedback {
        Feedback {
            session_id: self.config.session_id,
            sequence: 0,
            complete: false,
            final_pass: false,
            received_bytes: self.stats.new_bytes,
            received_datagrams: self.authentic,
            delivery_rate: 0,
            echo_offset: 0,
            echo_hold_us: 0,
            holes: IntervalSet::new(),
        }
    }

    /// When [`poll_report`](Self::poll_report) next has something.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_report
    }

    /// Its counters.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// What to journal: with it, [`from_state`](Self::from_state) resumes the transfer.
    pub fn state(&self) -> crate::TransferState {
        crate::TransferState {
            session_id: self.config.session_id,
            total_size: self.config.total_size,
            form: self.config.form,
            wanted: self.config.wanted.clone(),
            received: self.received.clone(),
            digests: crate::BlockDigests::new(self.config.total_size),
        }
    }

    /// A receiver resumed from a journaled state; the next session asks for its holes
    /// ([`holes`](Self::holes)).
    pub fn from_state(
        state: crate::TransferState,
        report_interval: Duration,
        key: DatagramKey,
    ) -> Self {
        let config = ReceiverConfig {
            session_id: state.session_id,
            total_size: state.total_size,
            wanted: state.wanted,
            form: state.form,
            report_interval,
        };
        Self::resume(config, key, state.received)
    }
}

/// The bytes in both sets.
fn intersect(a: &IntervalSet, b: &IntervalSet) -> IntervalSet {
    // a ∩ b = a − (a − b)
    let a_minus_b = b.missing_within(a);
    a_minus_b.missing_within(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(key: &DatagramKey, session: u32, offset: u64, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Datagram::Extended {
            session_id: session,
            offset,
            data,
        }
        .encode(&mut out);
        key.seal(&mut out);
        out
    }

    #[test]
    fn verdicts_for_new_duplicate_foreign_and_out_of_range_datagrams() {
        let key = DatagramKey::new([1; 32]);
        let config = ReceiverConfig {
            session_id: 9,
            total_size: 100,
            wanted: IntervalSet::new(),
            form: DatagramForm::Extended,
            report_interval: Duration::from_millis(20),
        };
        let now = Instant::now();
        let mut r = Receiver::new(config, key.clone());
        let p = packet(&key, 9, 10, b"abc");
        assert_eq!(
            r.on_datagram(now, &p),
            Verdict::New {
                offset: 10,
                data: b"abc"
            }
        );
        assert_eq!(r.on_datagram(now, &p), Verdict::Duplicate);
        assert_eq!(
            r.on_datagram(now, &packet(&key, 8, 20, b"x")),
            Verdict::Refused
        );
        assert_eq!(
            r.on_datagram(now, &packet(&key, 9, 99, b"xy")),
            Verdict::Refused
        );
        let other = DatagramKey::new([2; 32]);
        assert_eq!(
            r.on_datagram(now, &packet(&other, 9, 0, b"x")),
            Verdict::Unauthentic
        );
        assert!(r.has(10, 3) && !r.has(9, 2));
        let s = r.stats();
        assert_eq!(
            (s.new, s.duplicates, s.refused, s.unauthentic),
            (1, 1, 2, 1)
        );
    }

    #[test]
    fn reports_name_holes_behind_the_previous_frontier_then_all_when_quiet() {
        let key = DatagramKey::new([1; 32]);
        let config = ReceiverConfig {
            session_id: 9,
            total_size: 100,
            wanted: IntervalSet::new(),
            form: DatagramForm::Extended,
            report_interval: Duration::from_millis(20),
        };
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut r = Receiver::new(config, key.clone());
        r.on_datagram(t0, &packet(&key, 9, 0, &[0; 10]));
        r.on_datagram(t0, &packet(&key, 9, 20, &[0; 10]));
        // First report: nothing is overdue yet (reordering may fill 10..20).
        let first = r.poll_report(t0 + 20 * ms).unwrap();
        assert!(first.holes.is_empty() && !first.stop);
        r.on_datagram(t0 + 25 * ms, &packet(&key, 9, 40, &[0; 10]));
        // Second: 10..20 is behind the first report's frontier (30): overdue.
        let second = r.poll_report(t0 + 40 * ms).unwrap();
        assert_eq!(
            second.holes,
            IntervalSet::from_canonical(vec![Interval::new(10, 10).unwrap()]).unwrap()
        );
        // Quiet since: every hole, the tail too.
        let third = r.poll_report(t0 + 60 * ms).unwrap();
        assert_eq!(third.holes.covered(), 100 - 30);
    }
}
