//! `Pull` asks a server to run a job as the source, sending its requests back on the
//! session's backchannel to the client (the target); `PullReport` answers with the
//! source's report once the job is over.
//!
//! Unlike the other messages, `Pull` goes from the target to the source. Its tag (0x10)
//! shares the request tag space and the exchange id family (`EXCHANGE_BASE | tag`), but it
//! is no [`MessageKind`](super::MessageKind): a target never receives it.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    Begin, CommitStatus, EXCHANGE_BASE, EntryFailure, FailureReason, FinishReport, Need,
    ProtoError, RefusalKind, expect_end, put_u16_bytes,
};
use crate::reader::Reader;

/// The tag of [`PullRequest`].
pub const PULL_TAG: u8 = 0x10;
/// The tag of [`PullReport`].
pub const PULL_REPORT_TAG: u8 = 0x90;
/// The DSP exchange id of a pull (`0x52455010`).
pub const PULL_EXCHANGE: u32 = EXCHANGE_BASE | PULL_TAG as u32;

/// Bytes of paths a [`PullReport`] lists per list (changed, deleted, failed) at most:
/// the report travels as one response, which the session bounds (4 MiB by default).
pub const LISTED_BYTES: usize = 1 << 20;

/// `tag, begin bytes16, window_blocks u32, stall_timeout_ms u32, rate u64, sources (u16 count,
/// bytes16 each), excludes (u16 count, bytes16 each)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest<'a> {
    /// The `Begin` the source is to send: the job's options, its id, and the destination
    /// (relative to the puller's target root).
    pub begin: Begin<'a>,
    /// Blocks in flight at most (the server caps it).
    pub window_blocks: u32,
    /// How long the source waits for any answer before it gives the job up.
    pub stall_timeout: Duration,
    /// Bytes per second the source may send (`--rate`); 0: no cap.
    pub rate_bytes_per_sec: u64,
    /// Paths under the server's root, as `hawser pull` names them (a trailing `/` sends
    /// a directory's contents).
    pub sources: Vec<&'a [u8]>,
    /// `--exclude` patterns.
    pub excludes: Vec<&'a [u8]>,
}

fn put_list(out: &mut impl BufMut, items: &[&[u8]]) -> Result<(), ProtoError> {
    out.put_u16(u16::try_from(items.len()).map_err(|_| ProtoError::TooLong)?);
    for item in items {
        put_u16_bytes(out, item)?;
    }
    Ok(())
}

fn read_list<'a>(r: &mut Reader<'a>) -> Result<Vec<&'a [u8]>, ProtoError> {
    let count = r.u16().need()?;
    // Each item takes at least its two length bytes.
    if usize::from(count) * 2 > r.left() {
        return Err(ProtoError::CountTooLarge(u32::from(count)));
    }
    (0..count).map(|_| r.u16_bytes().need()).collect()
}

impl<'a> PullRequest<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), ProtoError> {
        let mut begin = BytesMut::new();
        self.begin.encode(&mut begin)?;
        out.put_u8(PULL_TAG);
        put_u16_bytes(out, &begin)?;
        out.put_u32(self.window_blocks);
        out.put_u32(u32::try_from(self.stall_timeout.as_millis()).unwrap_or(u32::MAX));
        out.put_u64(self.rate_bytes_per_sec);
        put_list(out, &self.sources)?;
        put_list(out, &self.excludes)
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_pull_tag(&mut r, PULL_TAG)?;
        let begin = Begin::decode(r.u16_bytes().need()?)?;
        let window_blocks = r.u32().need()?;
        let stall_timeout = Duration::from_millis(u64::from(r.u32().need()?));
        let rate_bytes_per_sec = r.u64().need()?;
        let sources = read_list(&mut r)?;
        let excludes = read_list(&mut r)?;
        expect_end(&r)?;
        Ok(PullRequest {
            begin,
            window_blocks,
            stall_timeout,
            rate_bytes_per_sec,
            sources,
            excludes,
        })
    }
}

fn expect_pull_tag(r: &mut Reader<'_>, expected: u8) -> Result<(), ProtoError> {
    match r.u8().need()? {
        tag if tag == expected => Ok(()),
        found => Err(ProtoError::WrongKind { expected, found }),
    }
}

/// A job's counters as the source reports them (the replication task's `Report`
/// without its histogram, which travels as buckets).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobCounters {
    /// Regular files written on the target (or that would be, in a dry run).
    pub files: u64,
    /// Entries already up to date.
    pub up_to_date: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Total size of the regular files considered.
    pub bytes_total: u64,
    /// File data bytes sent.
    pub bytes_sent: u64,
    /// Request body bytes sent, all messages included.
    pub wire_bytes: u64,
    /// Block messages sent, retries included.
    pub blocks_sent: u64,
    /// Blocks sent again after a digest mismatch.
    pub block_retries: u64,
    /// Entries deleted on the target.
    pub deleted: u64,
    /// Wall time from the first request to the last answer.
    pub duration: Duration,
    /// Buffers the source's block pool allocated.
    pub buffers_allocated: u64,
    /// Compression by the task itself (1.0: blocks travel as they are).
    pub compression_ratio: f64,
}

/// What a pull did, as the source saw it: its counters, the block round trips, the
/// listed paths, the entries that failed, and the server's session counters for the job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PullReport {
    /// The source's counters.
    pub counters: JobCounters,
    /// The target's own counters, if the job got as far as Finish.
    pub target: Option<FinishReport>,
    /// Block round trips in nanoseconds, as (value, count) buckets of the source's
    /// histogram.
    pub block_rtt_buckets: Vec<(u64, u64)>,
    /// Dry run: the paths that would change (as many as fitted in [`LISTED_BYTES`]).
    pub would_change: Vec<String>,
    /// Deleted paths the target listed (as many as fitted).
    pub deleted_paths: Vec<String>,
    /// Entries that failed (as many as fitted).
    pub failures: Vec<EntryFailure>,
    /// Failed entries not listed in `failures` (beyond those the encoding leaves out).
    pub unlisted_failures: u64,
    /// Would-change paths (dry run) not listed (beyond those the encoding leaves out).
    pub unlisted_changes: u64,
    /// Requests the server's session retried on the backchannel (connection losses).
    pub session_retries: u64,
}

const REASON_REFUSED: u8 = 1;
const REASON_COMMIT: u8 = 2;
const REASON_BLOCK_RETRIES: u8 = 3;
const REASON_SOURCE_CHANGED: u8 = 4;

fn put_failure(out: &mut BytesMut, failure: &EntryFailure) -> Result<(), ProtoError> {
    put_u16_bytes(out, failure.path.as_bytes())?;
    match &failure.reason {
        FailureReason::Refused { kind, detail } => {
            out.put_u8(REASON_REFUSED);
            out.put_u8(kind.to_wire());
            put_u16_bytes(out, detail.as_bytes())?;
        }
        FailureReason::Commit(status) => {
            out.put_u8(REASON_COMMIT);
            out.put_u8(status.to_wire());
        }
        FailureReason::BlockRetries(offset) => {
            out.put_u8(REASON_BLOCK_RETRIES);
            out.put_u64(*offset);
        }
        FailureReason::SourceChanged => out.put_u8(REASON_SOURCE_CHANGED),
    }
    Ok(())
}

fn read_failure(r: &mut Reader<'_>) -> Result<EntryFailure, ProtoError> {
    let path = String::from_utf8_lossy(r.u16_bytes().need()?).into_owned();
    let reason = match r.u8().need()? {
        REASON_REFUSED => FailureReason::Refused {
            kind: RefusalKind::from_wire(r.u8().need()?)?,
            detail: String::from_utf8_lossy(r.u16_bytes().need()?).into_owned(),
        },
        REASON_COMMIT => FailureReason::Commit(CommitStatus::from_wire(r.u8().need()?)?),
        REASON_BLOCK_RETRIES => FailureReason::BlockRetries(r.u64().need()?),
        REASON_SOURCE_CHANGED => FailureReason::SourceChanged,
        other => {
            return Err(ProtoError::BadValue {
                field: "failure reason",
                value: u32::from(other),
            });
        }
    };
    Ok(EntryFailure { path, reason })
}

/// Writes `total u64, listed u32` and the items that fit in [`LISTED_BYTES`], each with
/// `put`; the total counts `unlisted` items beyond `items` too.
fn put_bounded<T>(
    out: &mut BytesMut,
    items: &[T],
    unlisted: u64,
    put: impl Fn(&mut BytesMut, &T) -> Result<(), ProtoError>,
) -> Result<(), ProtoError> {
    let mut encoded = BytesMut::new();
    let mut listed = 0u32;
    for item in items {
        let before = encoded.len();
        put(&mut encoded, item)?;
        if encoded.len() > LISTED_BYTES {
            encoded.truncate(before);
            break;
        }
        listed += 1;
    }
    out.put_u64((items.len() as u64).saturating_add(unlisted));
    out.put_u32(listed);
    out.put_slice(&encoded);
    Ok(())
}

/// Reads what [`put_bounded`] wrote: the items and how many were left out.
fn read_bounded<T>(
    r: &mut Reader<'_>,
    min_item_len: usize,
    read: impl Fn(&mut Reader<'_>) -> Result<T, ProtoError>,
) -> Result<(Vec<T>, u64), ProtoError> {
    let total = r.u64().need()?;
    let listed = r.u32().need()?;
    if u64::from(listed) > total || listed as usize * min_item_len > r.left() {
        return Err(ProtoError::CountTooLarge(listed));
    }
    let items = (0..listed)
        .map(|_| read(r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, total - u64::from(listed)))
}

fn read_path(r: &mut Reader<'_>) -> Result<String, ProtoError> {
    Ok(String::from_utf8_lossy(r.u16_bytes().need()?).into_owned())
}

impl PullReport {
    /// The message: `tag`, twelve `u64` counters (files, up to date, dirs, symlinks, bytes
    /// total, bytes sent, wire bytes, blocks sent, block retries, deleted, duration ns,
    /// buffers allocated), the compression ratio (`f64` bits), session retries `u64`, the
    /// target's FinishReport (`bytes16`, empty if none), the block round-trip histogram
    /// (`u32` count of (value `u64`, count `u64`) buckets), then three bounded lists
    /// (total `u64`, listed `u32`, items): would-change paths, deleted paths, failures.
    pub fn encode(&self) -> Result<Bytes, ProtoError> {
        let c = &self.counters;
        let mut out = BytesMut::new();
        out.put_u8(PULL_REPORT_TAG);
        for field in [
            c.files,
            c.up_to_date,
            c.dirs,
            c.symlinks,
            c.bytes_total,
            c.bytes_sent,
            c.wire_bytes,
            c.blocks_sent,
            c.block_retries,
            c.deleted,
            u64::try_from(c.duration.as_nanos()).unwrap_or(u64::MAX),
            c.buffers_allocated,
            c.compression_ratio.to_bits(),
            self.session_retries,
        ] {
            out.put_u64(field);
        }
        let mut target = BytesMut::new();
        if let Some(report) = &self.target {
            report.encode(&mut target);
        }
        put_u16_bytes(&mut out, &target)?;
        out.put_u32(u32::try_from(self.block_rtt_buckets.len()).map_err(|_| ProtoError::TooLong)?);
        for &(value, count) in &self.block_rtt_buckets {
            out.put_u64(value);
            out.put_u64(count);
        }
        let put_path = |out: &mut BytesMut, path: &String| put_u16_bytes(out, path.as_bytes());
        put_bounded(
            &mut out,
            &self.would_change,
            self.unlisted_changes,
            put_path,
        )?;
        // Deleted: the counters' own total is `deleted`; this list is what the target
        // listed.
        put_bounded(&mut out, &self.deleted_paths, 0, put_path)?;
        put_bounded(
            &mut out,
            &self.failures,
            self.unlisted_failures,
            put_failure,
        )?;
        Ok(out.freeze())
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_pull_tag(&mut r, PULL_REPORT_TAG)?;
        let mut f = [0u64; 14];
        for field in &mut f {
            *field = r.u64().need()?;
        }
        let counters = JobCounters {
            files: f[0],
            up_to_date: f[1],
            dirs: f[2],
            symlinks: f[3],
            bytes_total: f[4],
            bytes_sent: f[5],
            wire_bytes: f[6],
            blocks_sent: f[7],
            block_retries: f[8],
            deleted: f[9],
            duration: Duration::from_nanos(f[10]),
            buffers_allocated: f[11],
            compression_ratio: f64::from_bits(f[12]),
        };
        let session_retries = f[13];
        let target = r.u16_bytes().need()?;
        let target = if target.is_empty() {
            None
        } else {
            Some(FinishReport::decode(target)?)
        };
        let buckets = r.u32().need()?;
        if buckets as usize * 16 > r.left() {
            return Err(ProtoError::CountTooLarge(buckets));
        }
        let block_rtt_buckets = (0..buckets)
            .map(|_| Ok((r.u64().need()?, r.u64().need()?)))
            .collect::<Result<Vec<_>, ProtoError>>()?;
        let (would_change, unlisted_changes) = read_bounded(&mut r, 2, read_path)?;
        let (deleted_paths, _) = read_bounded(&mut r, 2, read_path)?;
        let (failures, unlisted_failures) = read_bounded(&mut r, 3, read_failure)?;
        expect_end(&r)?;
        Ok(PullReport {
            counters,
            target,
            block_rtt_buckets,
            would_change,
            deleted_paths,
            failures,
            unlisted_failures,
            unlisted_changes,
            session_retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::{CompressPolicy, JobOptions, PROTOCOL_VERSION};

    fn request() -> Vec<u8> {
        let options = JobOptions {
            checksum: true,
            delete: true,
            compress: CompressPolicy::Off,
            block_size: 1 << 20,
            ..JobOptions::default()
        };
        let pull = PullRequest {
            begin: Begin {
                version: PROTOCOL_VERSION,
                job_id: 7,
                options,
                dest: b"local",
            },
            window_blocks: 4,
            stall_timeout: Duration::from_secs(30),
            rate_bytes_per_sec: 500_000_000,
            sources: vec![b"data/", b"more"],
            excludes: vec![b"*.tmp"],
        };
        let mut buf = Vec::new();
        pull.encode(&mut buf).unwrap();
        assert_eq!(PullRequest::decode(&buf), Ok(pull));
        buf
    }

    #[test]
    fn request_round_trips_and_rejects_damage() {
        let buf = request();
        assert_eq!(buf[0], PULL_TAG);
        assert_eq!(PULL_EXCHANGE, 0x5245_5010);
        for cut in 0..buf.len() {
            assert!(PullRequest::decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(
            PullRequest::decode(&longer),
            Err(ProtoError::TrailingBytes(1))
        );
    }

    #[test]
    fn report_round_trips_with_histogram_lists_and_failures() {
        let pulled = PullReport {
            counters: JobCounters {
                files: 3,
                bytes_sent: 12345,
                deleted: 2,
                duration: Duration::from_millis(1500),
                compression_ratio: 0.5,
                ..JobCounters::default()
            },
            target: Some(FinishReport {
                files_written: 3,
                ..FinishReport::default()
            }),
            block_rtt_buckets: vec![(1_000, 1), (2_000_000, 4), (3_000_000_000, 1)],
            deleted_paths: vec!["gone".into(), "old/dir".into()],
            would_change: vec!["x".into()],
            failures: vec![
                EntryFailure {
                    path: "a/b".into(),
                    reason: FailureReason::Refused {
                        kind: RefusalKind::SymlinkEscape,
                        detail: "a is a symlink".into(),
                    },
                },
                EntryFailure {
                    path: "c".into(),
                    reason: FailureReason::Commit(CommitStatus::ContentMismatch),
                },
                EntryFailure {
                    path: "d".into(),
                    reason: FailureReason::BlockRetries(8 << 20),
                },
                EntryFailure {
                    path: "e".into(),
                    reason: FailureReason::SourceChanged,
                },
            ],
            unlisted_failures: 0,
            unlisted_changes: 0,
            session_retries: 9,
        };
        let bytes = pulled.encode().unwrap();
        assert_eq!(PullReport::decode(&bytes).unwrap(), pulled);
        for cut in 0..bytes.len() {
            assert!(PullReport::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn long_lists_are_bounded_and_counted() {
        // 40,000 paths of 100 bytes: about 4 MB, beyond one response.
        let pulled = PullReport {
            would_change: (0..40_000).map(|i| format!("{i:0100}")).collect(),
            ..PullReport::default()
        };
        let bytes = pulled.encode().unwrap();
        assert!(bytes.len() < 2 * LISTED_BYTES, "{}", bytes.len());
        let back = PullReport::decode(&bytes).unwrap();
        assert_eq!(
            back.would_change.len() as u64 + back.unlisted_changes,
            40_000
        );
        assert!(back.unlisted_changes > 0);
    }
}
