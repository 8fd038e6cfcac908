//! The network-facing side of DTP's sans-IO receiver (`hawser_dtp::Receiver`): one
//! transfer set up from the input, then datagrams (sealed with the session's key, forged,
//! or raw bytes), virtual time and hole reports, and journaled transfer states (the
//! receiver's own, round-tripped and resumed from, and states decoded from the input's
//! bytes), in the order the input gives.
//!
//! A shadow model follows the receiver: what arrived as one bit per payload byte (set only
//! by `Verdict::New`; kept as runs too, compared with the receiver after every operation,
//! and with the bitmap at the end of the input), the verdict every datagram must get
//! (decoded from its bytes by the target, independently of
//! `hawser_wire::dtp::Datagram::decode`), the counters, and when a report is due and what
//! it names. After every operation:
//! - nothing panicked;
//! - `received()` is canonical, within the payload and within what was asked (`wanted`,
//!   or the whole payload when `wanted` is empty), and equals the model: exactly the bytes
//!   of the datagrams that got `Verdict::New`;
//! - `holes()` is canonical, within what was asked and disjoint from the model, and
//!   `received().covered() + holes().covered()` is the number of bytes asked for (so
//!   `holes()` is exactly what was asked minus what arrived);
//! - `is_complete()` agrees with the model, `stats()` counts the verdicts (and the new
//!   bytes) since the receiver was made, `poll_timeout()` is when the model says the
//!   next report is due, and `config()` is the setup;
//! - once complete, `poll_report` gives at once a `stop` report without holes.
//!
//! Each datagram's verdict is the model's: `Unauthentic` for a wrong tag (a wrong key, a
//! flipped byte, bytes cut off or added after sealing, raw bytes), `Refused` for an
//! authentic datagram that is malformed, of another session (extended form), empty, past
//! the payload or not within one interval asked for, `Duplicate` when the model has all
//! its bytes, else `New { offset, data }`, where `data` must be the packet's own data
//! bytes (a slice of the packet between header and tag) at the datagram's offset, within
//! the payload and what was asked.
//!
//! A report comes exactly when one is due (complete, or `report_interval` after the
//! first new bytes since the last report, then every `report_interval`); it names the
//! session, `stop` when complete, and holes ⊆ `holes()`: all of them once complete or
//! when nothing new came since the previous report, else those below the frontier (end
//! of the furthest new datagram) as it was at the previous report.
//!
//! Transfer states: the receiver's `state()` encodes, decodes to itself and re-encodes
//! to the same bytes, and `Receiver::from_state` of it has the same state, received bytes,
//! holes and setup (the target continues with it); a state decoded from the input's bytes
//! (raw, framed by the target with magic and checksum, or the receiver's encoding with a
//! byte changed and the checksum fixed) must not panic, and when it loads it must encode
//! to the very bytes it came from. The receiver's encoding with a byte changed and the
//! checksum left alone must not load.
//!
//! `HAWSER_DTP_FUZZ_TRACE=1` prints the setup and each operation with its verdicts.
//!
//! # Input
//!
//! Integers are big-endian; missing bytes read as zero.
//!
//! - Byte 0, the setup: bits 0–1 the payload's size (0: one more byte, 1..=256; 1: a u16,
//!   plus one; 2: a u24 modulo 4 MiB, plus one; 3: 4 MiB minus one more byte); bit 2 the
//!   form (basic, extended); bits 3–4 what is asked for (0: `wanted` empty, the whole
//!   payload; 1: `IntervalSet::whole`; 2–3: intervals, bits 5–6 their count − 1).
//! - The session id (u32), the key (one byte, spread over 32), the report interval (one
//!   byte, milliseconds), then per interval asked for an offset (u24 modulo the size) and
//!   a length (u24 modulo what is left, plus one).
//! - Then operations, one selector byte each: bits 0–3 the operation ([`OPS`]), bits 4–7
//!   its flags; operands follow. At most [`MAX_OPS`] operations, and [`BYTE_BUDGET`] bytes
//!   of datagrams, per input.
//!
//! A datagram's place (see [`Harness::place`]) is a mode byte (bits 0–2 where its offset
//! is, bits 3–4 how its length is chosen, bits 5–7 a nudge of −3..=4 bytes), an index
//! byte (which hole or which interval asked for) and the operands of the length and the
//! offset; holes and intervals asked for let short inputs hit edges and fill holes.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hawser_dtp::{DatagramKey, Receiver, ReceiverStats, TAG_LEN, TransferState, Verdict};
use hawser_wire::dtp::{Datagram, DatagramForm, HoleReport, Interval, IntervalSet};
use libfuzzer_sys::fuzz_target;

#[path = "receiver/input.rs"]
mod input;
#[path = "receiver/model.rs"]
mod model;

use input::*;
use model::*;

/// The largest payload.
const MAX_TOTAL: u64 = 4 << 20;
/// The most operations of one input.
const MAX_OPS: usize = 1024;
/// The most datagram bytes one input may send (keeps every input fast).
const BYTE_BUDGET: usize = 16 << 20;
/// The largest datagram data (a UDP payload is smaller still).
const MAX_DATA: u64 = 65_535;
/// The chunk of a `Burst` whose u16 is zero (the simulator's).
const DEFAULT_CHUNK: u64 = 1400;
/// The payload a basic datagram can address (`DatagramForm::BASIC_MAX_PAYLOAD`).
const BASIC_RANGE: u64 = 1 << 32;
/// A transfer state's first bytes (`engine/dtp/src/state.rs`).
const STATE_MAGIC: &[u8; 8] = b"HDTPST01";

/// Whether to print the setup and each operation (`HAWSER_DTP_FUZZ_TRACE=1`).
fn trace() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("HAWSER_DTP_FUZZ_TRACE").is_some_and(|v| v != "0"))
}

/// The verdict a datagram must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// New bytes: the data is the packet's `[header, header + len)`.
    New {
        offset: u64,
        header: usize,
        len: u64,
    },
    Duplicate,
    Refused,
    Unauthentic,
}

struct Harness {
    setup: Setup,
    key_bytes: [u8; 32],
    key: DatagramKey,
    receiver: Receiver,
    /// Virtual time, from `start`.
    start: Instant,
    now: Instant,
    bits: Bits,
    /// The receiver's counters as they must be (since it was made).
    stats: ReceiverStats,
    /// When the next report is due (besides at completion).
    next_due: Option<Instant>,
    /// Past the furthest new datagram since the receiver was made.
    frontier: u64,
    /// The frontier at the previous report.
    reportable: u64,
    /// New bytes came since the previous report.
    fresh: bool,
    /// Datagram bytes left to send.
    budget: usize,
    /// Reports polled, and those with holes (for traces).
    reports: (u64, u64),
}

impl Harness {
    fn new(input: &mut Input<'_>) -> Self {
        let setup_byte = input.byte();
        let total = match setup_byte & 3 {
            0 => u64::from(input.byte()) + 1,
            1 => input.uint(2) + 1,
            2 => input.uint(3) % MAX_TOTAL + 1,
            _ => MAX_TOTAL - u64::from(input.byte()),
        };
        let form = if setup_byte & 4 == 0 {
            DatagramForm::Basic
        } else {
            DatagramForm::Extended
        };
        let session_id = input.uint(4) as u32;
        let key_seed = input.byte();
        let key_bytes: [u8; 32] = std::array::from_fn(|i| key_seed ^ (i as u8).wrapping_mul(37));
        let report_interval = Duration::from_millis(input.byte().into());
        let (wanted, asked) = match (setup_byte >> 3) & 3 {
            0 => (IntervalSet::new(), vec![(0, total)]),
            1 => (IntervalSet::whole(total), vec![(0, total)]),
            _ => {
                let count = usize::from((setup_byte >> 5) & 3) + 1;
                let mut set = IntervalSet::new();
                let mut pairs = Vec::new();
                for _ in 0..count {
                    let offset = input.uint(3) % total;
                    let length = input.uint(3) % (total - offset) + 1;
                    set.insert(Interval::new(offset, length).expect("within the payload"));
                    pairs.push((offset, offset + length));
                }
                let asked = merged(pairs);
                assert_eq!(
                    asked_of(&set, total),
                    asked,
                    "IntervalSet::insert merges differently from the model"
                );
                (set, asked)
            }
        };
        let setup = Setup {
            session_id,
            total,
            form,
            wanted,
            asked,
            report_interval,
        };
        if trace() {
            eprintln!(
                "setup: total {total}, {form:?}, session {session_id:#x}, key {key_seed}, \
                 report every {report_interval:?}, asked {:?}{}",
                setup.asked,
                if setup.wanted.is_empty() {
                    " (wanted empty)"
                } else {
                    ""
                }
            );
        }
        let key = DatagramKey::new(key_bytes);
        let start = Instant::now();
        Harness {
            receiver: Receiver::new(setup.config(), key.clone()),
            bits: Bits::new(total),
            setup,
            key_bytes,
            key,
            start,
            now: start,
            stats: ReceiverStats::default(),
            next_due: None,
            frontier: 0,
            reportable: 0,
            fresh: false,
            budget: BYTE_BUDGET,
            reports: (0, 0),
        }
    }

    fn complete(&self) -> bool {
        self.bits.count == self.setup.asked_bytes()
    }

    /// A datagram's offset and length from the input (see the module's documentation).
    fn place(&self, input: &mut Input<'_>) -> (u64, u64) {
        let mode = input.byte();
        let index = usize::from(input.byte());
        let nudge = i64::from(mode >> 5) - 3;
        let total = self.setup.total;
        let holes = self.receiver.holes();
        let hole = holes.as_slice().get(index % holes.len().max(1));
        let asked = self.setup.asked.get(index % self.setup.asked.len().max(1));
        let len = match (mode >> 3) & 3 {
            0 => u64::from(input.byte()),
            1 => input.uint(2),
            2 => hole.map_or(total, Interval::length).min(MAX_DATA),
            _ => u64::from(input.byte() % 16),
        };
        let offset = match mode & 7 {
            0 => input.uint(3) % (total + 64),
            1 => hole.map_or(0, Interval::offset),
            2 => hole.map_or(total, Interval::end).wrapping_sub(len),
            3 => asked.map_or(0, |a| a.0),
            4 => asked.map_or(total, |a| a.1).wrapping_sub(len),
            5 => total.wrapping_sub(len),
            6 => return (input.uint(8), len),
            _ => match self.setup.form {
                DatagramForm::Basic => BASIC_RANGE.wrapping_sub(len),
                DatagramForm::Extended => 0u64.wrapping_sub(len),
            },
        };
        (offset.wrapping_add_signed(nudge), len)
    }

    /// `len` bytes of data for `offset`: the input's (`literal`), then (where the input
    /// runs out, or without `literal`) a byte of `offset` repeated.
    fn data(input: &mut Input<'_>, literal: bool, offset: u64, len: u64, out: &mut Vec<u8>) {
        out.clear();
        if literal {
            out.extend_from_slice(input.bytes(len as usize));
        }
        out.resize(len as usize, byte_at(offset));
    }

    /// The datagram, unsealed, in `out` (a basic datagram's offset is cut to 32 bits).
    fn build(&self, session_id: u32, offset: u64, data: &[u8], out: &mut Vec<u8>) {
        out.clear();
        match self.setup.form {
            DatagramForm::Basic => Datagram::Basic {
                offset: offset as u32,
                data,
            },
            DatagramForm::Extended => Datagram::Extended {
                session_id,
                offset,
                data,
            },
        }
        .encode(out);
    }

    /// The verdict of an authentic datagram whose bytes (tag excluded) are `body`,
    /// decoded here from the layout in `docs/PROTOCOL.md`.
    fn expect(&self, body: &[u8]) -> Expect {
        let header = self.setup.form.header_len();
        let Some(data_len) = body.len().checked_sub(header) else {
            return Expect::Refused;
        };
        let data_len = data_len as u64;
        let word = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().expect("4"));
        let offset = match self.setup.form {
            DatagramForm::Basic => {
                let offset = u64::from(word(0));
                if offset + data_len > BASIC_RANGE {
                    return Expect::Refused;
                }
                offset
            }
            DatagramForm::Extended => {
                let offset = u64::from(word(4)) << 32 | u64::from(word(8));
                if offset.checked_add(data_len).is_none() || word(0) != self.setup.session_id {
                    return Expect::Refused;
                }
                offset
            }
        };
        let end = offset + data_len;
        if data_len == 0 || end > self.setup.total || !self.setup.within_asked(offset, end) {
            return Expect::Refused;
        }
        if self.bits.all_set(offset, end) {
            return Expect::Duplicate;
        }
        Expect::New {
            offset,
            header,
            len: data_len,
        }
    }

    /// Hands the receiver `packet` and checks its verdict against `expect`.
    fn deliver(&mut self, packet: &[u8], expect: Expect, what: &str) {
        self.budget = self.budget.saturating_sub(packet.len());
        let verdict = self.receiver.on_datagram(self.now, packet);
        if trace() {
            match verdict {
                Verdict::New { offset, data } => eprintln!(
                    "  {what} ({} bytes): New {{ offset: {offset}, {} bytes }}",
                    packet.len(),
                    data.len()
                ),
                _ => eprintln!("  {what} ({} bytes): {verdict:?}", packet.len()),
            }
        }
        match (expect, verdict) {
            (
                Expect::New {
                    offset,
                    header,
                    len,
                },
                Verdict::New { offset: got, data },
            ) => {
                assert_eq!(got, offset, "{what}: the offset of new data");
                let at = (data.as_ptr() as usize).wrapping_sub(packet.as_ptr() as usize);
                assert!(
                    at == header && data.len() as u64 == len,
                    "{what}: new data is not the packet's data: {} bytes at {at} of {}, \
                     expected {len} at {header}",
                    data.len(),
                    packet.len()
                );
                assert_eq!(header + data.len() + TAG_LEN, packet.len());
                let end = offset + len;
                assert!(
                    end <= self.setup.total && self.setup.within_asked(offset, end),
                    "{what}: new data [{offset}, {end}) outside what was asked"
                );
                let fresh = self.bits.set(offset, end);
                assert!(fresh > 0);
                self.stats.new += 1;
                self.stats.new_bytes += fresh;
                self.frontier = self.frontier.max(end);
                self.fresh = true;
                self.next_due
                    .get_or_insert(self.now + self.setup.report_interval);
                assert!(self.receiver.has(offset, len), "{what}: has() after New");
            }
            (Expect::Duplicate, Verdict::Duplicate) => self.stats.duplicates += 1,
            (Expect::Refused, Verdict::Refused) => self.stats.refused += 1,
            (Expect::Unauthentic, Verdict::Unauthentic) => self.stats.unauthentic += 1,
            (expect, Verdict::New { offset, data }) => panic!(
                "{what}: expected {expect:?}, got New {{ offset: {offset}, {} bytes }}",
                data.len()
            ),
            (expect, verdict) => panic!("{what}: expected {expect:?}, got {verdict:?}"),
        }
    }

    /// Polls a report and checks it against the model.
    fn poll(&mut self) -> Option<HoleReport> {
        let complete = self.complete();
        let due = complete || self.next_due.is_some_and(|t| self.now >= t);
        let report = self.receiver.poll_report(self.now);
        assert_eq!(
            report.is_some(),
            due,
            "a report comes exactly when due (complete {complete}, due at {:?}, now {:?})",
            self.next_due,
            self.now
        );
        let report = report?;
        self.reports.0 += 1;
        self.reports.1 += u64::from(!report.holes.is_empty());
        assert_eq!(report.session_id, self.setup.session_id);
        assert_eq!(report.stop, complete, "stop iff complete");
        assert_canonical(&report.holes, "a report's holes");
        let holes = self.receiver.holes();
        for h in report.holes.as_slice() {
            assert!(
                holes.contains(h.offset(), h.length()),
                "a report's hole {h:?} is not within holes() {holes:?}"
            );
        }
        let mut expected = self.bits.missing(&self.setup.asked);
        if !complete && self.fresh {
            let reportable = self.reportable;
            expected.retain(|h| h.0 < reportable);
            if let Some(last) = expected.last_mut() {
                last.1 = last.1.min(reportable);
            }
        }
        assert_eq!(
            pairs(&report.holes),
            expected,
            "a report names every hole (complete, or nothing new since the last report) or \
             those below the previous report's frontier {} (fresh {})",
            self.reportable,
            self.fresh
        );
        if complete {
            assert!(
                report.holes.is_empty(),
                "a complete transfer's report has holes"
            );
        }
        self.next_due = (!complete).then(|| self.now + self.setup.report_interval);
        self.reportable = self.frontier;
        self.fresh = false;
        if trace() {
            eprintln!(
                "  report: stop {}, {} holes, {} bytes",
                report.stop,
                report.holes.len(),
                report.holes.covered()
            );
        }
        Some(report)
    }

    /// Continues with `receiver`, made from `state` (the model's bits already match it).
    fn continue_with(&mut self, receiver: Receiver) {
        self.receiver = receiver;
        self.stats = ReceiverStats::default();
        self.next_due = None;
        self.frontier = 0;
        self.reportable = 0;
        self.fresh = false;
    }

    /// A decoded state: it must encode to `bytes`; with `adopt`, the target continues
    /// with it if its payload is at most 4 MiB and what it received is within what it
    /// asked for (`TransferState::decode` does not check that: a state whose received
    /// bytes lie outside `wanted` loads, and its receiver's holes and received bytes then
    /// add up to more than was asked for).
    fn decoded(&mut self, bytes: &[u8], adopt: bool) {
        let Ok(state) = TransferState::decode(bytes) else {
            return;
        };
        assert_eq!(
            state.encode(),
            bytes,
            "a decoded state encodes to other bytes"
        );
        assert_canonical(&state.wanted, "a decoded state's wanted");
        assert_canonical(&state.received, "a decoded state's received");
        for i in state
            .wanted
            .as_slice()
            .iter()
            .chain(state.received.as_slice())
        {
            assert!(
                i.end() <= state.total_size,
                "a decoded interval past the payload"
            );
        }
        let asked = asked_of(&state.wanted, state.total_size);
        let fits = state.total_size <= MAX_TOTAL
            && state
                .received
                .as_slice()
                .iter()
                .all(|i| asked.iter().any(|&(s, e)| s <= i.offset() && i.end() <= e));
        if trace() {
            eprintln!(
                "  decoded: session {:#x}, total {}, {:?}, asked {} bytes in {}, received {} \
                 bytes in {}; fits {fits}",
                state.session_id,
                state.total_size,
                state.form,
                asked.iter().map(|(s, e)| e - s).sum::<u64>(),
                asked.len(),
                state.received.covered(),
                state.received.len()
            );
        }
        if !adopt || !fits {
            return;
        }
        let mut bits = Bits::new(state.total_size);
        for i in state.received.as_slice() {
            bits.set(i.offset(), i.end());
        }
        bits.verify();
        self.bits = bits;
        self.setup = Setup {
            session_id: state.session_id,
            total: state.total_size,
            form: state.form,
            wanted: state.wanted.clone(),
            asked,
            report_interval: self.setup.report_interval,
        };
        let receiver = Receiver::from_state(state, self.setup.report_interval, self.key.clone());
        self.continue_with(receiver);
    }

    /// The invariants that hold after every operation.
    fn check(&mut self, what: &str) {
        let total = self.setup.total;
        let received = self.receiver.received();
        assert_canonical(received, "received()");
        for i in received.as_slice() {
            assert!(
                i.end() <= total && self.setup.within_asked(i.offset(), i.end()),
                "{what}: received {i:?} outside what was asked ({:?}, total {total})",
                self.setup.asked
            );
        }
        assert!(
            pairs(received) == self.bits.runs,
            "{what}: received() is not what the datagrams with new data brought: {:?} \
             instead of {:?}",
            pairs(received),
            self.bits.runs
        );
        assert_eq!(received.covered(), self.bits.count);
        let holes = self.receiver.holes();
        assert_canonical(&holes, "holes()");
        for h in holes.as_slice() {
            assert!(
                self.setup.within_asked(h.offset(), h.end()),
                "{what}: hole {h:?} outside what was asked"
            );
        }
        assert!(
            pairs(&holes) == self.bits.missing(&self.setup.asked),
            "{what}: holes() {holes:?} are not what was asked minus what arrived"
        );
        assert_eq!(
            received.covered() + holes.covered(),
            self.setup.asked_bytes(),
            "{what}: received and holes do not add up to what was asked"
        );
        let complete = self.complete();
        assert_eq!(
            self.receiver.is_complete(),
            complete,
            "{what}: is_complete()"
        );
        assert_eq!(self.receiver.stats(), self.stats, "{what}: stats()");
        assert_eq!(
            self.receiver.poll_timeout(),
            self.next_due,
            "{what}: poll_timeout()"
        );
        let config = self.receiver.config();
        assert!(
            config.session_id == self.setup.session_id
                && config.total_size == total
                && config.form == self.setup.form
                && config.wanted == self.setup.wanted
                && config.report_interval == self.setup.report_interval,
            "{what}: config() is not the setup"
        );
        if complete {
            let report = self.poll().expect("a complete transfer reports at once");
            assert!(report.stop && report.holes.is_empty());
        }
    }

    fn run(&mut self, input: &mut Input<'_>) {
        self.check("setup");
        let mut packet = Vec::new();
        let mut data = Vec::new();
        for step in 0..MAX_OPS {
            if input.is_empty() || self.budget == 0 {
                break;
            }
            let selector = input.byte();
            let op = OPS[usize::from(selector & 15)];
            let flags = selector >> 4;
            if trace() {
                eprintln!("op {step}: {op:?}, flags {flags:#06b}");
            }
            match op {
                Op::Sealed => {
                    let (offset, len) = self.place(input);
                    Self::data(input, flags & 1 != 0, offset, len, &mut data);
                    let session = if flags & 2 != 0 {
                        self.setup.session_id ^ (u32::from(input.byte()) + 1)
                    } else {
                        self.setup.session_id
                    };
                    self.build(session, offset, &data, &mut packet);
                    self.key.seal(&mut packet);
                    let what = format!("sealed [{offset}, +{len})");
                    let body = &packet[..packet.len() - TAG_LEN];
                    let expect = self.expect(body);
                    self.deliver(&packet, expect, &what);
                    if flags & 4 != 0 {
                        let expect = self.expect(&packet[..packet.len() - TAG_LEN]);
                        self.deliver(&packet, expect, &what);
                    }
                    if flags & 8 != 0 {
                        self.poll();
                    }
                }
                Op::Forged => {
                    let (offset, len) = self.place(input);
                    Self::data(input, flags & 1 != 0, offset, len, &mut data);
                    self.build(self.setup.session_id, offset, &data, &mut packet);
                    let how = input.byte();
                    let what = match how & 3 {
                        0 => {
                            let mut other = self.key_bytes;
                            other[usize::from(how >> 2) % 32] ^= input.byte() | 1;
                            DatagramKey::new(other).seal(&mut packet);
                            "sealed with another key"
                        }
                        1 => {
                            self.key.seal(&mut packet);
                            let at = input.uint(2) as usize % packet.len();
                            packet[at] ^= input.byte().max(1);
                            "a byte changed"
                        }
                        2 => {
                            self.key.seal(&mut packet);
                            let cut = 1 + usize::from(input.byte()) % packet.len();
                            packet.truncate(packet.len() - cut);
                            "cut short"
                        }
                        _ => {
                            self.key.seal(&mut packet);
                            let n = input.length();
                            let added = input.bytes(n);
                            packet.extend_from_slice(if added.is_empty() { &[0] } else { added });
                            "bytes added"
                        }
                    };
                    let what = format!("forged [{offset}, +{len}), {what}");
                    self.deliver(&packet, Expect::Unauthentic, &what);
                }
                Op::Raw => {
                    let n = input.length();
                    let raw = input.bytes(n);
                    let expect = match self.key.open(raw) {
                        Some(body) => self.expect(body),
                        None => Expect::Unauthentic,
                    };
                    self.deliver(raw, expect, "raw");
                }
                Op::SealedRaw => {
                    let n = input.length();
                    packet.clear();
                    packet.extend_from_slice(input.bytes(n));
                    self.key.seal(&mut packet);
                    let expect = self.expect(&packet[..packet.len() - TAG_LEN]);
                    self.deliver(&packet, expect, "sealed raw");
                }
                Op::Burst => {
                    let (start, _) = self.place(input);
                    let count = u64::from(input.byte()) + 1;
                    let chunk = match input.uint(2) {
                        0 => DEFAULT_CHUNK,
                        c => c,
                    };
                    let total = self.setup.total;
                    let mut places = Vec::new();
                    let mut offset = start;
                    for _ in 0..count {
                        if offset >= total {
                            break;
                        }
                        places.push((offset, chunk.min(total - offset)));
                        let Some(next) = offset.checked_add(chunk) else {
                            break;
                        };
                        offset = next;
                    }
                    if places.is_empty() {
                        places.push((start, chunk));
                    }
                    if flags & 1 != 0 {
                        places.reverse();
                    }
                    for (k, &(offset, len)) in places.iter().enumerate() {
                        if flags & 2 != 0 && k % 2 == 1 {
                            continue;
                        }
                        Self::data(input, false, offset, len, &mut data);
                        self.build(self.setup.session_id, offset, &data, &mut packet);
                        self.key.seal(&mut packet);
                        let expect = self.expect(&packet[..packet.len() - TAG_LEN]);
                        self.deliver(&packet, expect, &format!("burst [{offset}, +{len})"));
                        if flags & 4 != 0 {
                            self.now += Duration::from_micros(100);
                            self.poll();
                        }
                    }
                }
                Op::Advance => {
                    self.now += Duration::from_micros(16 * input.uint(2));
                    self.poll();
                    if flags & 1 != 0 {
                        self.poll();
                    }
                }
                Op::RoundTrip => {
                    let state = self.receiver.state();
                    assert!(
                        state.session_id == self.setup.session_id
                            && state.total_size == self.setup.total
                            && state.form == self.setup.form
                            && state.wanted == self.setup.wanted
                            && &state.received == self.receiver.received(),
                        "state() is not the receiver's"
                    );
                    let bytes = state.encode();
                    let back = TransferState::decode(&bytes);
                    assert_eq!(
                        back.as_ref(),
                        Ok(&state),
                        "a state does not decode to itself"
                    );
                    let back = back.expect("checked");
                    assert_eq!(back.encode(), bytes);
                    let resumed =
                        Receiver::from_state(back, self.setup.report_interval, self.key.clone());
                    assert_eq!(resumed.state(), state, "from_state: another state");
                    assert_eq!(resumed.received(), self.receiver.received());
                    assert_eq!(resumed.holes(), self.receiver.holes());
                    assert_eq!(resumed.is_complete(), self.receiver.is_complete());
                    if trace() {
                        eprintln!(
                            "  state of {} bytes: {} received, {} holes",
                            bytes.len(),
                            state.received.len(),
                            resumed.holes().len()
                        );
                    }
                    self.continue_with(resumed);
                    let body = bytes.len() - 8;
                    if flags & 1 != 0 {
                        let mut changed = bytes.clone();
                        changed[input.uint(2) as usize % body] ^= input.byte().max(1);
                        changed.truncate(body);
                        let sum = twox_hash::XxHash3_64::oneshot(&changed);
                        changed.extend_from_slice(&sum.to_be_bytes());
                        self.decoded(&changed, flags & 2 != 0);
                    }
                    if flags & 4 != 0 {
                        let mut damaged = bytes;
                        let at = input.uint(2) as usize % damaged.len();
                        damaged[at] ^= input.byte().max(1);
                        let loaded = TransferState::decode(&damaged);
                        assert!(
                            loaded.is_err(),
                            "a damaged state loads (byte {at}): {loaded:?}"
                        );
                    }
                }
                Op::DecodeRaw => {
                    let n = input.length();
                    let raw = input.bytes(n);
                    self.decoded(raw, flags & 1 != 0);
                }
                Op::DecodeFramed => {
                    let n = input.length();
                    let mut framed = STATE_MAGIC.to_vec();
                    framed.extend_from_slice(input.bytes(n));
                    let sum = twox_hash::XxHash3_64::oneshot(&framed);
                    framed.extend_from_slice(&sum.to_be_bytes());
                    self.decoded(&framed, flags & 1 != 0);
                }
            }
            self.check(&format!("op {step} ({op:?})"));
        }
        self.bits.verify();
        if trace() {
            eprintln!(
                "end at {:?}: {:?}, {} of {} bytes, {} reports ({} with holes)",
                self.now - self.start,
                self.receiver.stats(),
                self.bits.count,
                self.setup.asked_bytes(),
                self.reports.0,
                self.reports.1
            );
        }
    }
}

fn run(data: &[u8]) {
    let mut input = Input(data);
    Harness::new(&mut input).run(&mut input);
}

fuzz_target!(|data: &[u8]| run(data));
