//! A server touches only its root: pushes that try to make the target act outside it,
//! through names the source chooses or through things planted under the root, change
//! nothing outside.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hawser_replicate::testing::{Seen, TempDir, random_bytes, set_mtime, snapshot};
use hawser_replicate::{MemoryTransport, Source, SourceConfig, Target, run};

const BLOCK: u32 = 64 * 1024;

fn config() -> SourceConfig {
    let mut config = SourceConfig::default();
    config.options.block_size = BLOCK;
    config.window_blocks = 4;
    config.dest = "replica".into();
    config
}

fn contents_of(dir: &Path) -> PathBuf {
    PathBuf::from(format!("{}/", dir.display()))
}

/// A directory outside the target's root, with a file in it, and a snapshot of
/// everything about it (the directory itself included).
struct Canary {
    dir: PathBuf,
    before: std::collections::BTreeMap<String, Seen>,
}

impl Canary {
    fn new(base: &Path) -> Self {
        let dir = base.join("outside");
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        std::fs::write(dir.join("victim"), b"keep me").unwrap();
        set_mtime(&dir.join("victim"), 1_234_567_890, 0);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o751)).unwrap();
        let before = Self::look(&dir);
        Canary { dir, before }
    }

    fn look(dir: &Path) -> std::collections::BTreeMap<String, Seen> {
        let mut all = snapshot(dir.parent().unwrap());
        all.retain(|path, _| path == "outside" || path.starts_with("outside/"));
        all
    }

    fn assert_unchanged(&self) {
        assert_eq!(
            Self::look(&self.dir),
            self.before,
            "the canary outside changed"
        );
    }
}

/// Finding: a push whose sources hold a directory `d` and a symlink `d` to a directory
/// outside the root made the target chmod that outside directory at Finish (the
/// directory's metadata was applied by path, following the symlink that replaced it).
#[test]
fn a_directory_and_a_symlink_of_one_name_change_nothing_outside() {
    let base = TempDir::new("root-dirlink");
    let canary = Canary::new(base.path());
    let (first, second, root) = (
        base.path().join("first"),
        base.path().join("second"),
        base.path().join("root"),
    );
    std::fs::create_dir_all(first.join("d")).unwrap();
    std::fs::write(first.join("d/x"), b"x").unwrap();
    std::fs::set_permissions(first.join("d"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    std::os::unix::fs::symlink(&canary.dir, second.join("d")).unwrap();
    std::fs::create_dir_all(&root).unwrap();

    let source = Source::new(config(), &[contents_of(&first), contents_of(&second)]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(&root).unwrap());
    let _ = run(source, &mut transport);
    canary.assert_unchanged();
    // The second `d` was refused: the directory stays, with what was written in it.
    assert!(
        std::fs::symlink_metadata(root.join("replica/d"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(std::fs::read(root.join("replica/d/x")).unwrap(), b"x");
}

/// Finding: a symlink planted at `<dir>/.hawser-partial/<name>.part` (and `.journal`)
/// was written through: the pushed bytes landed outside the root.
#[test]
fn symlinks_planted_in_the_partial_folder_are_not_written_through() {
    let base = TempDir::new("root-planted");
    let canary = Canary::new(base.path());
    let (src, root) = (base.path().join("src"), base.path().join("root"));
    std::fs::create_dir_all(&src).unwrap();
    let big = random_bytes(5, BLOCK as usize * 3 + 17);
    std::fs::write(src.join("big"), &big).unwrap();
    std::fs::write(src.join("small"), b"small").unwrap();
    let partial = root.join("replica/.hawser-partial");
    std::fs::create_dir_all(&partial).unwrap();
    for name in ["big.part", "big.journal", "small.part"] {
        std::os::unix::fs::symlink(canary.dir.join("victim"), partial.join(name)).unwrap();
    }

    let source = Source::new(config(), &[contents_of(&src)]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(&root).unwrap());
    let report = run(source, &mut transport);
    canary.assert_unchanged();
    report.unwrap();
    assert_eq!(std::fs::read(root.join("replica/big")).unwrap(), big);
    assert_eq!(std::fs::read(root.join("replica/small")).unwrap(), b"small");
}

/// A file, or a directory on the way to one, replaced by a symlink between the source's
/// walk and its read is refused, not followed: the outside file's bytes never travel.
#[test]
fn a_source_path_replaced_by_a_symlink_after_the_walk_is_refused_not_followed() {
    for (case, swap) in ["inline file", "file read in blocks", "directory on the way"]
        .into_iter()
        .enumerate()
    {
        let base = TempDir::new("root-swap");
        let canary = Canary::new(base.path());
        let (src, root) = (base.path().join("src"), base.path().join("root"));
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(src.join("small"), b"small").unwrap();
        std::fs::write(src.join("big"), random_bytes(1, BLOCK as usize * 2)).unwrap();
        std::fs::write(src.join("d/big"), random_bytes(2, BLOCK as usize * 2)).unwrap();
        // The outside file, large enough for any of the three to be read in its place.
        std::fs::write(
            canary.dir.join("victim"),
            random_bytes(3, BLOCK as usize * 2),
        )
        .unwrap();
        let victim = std::fs::read(canary.dir.join("victim")).unwrap();
        let source = Source::new(config(), &[contents_of(&src)]).unwrap();
        match case {
            0 => {
                std::fs::remove_file(src.join("small")).unwrap();
                std::os::unix::fs::symlink(canary.dir.join("victim"), src.join("small")).unwrap();
            }
            1 => {
                std::fs::remove_file(src.join("big")).unwrap();
                std::os::unix::fs::symlink(canary.dir.join("victim"), src.join("big")).unwrap();
            }
            _ => {
                std::fs::rename(src.join("d"), src.join("d.moved")).unwrap();
                std::fs::write(canary.dir.join("big"), &victim).unwrap();
                std::os::unix::fs::symlink(&canary.dir, src.join("d")).unwrap();
            }
        }
        let mut transport = MemoryTransport::new(Target::new(&root).unwrap());
        let err = run(source, &mut transport).expect_err(swap);
        assert!(err.to_string().contains("not followed"), "{swap}: {err}");
        for (path, seen) in snapshot(&root) {
            if seen.kind == "file" {
                let data = std::fs::read(root.join(&path)).unwrap();
                assert_ne!(data, victim, "{swap}: {path} holds the outside file");
            }
        }
    }
}

/// Finish applies a directory's mode and mtime through a descriptor of the directory
/// itself: one replaced by a symlink after the manifest is skipped (counted with the
/// refused entries), and what the symlink points at keeps its mode and mtime.
#[test]
fn a_directory_replaced_by_a_symlink_before_finish_is_skipped_and_counted() {
    use bytes::BytesMut;
    use hawser_replicate::proto::{
        Begin, EntryKind, Finish, FinishReport, JobOptions, ManifestBatch, ManifestEntry,
        PROTOCOL_VERSION,
    };
    let base = TempDir::new("root-finish");
    let canary = Canary::new(base.path());
    let root = base.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut target = Target::new(&root).unwrap();
    let mut body = BytesMut::new();
    Begin {
        version: PROTOCOL_VERSION,
        job_id: 1,
        options: JobOptions::default(),
        dest: b"replica",
    }
    .encode(&mut body)
    .unwrap();
    target.handle(&body).unwrap();
    let dir = |path: &'static [u8]| ManifestEntry {
        file_id: path.len() as u32,
        path,
        kind: EntryKind::Dir,
        mode: 0o700,
        mtime_ns: 1_000_000_000,
        size: 0,
        symlink_target: b"",
        extents: None,
        content_hash: None,
        inline: None,
    };
    body.clear();
    ManifestBatch {
        entries: vec![dir(b"d"), dir(b"kept")],
    }
    .encode(&mut body)
    .unwrap();
    target.handle(&body).unwrap();
    let replica = root.join("replica");
    std::fs::rename(replica.join("d"), replica.join("d.moved")).unwrap();
    std::os::unix::fs::symlink(&canary.dir, replica.join("d")).unwrap();
    body.clear();
    Finish.encode(&mut body);
    let report = FinishReport::decode(&target.handle(&body).unwrap()).unwrap();
    canary.assert_unchanged();
    assert_eq!(report.refused, 1, "{report:?}");
    let kept = std::fs::metadata(replica.join("kept")).unwrap();
    assert_eq!(kept.permissions().mode() & 0o7777, 0o700);
}

/// One job names a path once: within a batch and across batches, the second entry is
/// refused as a duplicate, whatever its kind.
#[test]
fn a_path_named_twice_is_refused_the_second_time() {
    use hawser_replicate::{FailureReason, RefusalKind, ReplicateError};
    let base = TempDir::new("root-dup");
    let canary = Canary::new(base.path());
    let (first, second, root) = (
        base.path().join("first"),
        base.path().join("second"),
        base.path().join("root"),
    );
    std::fs::create_dir_all(first.join("d")).unwrap();
    std::fs::write(first.join("d/inside"), b"inside").unwrap();
    std::fs::write(first.join("f"), b"first").unwrap();
    std::fs::create_dir_all(&second).unwrap();
    std::os::unix::fs::symlink(&canary.dir, second.join("d")).unwrap();
    std::fs::write(second.join("f"), b"second").unwrap();
    std::fs::create_dir_all(&root).unwrap();
    for batch_bytes in [1 << 20, 64] {
        let mut config = config();
        config.batch_bytes = batch_bytes;
        let source = Source::new(config, &[contents_of(&first), contents_of(&second)]).unwrap();
        let mut transport = MemoryTransport::new(Target::new(&root).unwrap());
        let err = run(source, &mut transport).unwrap_err();
        let ReplicateError::Incomplete { failures, .. } = err else {
            panic!("{err}")
        };
        let mut refused: Vec<_> = failures
            .iter()
            .map(|f| match &f.reason {
                FailureReason::Refused { kind, .. } => (f.path.as_str(), *kind),
                other => panic!("{other}"),
            })
            .collect();
        refused.sort_unstable_by_key(|(path, _)| *path);
        assert_eq!(
            refused,
            [
                ("d", RefusalKind::DuplicatePath),
                ("f", RefusalKind::DuplicatePath)
            ],
            "batches of {batch_bytes} bytes"
        );
        assert!(
            std::fs::symlink_metadata(root.join("replica/d"))
                .unwrap()
                .is_dir()
        );
        assert_eq!(std::fs::read(root.join("replica/f")).unwrap(), b"first");
        canary.assert_unchanged();
    }
}

/// A 255-byte name (the longest a file system takes) replicates as a file sent inline,
/// a file in blocks with a journal (interrupted and resumed), a symlink and a
/// directory: the partial files' names stay within 255 bytes.
#[test]
fn names_of_255_bytes_replicate() {
    use hawser_replicate::{ReplicateError, TransportError};
    let base = TempDir::new("root-long");
    let (src, root) = (base.path().join("src"), base.path().join("root"));
    let long = |c: char| c.to_string().repeat(255);
    std::fs::create_dir_all(src.join(long('d'))).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(src.join(long('s')), b"small").unwrap();
    std::fs::write(
        src.join(long('d')).join(long('b')),
        random_bytes(7, BLOCK as usize * 6 + 5),
    )
    .unwrap();
    std::os::unix::fs::symlink(long('s'), src.join(long('l'))).unwrap();

    // Interrupted after Begin, the manifest and a few blocks: partial state under long
    // names is left behind.
    let source = Source::new(config(), &[contents_of(&src)]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(&root).unwrap()).fail_after(2 + 4);
    let err = run(source, &mut transport).unwrap_err();
    assert!(
        matches!(err, ReplicateError::Transport(TransportError::Disconnected)),
        "{err}"
    );
    let partial = root.join("replica").join(long('d')).join(".hawser-partial");
    let names: Vec<_> = std::fs::read_dir(&partial)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.len() <= 255), "{names:?}");

    let mut resume = config();
    resume.options.resume = true;
    let source = Source::new(resume, &[contents_of(&src)]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(&root).unwrap());
    let report = run(source, &mut transport).unwrap();
    assert!(report.target.unwrap().bytes_resumed > 0);
    hawser_replicate::testing::assert_same_tree(&src, &root.join("replica"));
}

/// What a job may make the target remember is bounded: paths named, files being written
/// at once; beyond either the request fails with an error naming the limit.
#[test]
fn a_job_beyond_the_targets_limits_is_refused_naming_the_limit() {
    use bytes::BytesMut;
    use hawser_replicate::TargetLimits;
    use hawser_replicate::proto::{
        Begin, BlockHeader, CommitAck, CommitFile, CommitStatus, EntryKind, JobOptions,
        ManifestBatch, ManifestEntry, PROTOCOL_VERSION, block_digest,
    };
    let base = TempDir::new("root-limits");
    let root = base.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let limits = TargetLimits {
        max_entries: 3,
        max_open_files: 1,
        ..TargetLimits::default()
    };
    let mut target = Target::new(&root).unwrap().with_limits(limits);
    let mut body = BytesMut::new();
    let options = JobOptions {
        block_size: 4096,
        ..JobOptions::default()
    };
    Begin {
        version: PROTOCOL_VERSION,
        job_id: 1,
        options,
        dest: b"",
    }
    .encode(&mut body)
    .unwrap();
    target.handle(&body).unwrap();
    let file = |file_id: u32, path: &'static [u8]| ManifestEntry {
        file_id,
        path,
        kind: EntryKind::File,
        mode: 0o644,
        mtime_ns: 0,
        size: 10,
        symlink_target: b"",
        extents: None,
        content_hash: None,
        inline: None,
    };
    let send = |target: &mut Target, build: &dyn Fn(&mut BytesMut)| {
        let mut body = BytesMut::new();
        build(&mut body);
        target.handle(&body)
    };
    send(&mut target, &|b| {
        ManifestBatch {
            entries: vec![file(0, b"a"), file(1, b"b")],
        }
        .encode(b)
        .unwrap()
    })
    .unwrap();
    // Two files in progress where one is allowed: the second's first block fails.
    let data = [7u8; 10];
    let block = |file_id| {
        move |b: &mut BytesMut| {
            BlockHeader {
                file_id,
                offset: 0,
                digest: block_digest(&data),
            }
            .encode(b);
            b.extend_from_slice(&data);
        }
    };
    send(&mut target, &block(0)).unwrap();
    let err = send(&mut target, &block(1)).unwrap_err();
    assert_eq!(err.type_name(), "hawser.replicate.Limit");
    assert!(err.to_string().contains("max_open_files"), "{err}");
    // Once the first is committed, the second may go on.
    let digest = {
        use hawser_wire::xxh3::Hasher128;
        let mut h = Hasher128::new();
        h.update(&10u64.to_be_bytes());
        let mut record = [0u8; 20];
        record[12..].copy_from_slice(&block_digest(&data).to_be_bytes());
        record[8..12].copy_from_slice(&10u32.to_be_bytes());
        h.update(&record);
        h.digest128()
    };
    let ack = send(&mut target, &|b| {
        CommitFile {
            file_id: 0,
            size: 10,
            content_hash: digest,
            mode: 0o600,
            mtime_ns: 0,
        }
        .encode(b)
    })
    .unwrap();
    assert_eq!(
        CommitAck::decode(&ack).unwrap().status,
        CommitStatus::Committed
    );
    send(&mut target, &block(1)).unwrap();
    // Three paths remembered at most: "a", "b", then a third; the fourth fails.
    send(&mut target, &|b| {
        ManifestBatch {
            entries: vec![file(2, b"c")],
        }
        .encode(b)
        .unwrap()
    })
    .unwrap();
    let err = send(&mut target, &|b| {
        ManifestBatch {
            entries: vec![file(3, b"d")],
        }
        .encode(b)
        .unwrap()
    })
    .unwrap_err();
    assert_eq!(err.type_name(), "hawser.replicate.Limit");
    assert!(err.to_string().contains("more than 3 entries"), "{err}");
    assert!(err.to_string().contains("max_job_entries"), "{err}");
}
