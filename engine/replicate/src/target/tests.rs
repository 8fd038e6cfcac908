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
