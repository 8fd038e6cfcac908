//! A target shared by several threads (as `hawser serve` runs it): the blocks and commits
//! of many files handled at once, in any order and from any thread, end byte-identical,
//! each checked against its whole-file hash; manifest batches of inline files from several
//! threads at once write every file whose digest matches and refuse the others; Finish
//! waits for what is in progress.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use hawser_replicate::Target;
use hawser_replicate::proto::{
    Begin, BlockAck, BlockHeader, BlockStatus, CommitAck, CommitFile, CommitStatus, CompressPolicy,
    EntryKind, Extent, Finish, FinishReport, JobOptions, ManifestAnswer, ManifestBatch,
    ManifestEntry, PROTOCOL_VERSION, RefusalKind, Verdict, block_digest,
};
use hawser_replicate::testing::{TempDir, random_bytes, snapshot};

const BLOCK: u32 = 4096;
const THREADS: usize = 4;

struct File {
    id: u32,
    path: String,
    content: Vec<u8>,
    /// Data extents (`None`: all of it).
    extents: Option<Vec<Extent>>,
}

/// Files of one piece, of many pieces, a sparse one, an all-hole one and an empty one
/// (these last two have no block: their Commit creates them).
fn files() -> Vec<File> {
    let mut files = Vec::new();
    for i in 0..96u32 {
        let len = match i % 4 {
            0 => 100 + i as usize * 7,
            1 => BLOCK as usize,
            2 => 3 * BLOCK as usize + 123,
            _ => 9 * BLOCK as usize + i as usize,
        };
        files.push(File {
            id: i,
            path: format!("d{}/f{i}.bin", i % 3),
            content: random_bytes(u64::from(i) + 1, len),
            extents: None,
        });
    }
    let mut sparse = vec![0u8; 10 * BLOCK as usize];
    sparse[2 * BLOCK as usize..3 * BLOCK as usize].copy_from_slice(&random_bytes(77, 4096));
    sparse[7 * BLOCK as usize..7 * BLOCK as usize + 10].copy_from_slice(&[9; 10]);
    files.push(File {
        id: 200,
        path: "sparse.bin".into(),
        content: sparse,
        extents: Some(vec![
            Extent {
                offset: 2 * u64::from(BLOCK),
                len: u64::from(BLOCK),
            },
            Extent {
                offset: 7 * u64::from(BLOCK),
                len: 10,
            },
        ]),
    });
    files.push(File {
        id: 201,
        path: "holes.bin".into(),
        content: vec![0; 50_000],
        extents: Some(Vec::new()),
    });
    files.push(File {
        id: 202,
        path: "d1/empty.bin".into(),
        content: Vec::new(),
        extents: None,
    });
    files
}

fn pieces(file: &File) -> Vec<(u64, usize)> {
    let extents = file.extents.clone().unwrap_or_else(|| {
        vec![Extent {
            offset: 0,
            len: file.content.len() as u64,
        }]
    });
    let mut out = Vec::new();
    for e in extents {
        let mut offset = e.offset;
        while offset < e.offset + e.len {
            let next = ((offset / u64::from(BLOCK)) + 1) * u64::from(BLOCK);
            let end = next.min(e.offset + e.len);
            out.push((offset, (end - offset) as usize));
            offset = end;
        }
    }
    out
}

/// The whole-file digest of a Commit, computed here from docs/PROTOCOL.md's definition:
/// xxh3-128 over the size and each piece's offset, length and xxh3-64.
fn file_digest(file: &File) -> u128 {
    let mut h = hawser_wire::xxh3::Hasher128::new();
    h.update(&(file.content.len() as u64).to_be_bytes());
    for (offset, len) in pieces(file) {
        let data = &file.content[offset as usize..offset as usize + len];
        h.update(&offset.to_be_bytes());
        h.update(&(len as u32).to_be_bytes());
        h.update(&hawser_wire::xxh3::hash64(data).to_be_bytes());
    }
    h.digest128()
}

fn call(target: &Target, body: BytesMut) -> Bytes {
    target
        .handle_concurrent(&body.freeze())
        .expect("request answered")
}

fn begin(target: &Target) {
    let mut out = BytesMut::new();
    Begin {
        version: PROTOCOL_VERSION,
        job_id: 5,
        options: JobOptions {
            verify: true,
            compress: CompressPolicy::Off,
            block_size: BLOCK,
            ..JobOptions::default()
        },
        dest: b"replica",
    }
    .encode(&mut out)
    .unwrap();
    call(target, out);
}

fn manifest(target: &Target, files: &[File]) {
    let entries: Vec<ManifestEntry<'_>> = files
        .iter()
        .map(|f| ManifestEntry {
            extents: f.extents.clone(),
            ..file_entry(f.id, &f.path, f.content.len() as u64)
        })
        .collect();
    answer_batch(target, entries, |answer| {
        for (entry, file) in answer.entries.iter().zip(files) {
            assert_eq!(entry.file_id, file.id);
            assert!(
                matches!(entry.verdict, Verdict::NeedAll),
                "{}: {:?}",
                file.path,
                entry.verdict
            );
        }
    });
}

/// Sends a Manifest batch of `entries` and hands the target's answer, one verdict per
/// entry, to `check`.
fn answer_batch(
    target: &Target,
    entries: Vec<ManifestEntry<'_>>,
    check: impl FnOnce(&ManifestAnswer<'_>),
) {
    let count = entries.len();
    let mut out = BytesMut::new();
    ManifestBatch { entries }.encode(&mut out).unwrap();
    let answer = call(target, out);
    let answer = ManifestAnswer::decode(&answer).unwrap();
    assert_eq!(answer.entries.len(), count);
    check(&answer);
}

/// A file entry of `size` bytes whose data comes in blocks.
fn file_entry(file_id: u32, path: &str, size: u64) -> ManifestEntry<'_> {
    ManifestEntry {
        file_id,
        path: path.as_bytes(),
        kind: EntryKind::File,
        mode: 0o640,
        mtime_ns: 1_600_000_000_123_456_789,
        size,
        symlink_target: b"",
        extents: None,
        content_hash: None,
        inline: None,
    }
}

fn block(target: &Target, file: &File, offset: u64, len: usize, corrupt: bool) -> BlockStatus {
    let mut data = file.content[offset as usize..offset as usize + len].to_vec();
    let digest = block_digest(&data);
    if corrupt {
        data[0] ^= 0x55;
    }
    let mut out = BytesMut::new();
    BlockHeader {
        file_id: file.id,
        offset,
        digest,
    }
    .encode(&mut out);
    out.extend_from_slice(&data);
    let ack = BlockAck::decode(&call(target, out)).unwrap();
    assert_eq!((ack.file_id, ack.offset), (file.id, offset));
    ack.status
}

fn commit(target: &Target, file: &File, content_hash: u128) -> CommitStatus {
    let mut out = BytesMut::new();
    CommitFile {
        file_id: file.id,
        size: file.content.len() as u64,
        content_hash,
        mode: 0o640,
        mtime_ns: 1_600_000_000_123_456_789,
    }
    .encode(&mut out);
    let ack = CommitAck::decode(&call(target, out)).unwrap();
    assert_eq!(ack.file_id, file.id);
    ack.status
}

fn finish(target: &Target) -> FinishReport {
    let mut out = BytesMut::new();
    Finish.encode(&mut out);
    FinishReport::decode(&call(target, out)).unwrap()
}

#[test]
fn blocks_and_commits_of_many_files_from_several_threads_end_byte_identical() {
    let dst = TempDir::new("concurrent");
    let target = Target::new(dst.path()).unwrap();
    let files = files();
    begin(&target);
    let (first, second) = files.split_at(files.len() / 2);
    manifest(&target, first);
    manifest(&target, second);

    // Every block of every file, interleaved so that each thread takes blocks of every
    // file, several of one file at once, in an order far from the file order.
    let mut work: Vec<(usize, u64, usize)> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        for (offset, len) in pieces(f) {
            work.push((i, offset, len));
        }
    }
    let n = work.len();
    let order: Vec<usize> = (0..n).map(|k| (k * 7919 + 13) % n).collect();
    assert_eq!(
        order.iter().collect::<std::collections::HashSet<_>>().len(),
        n,
        "a permutation"
    );
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (target, files, work, order, next) = (&target, &files, &work, &order, &next);
            s.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&w) = order.get(k) else { break };
                    let (i, offset, len) = work[w];
                    // Now and then a damaged copy first: refused, and the hash unharmed.
                    if (k + t) % 11 == 0 {
                        assert_eq!(
                            block(target, &files[i], offset, len, true),
                            BlockStatus::DigestMismatch
                        );
                    }
                    assert_eq!(
                        block(target, &files[i], offset, len, false),
                        BlockStatus::Written
                    );
                }
            });
        }
    });

    // A wrong whole-file hash is refused (the file is then gone from the job), every
    // other file commits, from several threads at once.
    let wrong = &files[5];
    assert_eq!(
        commit(&target, wrong, file_digest(wrong) ^ 1),
        CommitStatus::ContentMismatch
    );
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let (target, files, next) = (&target, &files, &next);
            s.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(k) else { break };
                    if f.id == wrong.id {
                        continue;
                    }
                    let hash = file_digest(f);
                    assert_eq!(
                        commit(target, f, hash),
                        CommitStatus::Committed,
                        "{}",
                        f.path
                    );
                }
            });
        }
    });

    let report = finish(&target);
    assert_eq!(report.files_written, files.len() as u64 - 1);
    let data: u64 = files
        .iter()
        .flat_map(pieces)
        .map(|(_, len)| len as u64)
        .sum();
    assert_eq!(report.bytes_received, data);

    let replica = dst.path().join("replica");
    for f in &files {
        let path = replica.join(&f.path);
        if f.id == wrong.id {
            assert!(!path.exists(), "{} committed with a wrong hash", f.path);
            continue;
        }
        assert!(
            std::fs::read(&path).unwrap() == f.content,
            "{} differs",
            f.path
        );
    }
    // Nothing partial is left but the refused file's leftovers (none: it was removed).
    let left: Vec<_> = snapshot(&replica)
        .into_keys()
        .filter(|p| p.contains(".hawser-partial"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn requests_racing_finish_are_either_done_before_it_or_find_no_job() {
    let dst = TempDir::new("concurrent-finish");
    let target = Target::new(dst.path()).unwrap();
    let files = files();
    begin(&target);
    manifest(&target, &files);
    let written = AtomicUsize::new(0);
    let report = std::thread::scope(|s| {
        for t in 0..THREADS {
            let (target, files, written) = (&target, &files, &written);
            s.spawn(move || {
                for f in files.iter().skip(t).step_by(THREADS) {
                    for (offset, len) in pieces(f) {
                        let mut out = BytesMut::new();
                        let data = &f.content[offset as usize..offset as usize + len];
                        BlockHeader {
                            file_id: f.id,
                            offset,
                            digest: block_digest(data),
                        }
                        .encode(&mut out);
                        out.extend_from_slice(data);
                        match target.handle_concurrent(&out.freeze()) {
                            Ok(ack) => {
                                let ack = BlockAck::decode(&ack).unwrap();
                                assert_eq!(ack.status, BlockStatus::Written);
                                written.fetch_add(len, Ordering::Relaxed);
                            }
                            Err(e) => {
                                assert_eq!(e.type_name(), "hawser.replicate.NoJob", "{e}");
                                return;
                            }
                        }
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        finish(&target)
    });
    // Every block acknowledged was counted by Finish: none was still being written.
    assert_eq!(
        report.bytes_received,
        written.load(Ordering::Relaxed) as u64
    );
    assert_eq!(report.files_written, 0);
}

#[test]
fn inline_batches_from_several_threads_write_every_good_file_and_refuse_the_bad() {
    let dst = TempDir::new("concurrent-inline");
    let target = Target::new(dst.path()).unwrap();
    begin(&target);
    const BATCHES: u32 = 8;
    const PER_BATCH: u32 = 40;
    // Every seventh file's digest is wrong: refused, and nothing of it left in place.
    let bad = |id: u32| id % 7 == 3;
    let content = |id: u32| random_bytes(u64::from(id) + 1000, 50 + id as usize * 13);
    std::thread::scope(|s| {
        for t in 0..THREADS as u32 {
            let target = &target;
            s.spawn(move || {
                for batch in (t..BATCHES).step_by(THREADS) {
                    let ids: Vec<u32> = (batch * PER_BATCH..(batch + 1) * PER_BATCH).collect();
                    let paths: Vec<String> =
                        ids.iter().map(|id| format!("d{}/i{id}", id % 5)).collect();
                    let contents: Vec<Vec<u8>> = ids.iter().map(|&id| content(id)).collect();
                    let entries = ids
                        .iter()
                        .zip(&paths)
                        .zip(&contents)
                        .map(|((&id, path), data)| ManifestEntry {
                            content_hash: Some(
                                hawser_wire::xxh3::hash128(data) ^ u128::from(bad(id)),
                            ),
                            inline: Some(data),
                            ..file_entry(id, path, data.len() as u64)
                        })
                        .collect();
                    answer_batch(target, entries, |answer| {
                        for (entry, &id) in answer.entries.iter().zip(&ids) {
                            assert_eq!(entry.file_id, id);
                            if bad(id) {
                                assert!(
                                    matches!(
                                        entry.verdict,
                                        Verdict::Refused {
                                            kind: RefusalKind::ContentMismatch,
                                            ..
                                        }
                                    ),
                                    "{id}: {:?}",
                                    entry.verdict
                                );
                            } else {
                                assert!(matches!(entry.verdict, Verdict::Done), "{id}");
                            }
                        }
                    });
                }
            });
        }
    });
    let report = finish(&target);
    let good: Vec<u32> = (0..BATCHES * PER_BATCH).filter(|&id| !bad(id)).collect();
    assert_eq!(report.files_written, good.len() as u64);
    assert_eq!(
        report.refused,
        u64::from(BATCHES * PER_BATCH) - good.len() as u64
    );
    let tree = snapshot(&dst.path().join("replica"));
    let files: Vec<&String> = tree.keys().filter(|k| k.contains("/i")).collect();
    assert_eq!(files.len(), good.len(), "{files:?}");
    for id in good {
        let path = dst.path().join(format!("replica/d{}/i{id}", id % 5));
        assert_eq!(std::fs::read(&path).unwrap(), content(id), "{id}");
    }
}
