//! The data path: one thread, one io_uring, both directions. Reads from each TUN are
//! kept posted in batches; each packet read goes through its direction's
//! [`LinkDirection`] model and, if admitted, waits in that direction's FIFO delay line
//! (in-order release, see the model) until its release time, when it is written to the
//! other TUN. Buffers come from an arena allocated once; nothing is allocated per packet.
//!
//! Buffer classes: every read lands in an MTU-sized ("big") slot. An admitted packet
//! that fits a small slot (ACKs, small datagrams) is copied into one so that the big slot
//! goes straight back to reading; a big packet keeps its slot and a free big slot takes
//! its place in the read batch. If the direction's pool has no slot left, the packet is
//! dropped and counted as `dropped_no_buffer` (size the arena with `--arena-mb`).

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::model::{LinkDirection, Verdict, flip_bit};
use crate::sys::{Completion, OpKind, PacketIo};

/// Size of the small slots packets up to this length are copied into.
pub const SMALL_SLOT_BYTES: u32 = 2048;

/// How the forwarder sizes its buffers.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// Largest packet (the TUN MTU); the size of big slots.
    pub mtu: u32,
    /// Bytes of virtio-net header before each packet (0 without offloads). With offloads
    /// a packet may be a 64 KiB TSO segment whatever the MTU, so big slots are 64 KiB+.
    pub packet_header_bytes: u32,
    /// Big slots per direction (including the ones kept posted as reads).
    pub big_slots: usize,
    /// Small slots per direction.
    pub small_slots: usize,
    /// Reads kept posted on each TUN.
    pub reads_in_flight: usize,
    /// Interval of the periodic report; `None` for none.
    pub report_interval: Option<Duration>,
    /// Stop after this long; `None` to run until signalled.
    pub run_for: Option<Duration>,
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DirectionReport {
    /// Packets written to the far TUN.
    pub forwarded_packets: u64,
    /// IP bytes written to the far TUN (virtio-net headers not counted).
    pub forwarded_bytes: u64,
    /// Forwarding rate over the last report interval.
    pub interval_bits_per_sec: f64,
    /// Tail drops at the rate cap's queue.
    pub dropped_queue_full: u64,
    /// Random losses.
    pub dropped_random_loss: u64,
    /// Drops because the arena had no free slot.
    pub dropped_no_buffer: u64,
    /// Packets that had a bit flipped.
    pub corrupted: u64,
    /// Failed TUN reads (besides would-block).
    pub read_errors: u64,
    /// Failed or short TUN writes.
    pub write_errors: u64,
    /// Packets waiting in the delay line now.
    pub in_delay_line: usize,
}

/// A snapshot of linkem's counters.
#[derive(Debug, Clone, Serialize)]
pub struct LinkemReport {
    /// `"interval"` or `"final"`.
    pub kind: &'static str,
    /// Seconds since forwarding started.
    pub elapsed_s: f64,
    /// From side a to side b.
    pub a_to_b: DirectionReport,
    /// From side b to side a.
    pub b_to_a: DirectionReport,
}

impl LinkemReport {
    /// One line for humans.
    pub fn human(&self) -> String {
        let side = |name: &str, d: &DirectionReport| {
            format!(
                "{name}: {} pkts {} B {:.3} Gbit/s, drops queue {} loss {} nobuf {}, corrupt {}, \
                 errors r{}/w{}, queued {}",
                d.forwarded_packets,
                d.forwarded_bytes,
                d.interval_bits_per_sec / 1e9,
                d.dropped_queue_full,
                d.dropped_random_loss,
                d.dropped_no_buffer,
                d.corrupted,
                d.read_errors,
                d.write_errors,
                d.in_delay_line
            )
        };
        format!(
            "linkem {} {:.1}s | {} | {}",
            self.kind,
            self.elapsed_s,
            side("a->b", &self.a_to_b),
            side("b->a", &self.b_to_a)
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    slot: u32,
    len: u32,
    release_at_ns: u64,
}

#[derive(Debug)]
struct Direction {
    model: LinkDirection,
    read_fd: RawFd,
    write_fd: RawFd,
    first_slot: u32,
    big_slots: u32,
    free_big: Vec<u32>,
    free_small: Vec<u32>,
    delay_line: VecDeque<Queued>,
    report: DirectionReport,
    bytes_at_last_report: u64,
}

impl Direction {
    fn is_big(&self, slot: u32) -> bool {
        slot < self.first_slot + self.big_slots
    }

    fn give_back(&mut self, slot: u32) {
        if self.is_big(slot) {
            self.free_big.push(slot);
        } else {
            self.free_small.push(slot);
        }
    }

    /// Takes in the packet a read completed with: counts it, or shapes it and queues it
    /// on the delay line. Returns the slot to post the next read into: the same one when
    /// the packet was not kept (failed read, drop), a free one when the packet keeps it.
    fn receive(
        &mut self,
        io: &mut PacketIo,
        completion: Completion,
        header: u32,
        now_ns: u64,
    ) -> Result<u32> {
        let read_slot = completion.slot;
        if completion.result <= 0 {
            if completion.result != -libc::EAGAIN && completion.result != -libc::EINTR {
                self.report.read_errors += 1;
                if self.report.read_errors == 1 {
                    eprintln!(
                        "linkem: TUN read failed: {}",
                        std::io::Error::from_raw_os_error(-completion.result)
                    );
                }
            }
            return Ok(read_slot);
        }
        let len = completion.result as u32;
        if len <= header {
            self.report.read_errors += 1;
            return Ok(read_slot);
        }
        let fits_small = len <= SMALL_SLOT_BYTES;
        let has_room = if fits_small {
            !self.free_small.is_empty() || !self.free_big.is_empty()
        } else {
            !self.free_big.is_empty()
        };
        if !has_room {
            self.report.dropped_no_buffer += 1;
            return Ok(read_slot);
        }
        let Verdict::Forward {
            release_at_ns,
            corrupt_bit,
        } = self.model.on_packet(now_ns, (len - header) as usize)
        else {
            return Ok(read_slot);
        };
        let (stored, next_read) = match self.free_small.pop() {
            Some(small) if fits_small => {
                io.copy_packet(read_slot, small, len as usize);
                (small, read_slot)
            }
            other => {
                if let Some(small) = other {
                    self.free_small.push(small);
                }
                let fresh = self.free_big.pop().context("checked above")?;
                (read_slot, fresh)
            }
        };
        if let Some(bit) = corrupt_bit {
            let packet = &mut io.packet_mut(stored, len as usize)[header as usize..];
            flip_bit(packet, bit);
        }
        self.delay_line.push_back(Queued {
            slot: stored,
            len,
            release_at_ns,
        });
        Ok(next_read)
    }

    fn snapshot(&mut self, interval_s: f64) -> DirectionReport {
        let model = self.model.counters();
        let mut report = self.report;
        report.dropped_queue_full = model.dropped_queue_full;
        report.dropped_random_loss = model.dropped_random_loss;
        report.corrupted = model.corrupted;
        report.in_delay_line = self.delay_line.len();
        if interval_s > 0.0 {
            report.interval_bits_per_sec =
                (report.forwarded_bytes - self.bytes_at_last_report) as f64 * 8.0 / interval_s;
        }
        self.bytes_at_last_report = report.forwarded_bytes;
        report
    }
}

/// The forwarder between two TUN fds.
#[derive(Debug)]
pub struct Forwarder {
    io: PacketIo,
    directions: [Direction; 2],
    config: ForwarderConfig,
    started: Instant,
}

/// Reads into `slot`, flushing the submission queue first if it is full.
fn post_read(io: &mut PacketIo, fd: RawFd, slot: u32, tag: u8) -> Result<()> {
    if !io.queue_read(fd, slot, tag) {
        io.submit().context("io_uring submit")?;
        if !io.queue_read(fd, slot, tag) {
            anyhow::bail!("io_uring submission queue stays full");
        }
    }
    Ok(())
}

impl Forwarder {
    /// Builds the forwarder: `models[0]` shapes traffic read from `tun_a` (a→b),
    /// `models[1]` traffic read from `tun_b`. Allocates the whole arena now.
    pub fn new(
        tun_a: RawFd,
        tun_b: RawFd,
        models: [LinkDirection; 2],
        config: ForwarderConfig,
    ) -> Result<Self> {
        let big = config.big_slots.max(config.reads_in_flight + 1);
        let small = config.small_slots;
        let capacity = if config.packet_header_bytes > 0 {
            config.mtu.max(65_536) + config.packet_header_bytes + 64
        } else {
            config.mtu.max(SMALL_SLOT_BYTES)
        };
        let classes = [
            (capacity, big),
            (SMALL_SLOT_BYTES, small),
            (capacity, big),
            (SMALL_SLOT_BYTES, small),
        ];
        let ring_entries = 4096;
        let io = PacketIo::new(ring_entries, &classes).context("setting up io_uring")?;
        let per_direction = (big + small) as u32;
        let [model_ab, model_ba] = models;
        let make = |index: u32, model, read_fd, write_fd| {
            let first = index * per_direction;
            Direction {
                model,
                read_fd,
                write_fd,
                first_slot: first,
                big_slots: big as u32,
                free_big: (first..first + big as u32).rev().collect(),
                free_small: (first + big as u32..first + per_direction).rev().collect(),
                delay_line: VecDeque::with_capacity(big + small),
                report: DirectionReport::default(),
                bytes_at_last_report: 0,
            }
        };
        Ok(Self {
            io,
            directions: [
                make(0, model_ab, tun_a, tun_b),
                make(1, model_ba, tun_b, tun_a),
            ],
            config,
            started: Instant::now(),
        })
    }

    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Counters now.
    pub fn report(&mut self, kind: &'static str, interval_s: f64) -> LinkemReport {
        LinkemReport {
            kind,
            elapsed_s: self.started.elapsed().as_secs_f64(),
            a_to_b: self.directions[0].snapshot(interval_s),
            b_to_a: self.directions[1].snapshot(interval_s),
        }
    }

    /// Forwards until `stop` is set (or the configured run time ends), calling
    /// `on_report` at each report interval. Returns the final report.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut on_report: impl FnMut(&LinkemReport),
    ) -> Result<LinkemReport> {
        self.started = Instant::now();
        for tag in 0..2u8 {
            for _ in 0..self.config.reads_in_flight {
                let direction = &mut self.directions[tag as usize];
                let slot = direction.free_big.pop().context("no slot for reads")?;
                post_read(&mut self.io, direction.read_fd, slot, tag)?;
            }
        }
        let mut completions = Vec::with_capacity(4096);
        let mut last_report = Instant::now();
        let idle_wait = Duration::from_millis(100);
        while !stop.load(Ordering::Relaxed) {
            if self
                .config
                .run_for
                .is_some_and(|limit| self.started.elapsed() >= limit)
            {
                break;
            }
            let now_ns = self.now_ns();
            let mut wait = idle_wait;
            for direction in &self.directions {
                if let Some(front) = direction.delay_line.front() {
                    wait = wait.min(Duration::from_nanos(
                        front.release_at_ns.saturating_sub(now_ns),
                    ));
                }
            }
            if let Some(interval) = self.config.report_interval {
                wait = wait.min(interval.saturating_sub(last_report.elapsed()));
            }
            self.io.submit_and_wait(wait).context("io_uring wait")?;

            completions.clear();
            self.io.take_completions(&mut completions);
            let now_ns = self.now_ns();
            for completion in &completions {
                self.complete(*completion, now_ns)?;
            }
            self.release_due(self.now_ns())?;

            if let Some(interval) = self.config.report_interval {
                let since = last_report.elapsed();
                if since >= interval {
                    last_report = Instant::now();
                    let report = self.report("interval", since.as_secs_f64());
                    on_report(&report);
                }
            }
        }
        let interval_s = last_report.elapsed().as_secs_f64();
        self.io.cancel_all(Duration::from_secs(1));
        Ok(self.report("final", interval_s))
    }

    fn complete(&mut self, completion: Completion, now_ns: u64) -> Result<()> {
        let tag = completion.tag;
        let direction = &mut self.directions[tag as usize];
        match completion.kind {
            OpKind::Write => {
                let header = self.config.packet_header_bytes;
                if completion.result > header as i32 {
                    direction.report.forwarded_packets += 1;
                    direction.report.forwarded_bytes +=
                        u64::from(completion.result as u32 - header);
                } else {
                    direction.report.write_errors += 1;
                }
                direction.give_back(completion.slot);
                Ok(())
            }
            OpKind::Read => {
                let header = self.config.packet_header_bytes;
                let next_read = direction.receive(&mut self.io, completion, header, now_ns)?;
                post_read(&mut self.io, direction.read_fd, next_read, tag)
            }
        }
    }

    fn release_due(&mut self, now_ns: u64) -> Result<()> {
        for tag in 0..2u8 {
            let direction = &mut self.directions[tag as usize];
            while let Some(front) = direction.delay_line.front().copied() {
                if front.release_at_ns > now_ns {
                    break;
                }
                if !self
                    .io
                    .queue_write(direction.write_fd, front.slot, front.len, tag)
                {
                    self.io.submit().context("io_uring submit")?;
                    continue;
                }
                direction.delay_line.pop_front();
            }
        }
        Ok(())
    }
}
