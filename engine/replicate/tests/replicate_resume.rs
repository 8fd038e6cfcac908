//! Resume: a job interrupted mid-file (the target state machine dropped, as if killed)
//! is continued with `resume`, sending only the missing blocks.

use std::io::Write;
use std::path::{Path, PathBuf};

use hawser_replicate::testing::{TempDir, assert_same_tree, random_bytes, set_mtime};
use hawser_replicate::{
    MemoryTransport, ReplicateError, Source, SourceConfig, Target, TransportError, run,
};

const BLOCK: u32 = 64 * 1024;
const LARGE: usize = BLOCK as usize * 20 + 777;

fn config(resume: bool) -> SourceConfig {
    let mut config = SourceConfig::default();
    config.options.block_size = BLOCK;
    config.options.resume = resume;
    config.window_blocks = 4;
    config.dest = "replica".into();
    config
}

fn tree(src: &Path) {
    std::fs::create_dir(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/small"), b"small file").unwrap();
    std::fs::write(src.join("large.bin"), random_bytes(42, LARGE)).unwrap();
    set_mtime(&src.join("large.bin"), 1_600_000_000, 5);
}

fn roots(src: &Path) -> Vec<PathBuf> {
    vec![PathBuf::from(format!("{}/", src.display()))]
}

/// Runs a job that dies after `requests` requests: Begin, one manifest batch, then blocks.
fn interrupted(src: &Path, dst: &Path, requests: u64) {
    let source = Source::new(config(false), &roots(src)).unwrap();
    let mut transport = MemoryTransport::new(Target::new(dst).unwrap()).fail_after(requests);
    let err = run(source, &mut transport).unwrap_err();
    assert!(
        matches!(err, ReplicateError::Transport(TransportError::Disconnected)),
        "{err}"
    );
    assert!(
        transport.into_target().is_none(),
        "the target was dropped mid-file"
    );
}

#[test]
fn an_interrupted_push_resumes_with_only_the_missing_blocks() {
    let src = TempDir::new("resume-src");
    let dst = TempDir::new("resume-dst");
    tree(src.path());
    interrupted(src.path(), dst.path(), 2 + 9);

    let replica = dst.path().join("replica");
    assert!(
        !replica.join("large.bin").exists(),
        "a half file must never be visible"
    );
    let partial = replica.join(".hawser-partial");
    assert!(partial.join("large.bin.part").exists());
    // SIGKILL in the middle of appending a record: a torn tail.
    let mut journal = std::fs::File::options()
        .append(true)
        .open(partial.join("large.bin.journal"))
        .unwrap();
    journal.write_all(&[0xAB; 13]).unwrap();
    drop(journal);

    let source = Source::new(config(true), &roots(src.path())).unwrap();
    let mut transport = MemoryTransport::new(Target::new(dst.path()).unwrap()).shuffled(3);
    let report = run(source, &mut transport).unwrap();
    assert_same_tree(src.path(), &replica);

    let target = report.target.unwrap();
    assert_eq!(
        target.bytes_resumed,
        9 * u64::from(BLOCK),
        "the nine written blocks were kept"
    );
    assert_eq!(report.bytes_sent + target.bytes_resumed, LARGE as u64);
    assert_eq!(
        report.bytes_sent,
        LARGE as u64 - 9 * u64::from(BLOCK),
        "only the missing blocks travel"
    );
    assert!(
        !partial.exists(),
        "partial state is tidied after the commit"
    );
}

#[test]
fn resume_restarts_a_file_that_changed_since() {
    let src = TempDir::new("resume-src");
    let dst = TempDir::new("resume-dst");
    tree(src.path());
    interrupted(src.path(), dst.path(), 2 + 5);
    // The source file changes: its journal no longer applies.
    std::fs::write(src.path().join("large.bin"), random_bytes(43, LARGE)).unwrap();

    let source = Source::new(config(true), &roots(src.path())).unwrap();
    let mut transport = MemoryTransport::new(Target::new(dst.path()).unwrap());
    let report = run(source, &mut transport).unwrap();
    assert_same_tree(src.path(), &dst.path().join("replica"));
    assert_eq!(report.target.unwrap().bytes_resumed, 0);
    assert_eq!(report.bytes_sent, LARGE as u64);
}

#[test]
fn resume_rechecks_journaled_blocks_against_the_data() {
    let src = TempDir::new("resume-src");
    let dst = TempDir::new("resume-dst");
    tree(src.path());
    interrupted(src.path(), dst.path(), 2 + 6);
    // Corrupt a journaled block's bytes on disk (lost write): it must be sent again.
    let part = dst.path().join("replica/.hawser-partial/large.bin.part");
    let file = std::fs::File::options().write(true).open(&part).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0u8; 100], u64::from(BLOCK) + 10).unwrap();
    drop(file);

    let source = Source::new(config(true), &roots(src.path())).unwrap();
    let mut transport = MemoryTransport::new(Target::new(dst.path()).unwrap());
    let report = run(source, &mut transport).unwrap();
    assert_same_tree(src.path(), &dst.path().join("replica"));
    assert_eq!(report.target.unwrap().bytes_resumed, 5 * u64::from(BLOCK));
}
