//! A receiving session: the sans-IO [`Receiver`], its data written at each datagram's
//! offset by its [`Writer`], the digests of blocks (hashed as their bytes pass in order,
//! else read back by the writer once complete and written), and the journal (written by
//! the writer after the data it claims).

use std::fs::File;
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hawser_wire::dtp::Feedback;

use super::in_order::InOrderHash;
use super::writer::Writer;
use super::{Progress, ReceivePlan};
use crate::digest::{BLOCK, BlockDigests};
use crate::{DatagramKey, Receiver, ReceiverConfig, Verdict};

/// One transfer's receiving side on the shard.
pub(super) struct ReceivingSession {
    pub(super) receiver: Receiver,
    file: File,
    writer: Writer,
    digests: BlockDigests,
    in_order: InOrderHash,
    /// Blocks received whole, to hash once their bytes are written.
    complete_blocks: Vec<u64>,
    hash_buf: Vec<u8>,
    /// How often the state is journaled, if it is.
    journal_every: Option<Duration>,
    journaled_at: Instant,
    /// Whether a datagram of this session has arrived (until then the hello is repeated).
    pub(super) heard: bool,
    pub(super) hello_at: Option<Instant>,
    scratch: Vec<u8>,
    key: DatagramKey,
}

impl std::fmt::Debug for ReceivingSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivingSession").finish_non_exhaustive()
    }
}

impl ReceivingSession {
    pub(super) fn new(
        plan: ReceivePlan,
        key: DatagramKey,
        report_interval: Duration,
        now: Instant,
    ) -> Self {
        let receiver = Receiver::resume(
            ReceiverConfig {
                session_id: plan.session_id,
                total_size: plan.total_size,
                wanted: hawser_wire::dtp::IntervalSet::new(),
                form: plan.form,
                report_interval,
            },
            key.clone(),
            plan.received,
        );
        let (journal, journal_every) = plan.journal.unzip();
        ReceivingSession {
            receiver,
            writer: Writer::new(&plan.file, plan.direct, journal),
            file: plan.file,
            digests: plan.digests,
            in_order: InOrderHash::default(),
            complete_blocks: Vec::new(),
            hash_buf: Vec::new(),
            journal_every,
            journaled_at: now,
            heard: false,
            hello_at: None,
            scratch: Vec::with_capacity(2048),
            key,
        }
    }

    /// A datagram (tag checked by the receiver). `false` if it is not this session's (its
    /// tag does not match).
    pub(super) fn on_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        progress: &Progress,
    ) -> io::Result<bool> {
        match self.receiver.on_datagram(now, packet) {
            Verdict::Unauthentic => return Ok(false),
            Verdict::New { offset, data } => {
                self.heard = true;
                progress
                    .bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                progress
                    .delivered
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                progress.datagrams.fetch_add(1, Ordering::Relaxed);
                self.write(offset, data)?;
                self.in_order.on_data(offset, data, &mut self.digests);
                let end = offset + data.len() as u64;
                for block in offset / BLOCK..end.div_ceil(BLOCK) {
                    let (o, l) = self.digests.range(block);
                    if self.digests.get(block).is_none() && self.receiver.has(o, l) {
                        self.complete_blocks.push(block);
                    }
                }
            }
            Verdict::Duplicate | Verdict::Refused => {
                self.heard = true;
                progress.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(true)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.writer.write(&self.file, offset, data)
    }

    /// Writes what waits, and waits until it is written (and the blocks handed over are
    /// hashed).
    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.writer.flush(&self.file)?;
        self.take_hashed()
    }

    /// Hands the blocks completed since the last call to the writer, to hash once their
    /// bytes are written, and takes the digests it has. Never waits for the disk.
    pub(super) fn hash_complete_blocks(&mut self) -> io::Result<()> {
        for block in std::mem::take(&mut self.complete_blocks) {
            if self.digests.get(block).is_none() {
                let range = self.digests.range(block);
                self.writer.hash_when_written(&self.file, block, range)?;
            }
        }
        self.take_hashed()
    }

    fn take_hashed(&mut self) -> io::Result<()> {
        for (block, digest) in self.writer.take_hashed()? {
            self.digests.set(block, digest);
        }
        Ok(())
    }

    /// The feedback due, sealed, at most `max_len` bytes.
    pub(super) fn poll_feedback(&mut self, now: Instant, max_len: usize) -> Option<&[u8]> {
        let max_holes = Feedback::holes_that_fit(max_len - crate::TAG_LEN);
        let feedback = self.receiver.poll_feedback(now, max_holes)?;
        self.seal(&feedback)
    }

    /// The hello, sealed.
    pub(super) fn hello(&mut self) -> Option<&[u8]> {
        let hello = self.receiver.hello();
        self.seal(&hello)
    }

    fn seal(&mut self, feedback: &Feedback) -> Option<&[u8]> {
        self.scratch.clear();
        feedback.encode(&mut self.scratch).ok()?;
        self.key.seal(&mut self.scratch);
        Some(&self.scratch)
    }

    /// Journals the state when due (or `force`d): the writer writes it after the data it
    /// claims. Forced, it waits until the journal is written.
    pub(super) fn journal(&mut self, now: Instant, force: bool) -> io::Result<Option<Instant>> {
        let Some(every) = self.journal_every else {
            return Ok(None);
        };
        if !force && now < self.journaled_at + every {
            return Ok(Some(self.journaled_at + every));
        }
        self.hash_complete_blocks()?;
        // No fdatasync (it would hold the writer while the disk catches up): a killed
        // process leaves the data in the page cache, and after a power loss the resume
        // re-checks the journaled blocks' digests and the final digest catches the rest.
        // Blocks still being hashed are journaled without a digest: a resume trusts them
        // as it trusts a block not yet complete, and the final digest checks them.
        let mut state = self.receiver.state();
        state.digests = self.digests.clone();
        self.writer
            .journal_when_written(&self.file, state.encode())?;
        if force {
            self.flush()?;
        }
        self.journaled_at = now;
        Ok(Some(now + every))
    }

    /// Ends a complete transfer: everything written, every block hashed; the payload's
    /// digest. (Durable as the TCP push's files are without `--fsync`: in the page cache,
    /// written back by the kernel.)
    pub(super) fn finish(&mut self, now: Instant) -> io::Result<u128> {
        self.hash_complete_blocks()?;
        self.flush()?;
        self.digests.complete_from(&self.file, &mut self.hash_buf)?;
        self.journal(now, true)?;
        self.digests
            .payload_digest()
            .ok_or_else(|| io::Error::other("a block digest is missing"))
    }
}
