//! End-to-end replication of whole trees through the in-memory transport.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use hawser_replicate::proto::{
    Begin, EntryKind, JobOptions, ManifestAnswer, ManifestBatch, ManifestEntry, PROTOCOL_VERSION,
    Verdict,
};
use hawser_replicate::testing::{
    SPARSE_SIZE, TempDir, assert_same_tree, build_tree, random_bytes, set_mtime, snapshot,
};
use hawser_replicate::{
    FailureReason, MemoryTransport, RefusalKind, ReplicateError, Report, Source, SourceConfig,
    Target, TransportError, WriteMode, run,
};

const BLOCK: u32 = 64 * 1024;

fn config() -> SourceConfig {
    let mut config = SourceConfig::default();
    config.options.block_size = BLOCK;
    config.window_blocks = 4;
    config.batch_bytes = 16 * 1024;
    config.dest = "replica".into();
    config
}

fn contents_of(dir: &Path) -> PathBuf {
    PathBuf::from(format!("{}/", dir.display()))
}

fn push(src: &Path, dst: &Path, config: SourceConfig, seed: u64) -> Result<Report, ReplicateError> {
    let source = Source::new(config, &[contents_of(src)])?;
    let mut transport = MemoryTransport::new(Target::new(dst).unwrap()).shuffled(seed);
    run(source, &mut transport)
}

fn no_partials_left(dir: &Path) {
    for path in snapshot(dir).keys() {
        assert!(!path.contains(".hawser-partial"), "left behind: {path}");
    }
}

#[test]
fn a_tree_with_every_kind_of_entry_arrives_identical() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    build_tree(src.path(), BLOCK as usize);
    let report = push(src.path(), dst.path(), config(), 7).unwrap();
    let replica = dst.path().join("replica");
    assert_same_tree(src.path(), &replica);
    no_partials_left(dst.path());

    // Sparse stays sparse: only the data regions take space.
    let sparse = std::fs::metadata(replica.join("sparse.img")).unwrap();
    assert_eq!(sparse.len(), SPARSE_SIZE);
    assert!(
        sparse.blocks() * 512 < 4 << 20,
        "sparse file takes {} bytes",
        sparse.blocks() * 512
    );

    // 300 small + deep.txt + odd_perms + private + inside + empty_file + large + sparse.
    assert_eq!(report.files, 307);
    assert_eq!(report.symlinks, 3);
    assert!(report.dirs >= 6);
    let data: u64 = 100_000 + 5000 + u64::from(BLOCK) * 5 + 1234;
    assert!(
        report.bytes_sent >= data && report.bytes_sent < data + 1_000_000,
        "{}",
        report.bytes_sent
    );
    let rtt = report.block_rtt();
    assert!(rtt.p50 > 0 && rtt.p50 <= rtt.p99 && rtt.p99 <= rtt.max);
    assert!(
        report.buffers_allocated <= 4,
        "pool allocated {} buffers",
        report.buffers_allocated
    );
    let target = report.target.unwrap();
    assert_eq!(target.files_written, 307);
    assert_eq!(target.refused, 0);
    assert!(report.duration.as_nanos() > 0);
}

/// Blocks of 1 MiB are large enough to be written past the page cache (O_DIRECT where
/// the file system takes it, with the ragged ends of the last block and of the sparse
/// file's extents through the cache); the buffered mode writes them all through it. Both
/// arrive identical and sparse stays sparse.
#[test]
fn large_blocks_arrive_identical_written_directly_or_through_the_cache() {
    const LARGE_BLOCK: u32 = 1 << 20;
    let src = TempDir::new("repl-src");
    build_tree(src.path(), LARGE_BLOCK as usize);
    for (seed, mode) in [(11, WriteMode::Direct), (12, WriteMode::Buffered)] {
        let dst = TempDir::new("repl-dst");
        let mut config = config();
        config.options.block_size = LARGE_BLOCK;
        let source = Source::new(config, &[contents_of(src.path())]).unwrap();
        let target = Target::new(dst.path()).unwrap().with_write_mode(mode);
        let mut transport = MemoryTransport::new(target).shuffled(seed);
        let report = run(source, &mut transport).unwrap();
        let replica = dst.path().join("replica");
        assert_same_tree(src.path(), &replica);
        no_partials_left(dst.path());
        assert_eq!(report.target.unwrap().files_written, 307, "{mode:?}");
        let sparse = std::fs::metadata(replica.join("sparse.img")).unwrap();
        assert!(
            sparse.blocks() * 512 < 4 << 20,
            "{mode:?}: sparse file takes {} bytes",
            sparse.blocks() * 512
        );
    }
}

/// Written directly, a file without holes is allocated whole when it opens; one with
/// holes is not, and its holes stay holes even where its pieces are large.
#[test]
fn a_sparse_file_with_large_pieces_keeps_its_holes_beside_a_dense_one() {
    use std::os::unix::fs::FileExt;
    const LARGE_BLOCK: u32 = 1 << 20;
    let src = TempDir::new("repl-src");
    let sparse = std::fs::File::create(src.path().join("sparse.img")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    sparse
        .write_all_at(&random_bytes(3, 3 << 20), 20 << 20)
        .unwrap();
    drop(sparse);
    std::fs::write(
        src.path().join("dense.bin"),
        random_bytes(4, (5 << 20) + 123),
    )
    .unwrap();
    let dst = TempDir::new("repl-dst");
    let mut config = config();
    config.options.block_size = LARGE_BLOCK;
    let source = Source::new(config, &[contents_of(src.path())]).unwrap();
    let target = Target::new(dst.path())
        .unwrap()
        .with_write_mode(WriteMode::Direct);
    let mut transport = MemoryTransport::new(target).shuffled(5);
    run(source, &mut transport).unwrap();
    let replica = dst.path().join("replica");
    assert_same_tree(src.path(), &replica);
    no_partials_left(dst.path());
    let sparse = std::fs::metadata(replica.join("sparse.img")).unwrap();
    assert_eq!(sparse.len(), 64 << 20);
    assert!(
        sparse.blocks() * 512 < 8 << 20,
        "the sparse file takes {} bytes",
        sparse.blocks() * 512
    );
}

#[test]
fn a_second_run_sends_no_data() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    build_tree(src.path(), BLOCK as usize);
    push(src.path(), dst.path(), config(), 1).unwrap();
    let again = push(src.path(), dst.path(), config(), 2).unwrap();
    assert_eq!(again.bytes_sent, 0);
    assert_eq!(again.files, 0);
    assert_eq!(again.up_to_date as usize, snapshot(src.path()).len());
    assert_same_tree(src.path(), &dst.path().join("replica"));
}

#[test]
fn checksum_compares_content_instead_of_size_and_mtime() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    build_tree(src.path(), BLOCK as usize);
    push(src.path(), dst.path(), config(), 3).unwrap();
    let replica = dst.path().join("replica");

    // Same size and mtime, other content: the quick check is fooled, --checksum is not.
    let victim = replica.join("large.bin");
    let mut data = std::fs::read(&victim).unwrap();
    data[100] ^= 0xFF;
    std::fs::write(&victim, &data).unwrap();
    set_mtime(&victim, 1_500_000_000, 1);
    let quick = push(src.path(), dst.path(), config(), 4).unwrap();
    assert_eq!(quick.files, 0);
    assert_ne!(
        std::fs::read(&victim).unwrap(),
        std::fs::read(src.path().join("large.bin")).unwrap()
    );

    // Another file with the same content but a new mtime: not sent again under
    // --checksum, only its mtime fixed.
    set_mtime(&replica.join("a/b/c/deep.txt"), 5, 0);
    let mut checked = config();
    checked.options.checksum = true;
    let report = push(src.path(), dst.path(), checked, 5).unwrap();
    assert_eq!(report.files, 1, "only the changed file is written");
    assert_eq!(report.bytes_sent, u64::from(BLOCK) * 5 + 1234);
    assert_same_tree(src.path(), &replica);
}

#[test]
fn delete_removes_what_the_source_no_longer_has() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    build_tree(src.path(), BLOCK as usize);
    push(src.path(), dst.path(), config(), 6).unwrap();
    let replica = dst.path().join("replica");
    std::fs::write(replica.join("a/stale.txt"), b"old").unwrap();
    std::fs::create_dir_all(replica.join("gone/deeper")).unwrap();
    std::fs::write(replica.join("gone/deeper/x"), b"x").unwrap();
    std::os::unix::fs::symlink("/etc", replica.join("stale_link")).unwrap();

    // Without --delete, extra entries stay.
    push(src.path(), dst.path(), config(), 7).unwrap();
    assert!(replica.join("a/stale.txt").exists());

    // Dry run: listed, not removed.
    let mut dry = config();
    dry.options.delete = true;
    dry.options.dry_run = true;
    let report = push(src.path(), dst.path(), dry, 8).unwrap();
    assert_eq!(report.deleted, 3);
    assert!(replica.join("gone/deeper/x").exists());

    let mut delete = config();
    delete.options.delete = true;
    let report = push(src.path(), dst.path(), delete, 9).unwrap();
    assert_eq!(report.deleted, 3);
    assert_eq!(
        report.deleted_paths,
        vec!["a/stale.txt", "gone", "stale_link"]
    );
    assert_same_tree(src.path(), &replica);
    assert!(
        std::fs::symlink_metadata("/etc").unwrap().is_dir(),
        "the link was removed, not followed"
    );
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    build_tree(src.path(), BLOCK as usize);
    let mut dry = config();
    dry.options.dry_run = true;
    let report = push(src.path(), dst.path(), dry, 10).unwrap();
    assert_eq!(report.bytes_sent - report.bytes_sent, 0);
    assert_eq!(report.blocks_sent, 0);
    assert!(report.would_change.contains(&"large.bin".to_owned()));
    assert!(report.would_change.contains(&"empty_dir".to_owned()));
    assert!(
        snapshot(dst.path()).is_empty(),
        "a dry run wrote {:?}",
        snapshot(dst.path())
    );
}

#[test]
fn excluded_paths_are_not_sent() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    build_tree(src.path(), BLOCK as usize);
    let mut config = config();
    config.excludes = vec!["many".into(), "*.img".into(), "a/b/c/*.txt".into()];
    push(src.path(), dst.path(), config, 11).unwrap();
    let got = snapshot(&dst.path().join("replica"));
    assert!(
        !got.contains_key("many")
            && !got.contains_key("sparse.img")
            && !got.contains_key("a/b/c/deep.txt")
    );
    assert!(got.contains_key("a/b/c") && got.contains_key("large.bin"));
}

#[test]
fn a_single_file_and_a_named_directory_root() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    std::fs::create_dir(src.path().join("dir")).unwrap();
    std::fs::write(src.path().join("dir/in"), b"in").unwrap();
    std::fs::write(src.path().join("one"), random_bytes(9, 300_000)).unwrap();
    let mut config = config();
    config.dest = "x/y".into();
    let source = Source::new(config, &[src.path().join("dir"), src.path().join("one")]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(dst.path()).unwrap());
    run(source, &mut transport).unwrap();
    assert_eq!(std::fs::read(dst.path().join("x/y/dir/in")).unwrap(), b"in");
    assert_eq!(
        std::fs::read(dst.path().join("x/y/one")).unwrap(),
        random_bytes(9, 300_000)
    );
}

/// Sends one manifest batch straight to a target and returns its answer.
fn answer_for(target: &mut Target, entries: &[ManifestEntry<'_>]) -> Vec<(u32, Verdict<'static>)> {
    let mut body = BytesMut::new();
    ManifestBatch {
        entries: entries.to_vec(),
    }
    .encode(&mut body)
    .unwrap();
    let reply = target.handle(&body).unwrap();
    ManifestAnswer::decode(&reply)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| {
            let verdict = match e.verdict {
                Verdict::Refused { kind, .. } => Verdict::Refused { kind, detail: b"" },
                Verdict::UpToDate => Verdict::UpToDate,
                Verdict::Done => Verdict::Done,
                Verdict::NeedAll => Verdict::NeedAll,
                Verdict::NeedBlocks(b) => Verdict::NeedBlocks(b),
            };
            (e.file_id, verdict)
        })
        .collect()
}

fn begin(target: &mut Target, dest: &[u8]) -> Result<bytes::Bytes, hawser_replicate::TargetError> {
    let mut body = BytesMut::new();
    Begin {
        version: PROTOCOL_VERSION,
        job_id: 1,
        options: JobOptions::default(),
        dest,
    }
    .encode(&mut body)
    .unwrap();
    target.handle(&body)
}

fn file_entry<'a>(file_id: u32, path: &'a [u8], data: &'a [u8]) -> ManifestEntry<'a> {
    ManifestEntry {
        file_id,
        path,
        kind: EntryKind::File,
        mode: 0o644,
        mtime_ns: 0,
        size: data.len() as u64,
        symlink_target: b"",
        extents: None,
        content_hash: Some(hawser_wire::xxh3::hash128(data)),
        inline: Some(data),
    }
}

#[test]
fn path_escapes_are_refused_with_a_typed_reason() {
    let dst = TempDir::new("repl-dst");
    let outside = TempDir::new("repl-outside");
    let root = dst.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // A symlink inside the root pointing out of it.
    std::os::unix::fs::symlink(outside.path(), root.join("evil")).unwrap();
    let mut target = Target::new(&root).unwrap();

    // The destination itself.
    for (dest, type_name) in [
        (&b"../x"[..], "hawser.replicate.DestinationRefused"),
        (b"/abs", "hawser.replicate.DestinationRefused"),
        (b"evil", "hawser.replicate.DestinationRefused"),
    ] {
        let err = begin(&mut target, dest).unwrap_err();
        assert_eq!(err.type_name(), type_name, "{err}");
    }

    begin(&mut target, b"").unwrap();
    let answers = answer_for(
        &mut target,
        &[
            file_entry(1, b"/etc/passwd", b"x"),
            file_entry(2, b"../escape", b"x"),
            file_entry(3, b"a/../../escape", b"x"),
            file_entry(4, b"evil/planted", b"x"),
            file_entry(5, b"evil/deeper/planted", b"x"),
            file_entry(6, b"ok/fine", b"fine"),
            file_entry(7, b".hawser-partial/x", b"x"),
            file_entry(8, b"a//b", b"x"),
        ],
    );
    let refused = |kind| Verdict::Refused { kind, detail: b"" };
    assert_eq!(
        answers,
        vec![
            (1, refused(RefusalKind::AbsolutePath)),
            (2, refused(RefusalKind::ParentComponent)),
            (3, refused(RefusalKind::ParentComponent)),
            (4, refused(RefusalKind::SymlinkEscape)),
            (5, refused(RefusalKind::SymlinkEscape)),
            (6, Verdict::Done),
            (7, refused(RefusalKind::InvalidPath)),
            (8, refused(RefusalKind::InvalidPath)),
        ]
    );
    assert!(
        snapshot(outside.path()).is_empty(),
        "something escaped: {:?}",
        snapshot(outside.path())
    );
    assert!(!dst.path().join("escape").exists());
    assert_eq!(std::fs::read(root.join("ok/fine")).unwrap(), b"fine");

    // A symlink entry replaces an existing one; it is never written through.
    let link = ManifestEntry {
        kind: EntryKind::Symlink,
        size: 0,
        symlink_target: b"/etc/shadow",
        content_hash: None,
        inline: None,
        ..file_entry(9, b"evil", b"")
    };
    assert_eq!(answer_for(&mut target, &[link]), vec![(9, Verdict::Done)]);
    assert_eq!(
        std::fs::read_link(root.join("evil")).unwrap(),
        Path::new("/etc/shadow")
    );
    // One job names a path once: a second entry for it is refused, whatever its kind.
    assert_eq!(
        answer_for(&mut target, &[file_entry(10, b"evil", b"plain")]),
        vec![(10, refused(RefusalKind::DuplicatePath))]
    );
    // And in a job of its own, a file entry at a symlink's path replaces the link, not
    // its target.
    begin(&mut target, b"").unwrap();
    assert_eq!(
        answer_for(&mut target, &[file_entry(10, b"evil", b"plain")]),
        vec![(10, Verdict::Done)]
    );
    assert!(
        std::fs::symlink_metadata(root.join("evil"))
            .unwrap()
            .is_file()
    );
    assert!(snapshot(outside.path()).is_empty());
}

#[test]
fn refusals_travel_back_to_the_source_as_entry_failures() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    std::fs::create_dir_all(src.path().join("d")).unwrap();
    std::fs::write(src.path().join("d/file"), b"data").unwrap();
    std::fs::write(src.path().join("top"), b"top").unwrap();
    // On the target, `replica/d` is a symlink leading out.
    let outside = TempDir::new("repl-outside");
    std::fs::create_dir_all(dst.path().join("replica")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dst.path().join("replica/d")).unwrap();
    // The source's directory entry `d` replaces the link before `d/file` is written:
    // nothing escapes, and the job succeeds.
    push(src.path(), dst.path(), config(), 12).unwrap();
    assert!(
        std::fs::symlink_metadata(dst.path().join("replica/d"))
            .unwrap()
            .is_dir()
    );
    assert!(snapshot(outside.path()).is_empty());

    // A source name the target reserves is refused; the rest of the job goes on, and
    // the source learns which entry failed and why.
    std::fs::write(src.path().join(".hawser-partial"), b"reserved").unwrap();
    let err = push(src.path(), dst.path(), config(), 13).unwrap_err();
    let ReplicateError::Incomplete { failures, report } = err else {
        panic!("{err}")
    };
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].path, ".hawser-partial");
    assert!(matches!(
        failures[0].reason,
        FailureReason::Refused {
            kind: RefusalKind::InvalidPath,
            ..
        }
    ));
    assert_eq!(report.target.unwrap().refused, 1);
    assert_eq!(
        std::fs::read(dst.path().join("replica/d/file")).unwrap(),
        b"data"
    );
}

#[test]
fn malformed_requests_are_remote_errors_not_panics() {
    let dst = TempDir::new("repl-dst");
    let mut target = Target::new(dst.path()).unwrap();
    assert_eq!(
        target.handle(&[0x02, 0, 0, 0, 0]).unwrap_err().type_name(),
        "hawser.replicate.NoJob"
    );
    assert_eq!(
        target.handle(&[0x77]).unwrap_err().type_name(),
        "hawser.replicate.BadMessage"
    );
    begin(&mut target, b"").unwrap();
    assert_eq!(
        target
            .handle(&[
                0x03, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
            ])
            .unwrap_err()
            .type_name(),
        "hawser.replicate.UnknownBlock"
    );
    let _ = TransportError::Disconnected;
}

#[test]
fn verify_and_fsync_round_trip_and_corrupted_blocks_are_sent_again() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    build_tree(src.path(), BLOCK as usize);
    let mut config = config();
    config.options.verify = true;
    config.options.fsync = true;
    let source = Source::new(config, &[contents_of(src.path())]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(dst.path()).unwrap())
        .shuffled(21)
        .corrupting_blocks(3);
    let report = run(source, &mut transport).unwrap();
    assert_same_tree(src.path(), &dst.path().join("replica"));
    assert!(
        report.block_retries >= 2,
        "retries: {}",
        report.block_retries
    );
    // large.bin: 5 blocks and a tail; sparse.img: two pieces and one.
    assert_eq!(report.blocks_sent, 5 + 1 + 2 + 1 + report.block_retries);
}

#[test]
fn many_small_files_cost_few_requests() {
    let src = TempDir::new("repl-src");
    let dst = TempDir::new("repl-dst");
    for i in 0..2000u64 {
        std::fs::write(
            src.path().join(format!("f{i:04}")),
            random_bytes(i, 100 + (i as usize % 900)),
        )
        .unwrap();
    }
    let mut config = config();
    config.batch_bytes = 256 * 1024;
    let source = Source::new(config.clone(), &[contents_of(src.path())]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(dst.path()).unwrap());
    let report = run(source, &mut transport).unwrap();
    assert_eq!(report.files, 2000);
    // New destination: data inline in a handful of batches, no request per file.
    assert!(
        transport.requests() < 20,
        "{} requests",
        transport.requests()
    );
    assert_same_tree(src.path(), &dst.path().join("replica"));

    // Existing destination, every file changed: the target asks, blocks follow; still
    // pipelined (one block each, never a round trip per file before the next is sent).
    for i in 0..2000u64 {
        std::fs::write(
            src.path().join(format!("f{i:04}")),
            random_bytes(i + 7, 100 + (i as usize % 900)),
        )
        .unwrap();
    }
    let source = Source::new(config, &[contents_of(src.path())]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(dst.path()).unwrap());
    let report = run(source, &mut transport).unwrap();
    assert_eq!(report.files, 2000);
    assert_same_tree(src.path(), &dst.path().join("replica"));
}
