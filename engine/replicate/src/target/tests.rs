//! Unit tests of the target that need its insides.

use bytes::BytesMut;

use super::{Target, TargetLimits};
use crate::file_digest;
use crate::proto::{
    Begin, BlockHeader, CommitAck, CommitFile, CommitStatus, EntryKind, JobOptions, ManifestAnswer,
    ManifestBatch, ManifestEntry, PROTOCOL_VERSION, RefusalKind, Verdict, block_digest,
};
use crate::sparse::Piece;

/// Found by the `replicate_target` fuzz target: a Manifest entry may claim millions of
/// pieces (a 60-byte entry claiming 1 TiB in 1 MiB blocks took 35 MB and half a second),
/// and the target keeps a record per piece until the file commits; the entries of a job
/// must not add up past its piece budget. A commit gives its file's pieces back.
#[test]
fn the_pieces_of_a_jobs_waiting_files_are_bounded() {
    let base = std::env::temp_dir().join(format!("hawser-target-pieces-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let mut target = Target::new(&base).unwrap().with_limits(TargetLimits {
        max_job_pieces: 10,
        ..TargetLimits::default()
    });
    let mut body = BytesMut::new();
    let options = JobOptions {
        block_size: 4096,
        ..JobOptions::default()
    };
    Begin {
        version: PROTOCOL_VERSION,
        job_id: 1,
        options,
        dest: b"d",
    }
    .encode(&mut body)
    .unwrap();
    target.handle(&body).unwrap();
    let size = 4 * 4096;
    let entry = |file_id, path| ManifestEntry {
        file_id,
        path,
        kind: EntryKind::File,
        mode: 0o644,
        mtime_ns: 0,
        size,
        symlink_target: b"",
        extents: None,
        content_hash: None,
        inline: None,
    };
    let manifest = |target: &mut Target, entries| {
        let mut body = BytesMut::new();
        ManifestBatch { entries }.encode(&mut body).unwrap();
        let answer = target.handle(&body).unwrap();
        let answer = ManifestAnswer::decode(&answer).unwrap();
        answer
            .entries
            .iter()
            .map(|e| match &e.verdict {
                Verdict::Refused { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let refused = manifest(
        &mut target,
        vec![entry(1, &b"a"[..]), entry(2, b"b"), entry(3, b"c")],
    );
    assert_eq!(refused, [None, None, Some(RefusalKind::TooManyBlocks)]);
    // File 1 arrives and commits: its 4 pieces go back to the budget.
    let data = [7u8; 4096];
    let mut digest = file_digest::FileDigest::new(size);
    for i in 0..4u64 {
        let mut body = BytesMut::new();
        let header = BlockHeader {
            file_id: 1,
            offset: i * 4096,
            digest: block_digest(&data),
        };
        header.encode(&mut body);
        body.extend_from_slice(&data);
        target.handle(&body).unwrap();
        let piece = Piece {
            offset: i * 4096,
            len: 4096,
        };
        digest.piece(piece, block_digest(&data));
    }
    let mut body = BytesMut::new();
    CommitFile {
        file_id: 1,
        size,
        content_hash: digest.finish(),
        mode: 0o644,
        mtime_ns: 0,
    }
    .encode(&mut body);
    let ack = CommitAck::decode(&target.handle(&body).unwrap()).unwrap();
    assert_eq!(ack.status, CommitStatus::Committed);
    let refused = manifest(&mut target, vec![entry(4, &b"e"[..]), entry(5, b"f")]);
    assert_eq!(refused, [None, Some(RefusalKind::TooManyBlocks)]);
    std::fs::remove_dir_all(&base).unwrap();
}

/// Sends the request `encode` writes to `target` and gives back the answer's bytes.
fn send(target: &mut Target, encode: impl FnOnce(&mut BytesMut)) -> bytes::Bytes {
    let mut body = BytesMut::new();
    encode(&mut body);
    target.handle(&body).unwrap()
}

/// The verdicts of a Manifest batch, each as `Done`, `UpToDate`, `NeedAll` or the
/// refusal's kind.
fn verdicts(target: &mut Target, entries: Vec<ManifestEntry<'_>>) -> Vec<String> {
    let answer = send(target, |body| {
        ManifestBatch { entries }.encode(body).unwrap()
    });
    let answer = ManifestAnswer::decode(&answer).unwrap();
    answer
        .entries
        .iter()
        .map(|e| match &e.verdict {
            Verdict::Refused { kind, .. } => format!("{kind:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Begins job `job_id` into `d` with 1 MiB blocks.
fn begin(target: &mut Target, job_id: u128) {
    send(target, |body| {
        Begin {
            version: PROTOCOL_VERSION,
            job_id,
            options: JobOptions {
                block_size: 1 << 20,
                ..JobOptions::default()
            },
            dest: b"d",
        }
        .encode(body)
        .unwrap()
    });
}

/// Sends `data` as the block at offset 0 of `file_id`.
fn send_block(target: &mut Target, file_id: u32, data: &[u8]) {
    send(target, |body| {
        BlockHeader {
            file_id,
            offset: 0,
            digest: block_digest(data),
        }
        .encode(body);
        body.extend_from_slice(data);
    });
}

/// Commits `file_id`, a file whose one piece is `data`.
fn commit_one_piece(target: &mut Target, file_id: u32, data: &[u8]) -> CommitStatus {
    let size = data.len() as u64;
    let mut digest = file_digest::FileDigest::new(size);
    digest.piece(
        Piece {
            offset: 0,
            len: data.len() as u32,
        },
        block_digest(data),
    );
    let ack = send(target, |body| {
        CommitFile {
            file_id,
            size,
            content_hash: digest.finish(),
            mode: 0o640,
            mtime_ns: 0,
        }
        .encode(body)
    });
    CommitAck::decode(&ack).unwrap().status
}

/// The verdicts of a batch naming the directory `sub` (1) and the file `sub/f` (2) of
/// one 4096-byte piece.
fn sub_and_its_file(target: &mut Target) -> Vec<String> {
    verdicts(
        target,
        vec![
            entry(1, b"sub", EntryKind::Dir, None),
            entry(2, b"sub/f", EntryKind::File, None),
        ],
    )
}

fn entry<'a>(
    file_id: u32,
    path: &'a [u8],
    kind: EntryKind,
    inline: Option<&'a [u8]>,
) -> ManifestEntry<'a> {
    ManifestEntry {
        file_id,
        path,
        kind,
        mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
        mtime_ns: 0,
        size: match (kind, inline) {
            (EntryKind::File, Some(data)) => data.len() as u64,
            (EntryKind::File, None) => 4096,
            _ => 0,
        },
        symlink_target: b"",
        extents: None,
        content_hash: inline.map(hawser_wire::xxh3::hash128),
        inline,
    }
}

/// A file of one small piece is written unnamed in its own directory and linked by its
/// Commit (nothing in `.hawser-partial` meanwhile); the entries of a directory the job
/// made are not looked up first, and what another writer puts there meanwhile is
/// replaced (a file) or kept (a directory) rather than failing the entry.
#[test]
fn small_files_are_written_unnamed_and_names_taken_meanwhile_in_fresh_directories_are_replaced() {
    let base = std::env::temp_dir().join(format!("hawser-target-unnamed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let mut target = Target::new(&base).unwrap();
    begin(&mut target, 7);
    let got = sub_and_its_file(&mut target);
    assert_eq!(got, ["Done", "NeedAll"]);
    let data = [5u8; 4096];
    send_block(&mut target, 2, &data);
    let sub = base.join("d/sub");
    let partial_folder = sub.join(crate::target_path::PARTIAL_DIR);
    assert!(
        std::fs::read_dir(&partial_folder).map_or(true, |mut d| d.next().is_none()),
        "nothing named for a file of one small piece before its commit"
    );
    assert!(!sub.join("f").exists());
    // Another writer takes the names meanwhile.
    std::fs::write(sub.join("f"), b"someone else's").unwrap();
    std::fs::write(sub.join("g"), b"someone else's").unwrap();
    std::fs::create_dir(sub.join("x")).unwrap();
    assert_eq!(
        commit_one_piece(&mut target, 2, &data),
        CommitStatus::Committed
    );
    assert_eq!(std::fs::read(sub.join("f")).unwrap(), data);
    let got = verdicts(
        &mut target,
        vec![
            entry(3, b"sub/g", EntryKind::File, Some(b"inline bytes")),
            entry(4, b"sub/x", EntryKind::Dir, None),
        ],
    );
    assert_eq!(got, ["Done", "UpToDate"]);
    assert_eq!(std::fs::read(sub.join("g")).unwrap(), b"inline bytes");
    assert!(sub.join("x").is_dir());
    assert!(
        std::fs::read_dir(&partial_folder).map_or(true, |mut d| d.next().is_none()),
        "the names taken were placed through .hawser-partial and renamed away"
    );
    std::fs::remove_dir_all(&base).unwrap();
}

/// A partial file an interrupted job left under the name of a file now written unnamed is
/// removed once the file is in place (it would otherwise wait for the expiry).
#[test]
fn a_stale_partial_file_goes_when_its_file_is_linked_in_place() {
    let base = std::env::temp_dir().join(format!("hawser-target-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let folder = base.join("d/sub").join(crate::target_path::PARTIAL_DIR);
    std::fs::create_dir_all(&folder).unwrap();
    let stale_name = crate::target_path::temp_name(b"f", super::partial::PART);
    let stale = folder.join(String::from_utf8(stale_name).unwrap());
    std::fs::write(&stale, b"half of an older f").unwrap();
    let mut target = Target::new(&base).unwrap();
    begin(&mut target, 8);
    let got = sub_and_its_file(&mut target);
    assert_eq!(got, ["UpToDate", "NeedAll"]);
    let data = [9u8; 4096];
    send_block(&mut target, 2, &data);
    assert!(stale.exists(), "left alone until the file is in place");
    assert_eq!(
        commit_one_piece(&mut target, 2, &data),
        CommitStatus::Committed
    );
    assert_eq!(std::fs::read(base.join("d/sub/f")).unwrap(), data);
    assert!(!stale.exists());
    std::fs::remove_dir_all(&base).unwrap();
}
