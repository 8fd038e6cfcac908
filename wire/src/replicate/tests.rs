//! Properties over all message kinds: no decoder panics on any input, a message decodes
//! only as its own kind, and the kinds without a round trip beside their codec (Finish,
//! Pull, PullReport) round-trip here.

use std::time::Duration;

use super::begin::tests::options;
use super::manifest::tests::{OwnedEntry, entry};
use super::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Runs every decoder on `bytes`; each must return, never panic.
fn decode_everything(bytes: &[u8]) {
    let _ = MessageKind::of(bytes);
    let _ = Begin::decode(bytes);
    let _ = BeginAck::decode(bytes);
    let _ = ManifestBatch::decode(bytes);
    let _ = ManifestAnswer::decode(bytes);
    let _ = BlockHeader::decode(bytes);
    let _ = BlockAck::decode(bytes);
    let _ = CommitFile::decode(bytes);
    let _ = CommitAck::decode(bytes);
    let _ = DeleteRequest::decode(bytes);
    let _ = DeleteList::decode(bytes);
    let _ = Finish::decode(bytes);
    let _ = FinishReport::decode(bytes);
    let _ = PullRequest::decode(bytes);
    let _ = PullReport::decode(bytes);
}

/// The tags of the decoders that accept `bytes`.
fn accepted_by(bytes: &[u8]) -> Vec<u8> {
    let decoders: [(u8, bool); 14] = [
        (0x01, Begin::decode(bytes).is_ok()),
        (0x81, BeginAck::decode(bytes).is_ok()),
        (0x02, ManifestBatch::decode(bytes).is_ok()),
        (0x82, ManifestAnswer::decode(bytes).is_ok()),
        (0x03, BlockHeader::decode(bytes).is_ok()),
        (0x83, BlockAck::decode(bytes).is_ok()),
        (0x04, CommitFile::decode(bytes).is_ok()),
        (0x84, CommitAck::decode(bytes).is_ok()),
        (0x05, DeleteRequest::decode(bytes).is_ok()),
        (0x85, DeleteList::decode(bytes).is_ok()),
        (0x06, Finish::decode(bytes).is_ok()),
        (0x86, FinishReport::decode(bytes).is_ok()),
        (PULL_TAG, PullRequest::decode(bytes).is_ok()),
        (PULL_REPORT_TAG, PullReport::decode(bytes).is_ok()),
    ];
    decoders
        .into_iter()
        .filter_map(|(tag, ok)| ok.then_some(tag))
        .collect()
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn commit_status() -> impl Strategy<Value = CommitStatus> {
    (0u8..4).prop_map(|wire| CommitStatus::from_wire(wire).unwrap())
}

fn refusal_kind() -> impl Strategy<Value = RefusalKind> {
    (1u8..=8).prop_map(|wire| RefusalKind::from_wire(wire).unwrap())
}

/// An owned Pull request, for strategies.
#[derive(Debug, Clone)]
struct OwnedPull {
    job_id: u128,
    options: JobOptions,
    dest: Vec<u8>,
    window_blocks: u32,
    stall_timeout_ms: u32,
    rate_bytes_per_sec: u64,
    sources: Vec<Vec<u8>>,
    excludes: Vec<Vec<u8>>,
}

impl OwnedPull {
    fn borrow(&self) -> PullRequest<'_> {
        PullRequest {
            begin: Begin {
                version: PROTOCOL_VERSION,
                job_id: self.job_id,
                options: self.options,
                dest: &self.dest,
            },
            window_blocks: self.window_blocks,
            stall_timeout: Duration::from_millis(u64::from(self.stall_timeout_ms)),
            rate_bytes_per_sec: self.rate_bytes_per_sec,
            sources: self.sources.iter().map(Vec::as_slice).collect(),
            excludes: self.excludes.iter().map(Vec::as_slice).collect(),
        }
    }
}

fn pull_request() -> impl Strategy<Value = OwnedPull> {
    (
        any::<u128>(),
        options(),
        bytes(100),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        vec(bytes(60), 0..8),
        vec(bytes(60), 0..8),
    )
        .prop_map(
            |(job_id, options, dest, window_blocks, stall_timeout_ms, rate, sources, excludes)| {
                OwnedPull {
                    job_id,
                    options,
                    dest,
                    window_blocks,
                    stall_timeout_ms,
                    rate_bytes_per_sec: rate,
                    sources,
                    excludes,
                }
            },
        )
}

fn failure() -> impl Strategy<Value = EntryFailure> {
    let reason = prop_oneof![
        (refusal_kind(), ".{0,40}")
            .prop_map(|(kind, detail)| FailureReason::Refused { kind, detail }),
        commit_status().prop_map(FailureReason::Commit),
        any::<u64>().prop_map(FailureReason::BlockRetries),
        Just(FailureReason::SourceChanged),
    ];
    (".{0,40}", reason).prop_map(|(path, reason)| EntryFailure { path, reason })
}

fn finish_report() -> impl Strategy<Value = FinishReport> {
    any::<[u64; 8]>().prop_map(|f| FinishReport {
        files_written: f[0],
        up_to_date: f[1],
        dirs_created: f[2],
        symlinks_created: f[3],
        deleted: f[4],
        refused: f[5],
        bytes_received: f[6],
        bytes_resumed: f[7],
    })
}

fn pull_report() -> impl Strategy<Value = PullReport> {
    let counters = (
        any::<[u64; 11]>(),
        any::<u64>(),
        // Any ratio but NaN, which equals nothing.
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("not NaN", |r| !r.is_nan()),
    )
        .prop_map(|(c, duration_ns, compression_ratio)| JobCounters {
            files: c[0],
            up_to_date: c[1],
            dirs: c[2],
            symlinks: c[3],
            bytes_total: c[4],
            bytes_sent: c[5],
            wire_bytes: c[6],
            blocks_sent: c[7],
            block_retries: c[8],
            deleted: c[9],
            duration: Duration::from_nanos(duration_ns),
            buffers_allocated: c[10],
            compression_ratio,
        });
    let lists = (
        vec(".{0,30}", 0..6),
        vec(".{0,30}", 0..6),
        vec(failure(), 0..6),
    );
    (
        counters,
        proptest::option::of(finish_report()),
        vec(any::<(u64, u64)>(), 0..10),
        lists,
        any::<[u32; 2]>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                counters,
                target,
                buckets,
                (would_change, deleted_paths, failures),
                unlisted,
                retries,
            )| {
                PullReport {
                    counters,
                    target,
                    block_rtt_buckets: buckets,
                    would_change,
                    deleted_paths,
                    failures,
                    unlisted_failures: u64::from(unlisted[0]),
                    unlisted_changes: u64::from(unlisted[1]),
                    session_retries: retries,
                }
            },
        )
}

/// One message of any kind: its tag and its bytes.
fn any_message() -> impl Strategy<Value = (u8, Vec<u8>)> {
    fn encoded(tag: u8, write: impl FnOnce(&mut Vec<u8>)) -> (u8, Vec<u8>) {
        let mut out = Vec::new();
        write(&mut out);
        (tag, out)
    }
    prop_oneof![
        (options(), any::<u128>(), bytes(50)).prop_map(|(options, job_id, dest)| encoded(
            0x01,
            |out| Begin {
                version: PROTOCOL_VERSION,
                job_id,
                options,
                dest: &dest
            }
            .encode(out)
            .unwrap()
        )),
        any::<(u16, bool, bool)>().prop_map(|(version, dest_existed, dest_is_file)| encoded(
            0x81,
            |out| BeginAck {
                version,
                dest_existed,
                dest_is_file,
            }
            .encode(out)
        )),
        vec(entry(), 0..5).prop_map(|entries| encoded(0x02, |out| ManifestBatch {
            entries: entries.iter().map(OwnedEntry::borrow).collect()
        }
        .encode(out)
        .unwrap())),
        vec((any::<u32>(), 0u8..3), 0..10).prop_map(|entries| encoded(0x82, |out| {
            ManifestAnswer {
                entries: entries
                    .iter()
                    .map(|&(file_id, verdict)| AnswerEntry {
                        file_id,
                        verdict: [Verdict::UpToDate, Verdict::Done, Verdict::NeedAll]
                            [usize::from(verdict)]
                        .clone(),
                    })
                    .collect(),
            }
            .encode(out)
            .unwrap()
        })),
        (any::<u32>(), any::<u64>(), bytes(100)).prop_map(|(file_id, offset, data)| encoded(
            0x03,
            |out| {
                BlockHeader {
                    file_id,
                    offset,
                    digest: block_digest(&data),
                }
                .encode(out);
                out.extend_from_slice(&data);
            }
        )),
        (any::<u32>(), any::<u64>(), any::<bool>()).prop_map(|(file_id, offset, written)| {
            let status = if written {
                BlockStatus::Written
            } else {
                BlockStatus::DigestMismatch
            };
            encoded(0x83, |out| {
                BlockAck {
                    file_id,
                    offset,
                    status,
                }
                .encode(out)
            })
        }),
        any::<(u32, u64, u128, u32, i64)>().prop_map(
            |(file_id, size, content_hash, mode, mtime_ns)| encoded(0x04, |out| {
                CommitFile {
                    file_id,
                    size,
                    content_hash,
                    mode,
                    mtime_ns,
                }
                .encode(out)
            })
        ),
        (any::<u32>(), commit_status()).prop_map(|(file_id, status)| encoded(0x84, |out| {
            CommitAck { file_id, status }.encode(out)
        })),
        any::<u32>().prop_map(|max_listed| encoded(0x05, |out| {
            DeleteRequest { max_listed }.encode(out)
        })),
        (any::<u64>(), vec(bytes(30), 0..6)).prop_map(|(total, paths)| encoded(0x85, |out| {
            DeleteList {
                total,
                paths: paths.iter().map(Vec::as_slice).collect(),
            }
            .encode(out)
            .unwrap()
        })),
        Just(encoded(0x06, |out| Finish.encode(out))),
        finish_report().prop_map(|report| encoded(0x86, |out| report.encode(out))),
        pull_request().prop_map(|pull| encoded(PULL_TAG, |out| pull.borrow().encode(out).unwrap())),
        pull_report().prop_map(|report| encoded(PULL_REPORT_TAG, |out| {
            out.extend_from_slice(&report.encode().unwrap())
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_everything(&bytes);
    }

    #[test]
    fn decoders_never_panic_after_a_valid_tag(tag in prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 0x10, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x90]),
                                              rest in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&rest);
        decode_everything(&bytes);
    }
}

proptest! {
    #[test]
    fn a_message_decodes_only_as_its_own_kind((tag, bytes) in any_message()) {
        prop_assert_eq!(bytes[0], tag);
        prop_assert_eq!(accepted_by(&bytes), vec![tag]);
        prop_assert_eq!(MessageKind::of(&bytes).ok().map(MessageKind::tag), MessageKind::from_tag(tag).ok().map(MessageKind::tag));
    }

    #[test]
    fn finish_round_trips(rest in bytes(8)) {
        let mut buf = Vec::new();
        Finish.encode(&mut buf);
        prop_assert_eq!(Finish::decode(&buf), Ok(Finish));
        prop_assert_eq!(MessageKind::of(&buf), Ok(MessageKind::Finish));
        // Finish is its tag alone: anything after it is refused.
        if !rest.is_empty() {
            buf.extend_from_slice(&rest);
            prop_assert_eq!(Finish::decode(&buf), Err(ProtoError::TrailingBytes(rest.len())));
        }
    }

    #[test]
    fn pull_request_round_trips(pull in pull_request()) {
        let pull = pull.borrow();
        let mut buf = Vec::new();
        pull.encode(&mut buf).unwrap();
        prop_assert_eq!(PullRequest::decode(&buf), Ok(pull));
        for cut in 0..buf.len() {
            prop_assert!(PullRequest::decode(&buf[..cut]).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn pull_report_round_trips(report in pull_report(), cut in any::<prop::sample::Index>()) {
        let buf = report.encode().unwrap();
        prop_assert_eq!(PullReport::decode(&buf), Ok(report));
        let cut = cut.index(buf.len());
        prop_assert!(PullReport::decode(&buf[..cut]).is_err(), "cut at {}", cut);
    }
}

#[test]
fn tags_and_exchange_ids() {
    for tag in 0..=255u8 {
        if let Ok(kind) = MessageKind::from_tag(tag) {
            assert_eq!(kind.tag(), tag);
            assert_eq!(kind.is_request(), tag < 0x80);
        }
    }
    assert_eq!(MessageKind::Block.exchange_id(), 0x5245_5003);
    assert_eq!(MessageKind::of(&[]), Err(ProtoError::Truncated));
}
