//! Fan-out: one walk and one read of each block feeding the jobs of several targets, in
//! process over memory transports: every copy identical, each block read once, a failing
//! or corrupting target leaving the others whole, resume per target, and a slow target
//! holding the reader to its window.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hawser_replicate::testing::{TempDir, assert_same_tree, build_tree, random_bytes};
use hawser_replicate::{
    Completion, Fanout, FanoutReport, FanoutTransport, MemoryTransport, ReplicateError, Report,
    Request, Source, SourceConfig, Target, Transport, TransportError, run,
};

const BLOCK: u32 = 64 * 1024;
const WINDOW: usize = 4;

fn config() -> SourceConfig {
    let mut config = SourceConfig::default();
    config.options.block_size = BLOCK;
    config.window_blocks = WINDOW;
    config
}

fn contents_of(src: &Path) -> Vec<PathBuf> {
    vec![PathBuf::from(format!("{}/", src.display()))]
}

fn dests(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("replica{i}")).collect()
}

fn memory_targets(roots: &[&TempDir]) -> Vec<MemoryTransport> {
    roots
        .iter()
        .map(|root| MemoryTransport::new(Target::new(root.path()).unwrap()))
        .collect()
}

fn ok(report: &FanoutReport, target: usize) -> &Report {
    match &report.targets[target] {
        Ok(r) => r,
        Err(e) => panic!("target {target} failed: {e}"),
    }
}

/// Each target got every block the reader read, and the reader read each one once.
fn assert_read_once_for(report: &FanoutReport, target: usize) {
    let r = ok(report, target);
    assert_eq!(r.block_retries, 0);
    assert_eq!(
        r.blocks_sent, report.pieces_read,
        "target {target}: one block per piece read"
    );
    assert_eq!(r.bytes_sent, report.bytes_read, "target {target}");
}

#[test]
fn a_tree_goes_to_three_targets_each_block_read_once() {
    let src = TempDir::new("fanout-src");
    let roots = [
        &TempDir::new("fanout-a"),
        &TempDir::new("fanout-b"),
        &TempDir::new("fanout-c"),
    ];
    build_tree(src.path(), BLOCK as usize);
    let mut config = config();
    // Every file as blocks, so that every byte goes through the shared reader.
    config.inline_max = 0;
    let fanout = Fanout::new(config, &dests(3), &contents_of(src.path())).unwrap();
    assert_eq!(fanout.targets(), 3);
    let (files, bytes) = fanout.file_totals();
    let mut transports = memory_targets(&roots);
    transports[1] = MemoryTransport::new(Target::new(roots[1].path()).unwrap()).shuffled(7);
    let report = fanout.run(&mut transports).unwrap();

    for (i, root) in roots.iter().enumerate() {
        assert_same_tree(src.path(), &root.path().join(format!("replica{i}")));
        assert_read_once_for(&report, i);
        assert_eq!(ok(&report, i).files, files);
        assert_eq!(ok(&report, i).bytes_total, bytes);
    }
    assert!(report.bytes_read > 5 * u64::from(BLOCK), "{report:?}");
    assert!(report.buffers_allocated <= WINDOW as u64, "{report:?}");
    assert!(report.most_blocks_held <= WINDOW, "{report:?}");
}

#[test]
fn small_files_inline_and_large_ones_in_blocks() {
    let src = TempDir::new("fanout-src");
    let roots = [&TempDir::new("fanout-a"), &TempDir::new("fanout-b")];
    build_tree(src.path(), BLOCK as usize);
    let fanout = Fanout::new(config(), &dests(2), &contents_of(src.path())).unwrap();
    let report = fanout.run(&mut memory_targets(&roots)).unwrap();
    for (i, root) in roots.iter().enumerate() {
        assert_same_tree(src.path(), &root.path().join(format!("replica{i}")));
        assert_eq!(ok(&report, i).blocks_sent, report.pieces_read);
    }
}

#[test]
fn a_failing_target_ends_alone_and_the_others_complete() {
    let src = TempDir::new("fanout-src");
    let roots = [
        &TempDir::new("fanout-a"),
        &TempDir::new("fanout-b"),
        &TempDir::new("fanout-c"),
    ];
    build_tree(src.path(), BLOCK as usize);
    let mut config = config();
    config.inline_max = 0;
    let fanout = Fanout::new(config, &dests(3), &contents_of(src.path())).unwrap();
    let mut transports = memory_targets(&roots);
    // Begin, a manifest batch, then the target dies among the blocks.
    transports[1] = MemoryTransport::new(Target::new(roots[1].path()).unwrap()).fail_after(2 + 6);
    let report = fanout.run(&mut transports).unwrap();

    assert!(
        matches!(
            report.targets[1],
            Err(ReplicateError::Transport(TransportError::Disconnected))
        ),
        "{:?}",
        report.targets[1]
    );
    for i in [0, 2] {
        assert_same_tree(src.path(), &roots[i].path().join(format!("replica{i}")));
        assert_read_once_for(&report, i);
    }
    assert!(
        !roots[1].path().join("replica1/large.bin").exists(),
        "the failed target shows no half file"
    );
}

#[test]
fn a_corrupting_path_to_one_target_is_retried_there_only() {
    let src = TempDir::new("fanout-src");
    let roots = [&TempDir::new("fanout-a"), &TempDir::new("fanout-b")];
    std::fs::write(
        src.path().join("large.bin"),
        random_bytes(5, BLOCK as usize * 9 + 17),
    )
    .unwrap();
    let fanout = Fanout::new(config(), &dests(2), &contents_of(src.path())).unwrap();
    let mut transports = memory_targets(&roots);
    transports[0] =
        MemoryTransport::new(Target::new(roots[0].path()).unwrap()).corrupting_blocks(3);
    let report = fanout.run(&mut transports).unwrap();
    for (i, root) in roots.iter().enumerate() {
        assert_same_tree(src.path(), &root.path().join(format!("replica{i}")));
    }
    assert!(ok(&report, 0).block_retries > 0);
    // The retries resend the buffer read once: nothing is read again.
    assert_read_once_for(&report, 1);
    assert_eq!(report.pieces_read, 10);
}

#[test]
fn each_target_resumes_on_its_own_and_the_reads_are_shared() {
    const LARGE: usize = BLOCK as usize * 20 + 777;
    let src = TempDir::new("fanout-src");
    let (resumed, fresh) = (TempDir::new("fanout-a"), TempDir::new("fanout-b"));
    std::fs::write(src.path().join("large.bin"), random_bytes(42, LARGE)).unwrap();
    std::fs::write(src.path().join("small"), b"small file").unwrap();

    // An earlier single push to the first target died after nine blocks.
    let mut first = config();
    first.dest = "replica0".into();
    let source = Source::new(first, &contents_of(src.path())).unwrap();
    let mut transport =
        MemoryTransport::new(Target::new(resumed.path()).unwrap()).fail_after(2 + 9);
    assert!(run(source, &mut transport).is_err());

    let mut config = config();
    config.options.resume = true;
    let fanout = Fanout::new(config, &dests(2), &contents_of(src.path())).unwrap();
    let report = fanout
        .run(&mut memory_targets(&[&resumed, &fresh]))
        .unwrap();
    assert_same_tree(src.path(), &resumed.path().join("replica0"));
    assert_same_tree(src.path(), &fresh.path().join("replica1"));

    let whole = LARGE as u64 + 10;
    assert_eq!(report.bytes_read, whole, "each byte read once");
    assert_eq!(
        ok(&report, 1).bytes_sent,
        whole,
        "the fresh target gets all"
    );
    let kept = ok(&report, 0).target.as_ref().unwrap().bytes_resumed;
    assert_eq!(kept, 9 * u64::from(BLOCK));
    // The small file went inline in the earlier run and is up to date there.
    assert_eq!(ok(&report, 0).up_to_date, 1);
    assert_eq!(
        ok(&report, 0).bytes_sent,
        LARGE as u64 - kept,
        "the resumed target gets only what it lacks"
    );
}

#[test]
fn a_target_already_up_to_date_costs_no_reads() {
    let src = TempDir::new("fanout-src");
    let (same, fresh) = (TempDir::new("fanout-a"), TempDir::new("fanout-b"));
    std::fs::write(
        src.path().join("large.bin"),
        random_bytes(9, BLOCK as usize * 3),
    )
    .unwrap();
    let mut earlier = config();
    earlier.dest = "replica0".into();
    let source = Source::new(earlier, &contents_of(src.path())).unwrap();
    run(
        source,
        &mut MemoryTransport::new(Target::new(same.path()).unwrap()),
    )
    .unwrap();

    let fanout = Fanout::new(config(), &dests(2), &contents_of(src.path())).unwrap();
    let report = fanout.run(&mut memory_targets(&[&same, &fresh])).unwrap();
    assert_same_tree(src.path(), &fresh.path().join("replica1"));
    assert_eq!(ok(&report, 0).up_to_date, 1);
    assert_eq!(ok(&report, 0).bytes_sent, 0);
    assert_eq!(report.bytes_read, 3 * u64::from(BLOCK));
    assert_read_once_for(&report, 1);
}

/// A target that answers one request in `every` turns of the driver: slower than the
/// others, whose answers are there at once.
struct Lagging {
    inner: MemoryTransport,
    answers: VecDeque<Completion>,
    every: u32,
    turns: u32,
}

impl Transport for Lagging {
    fn send(&mut self, request: Request) -> Result<(), TransportError> {
        self.inner.send(request)?;
        while let Ok(answer) = self.inner.recv() {
            self.answers.push_back(answer);
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<Completion, TransportError> {
        self.answers.pop_front().ok_or(TransportError::Idle)
    }
}

impl FanoutTransport for Lagging {
    fn try_recv(&mut self) -> Result<Option<Completion>, TransportError> {
        self.turns += 1;
        if !self.turns.is_multiple_of(self.every) {
            return Ok(None);
        }
        Ok(self.answers.pop_front())
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn wait_any(_transports: &[&Self], _until: Instant) {}
}

#[test]
fn a_slow_target_holds_the_reader_to_the_window() {
    let src = TempDir::new("fanout-src");
    let roots = [&TempDir::new("fanout-a"), &TempDir::new("fanout-b")];
    std::fs::write(
        src.path().join("large.bin"),
        random_bytes(11, BLOCK as usize * 40),
    )
    .unwrap();
    let fanout = Fanout::new(config(), &dests(2), &contents_of(src.path())).unwrap();
    let mut transports: Vec<Lagging> = roots
        .iter()
        .zip([1, 5])
        .map(|(root, every)| Lagging {
            inner: MemoryTransport::new(Target::new(root.path()).unwrap()),
            answers: VecDeque::new(),
            every,
            turns: 0,
        })
        .collect();
    let report = fanout.run(&mut transports).unwrap();
    for (i, root) in roots.iter().enumerate() {
        assert_same_tree(src.path(), &root.path().join(format!("replica{i}")));
        assert_read_once_for(&report, i);
    }
    // The fast target could not run ahead of the slow one by more than the window:
    // the reader never had more blocks out, nor more buffers.
    assert_eq!(report.most_blocks_held, WINDOW, "{report:?}");
    assert!(report.buffers_allocated <= WINDOW as u64, "{report:?}");
}

#[test]
fn targets_without_a_transport_fail_in_words() {
    let src = TempDir::new("fanout-src");
    let root = TempDir::new("fanout-a");
    std::fs::write(src.path().join("f"), b"data").unwrap();
    let fanout = Fanout::new(config(), &dests(2), &contents_of(src.path())).unwrap();
    let report = fanout.run(&mut memory_targets(&[&root])).unwrap();
    assert!(report.targets[0].is_ok());
    let err = report.targets[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("no transport"), "{err}");
}

#[test]
fn checksum_hashes_once_and_each_target_compares_its_own_copy() {
    let src = TempDir::new("fanout-src");
    let (changed, fresh) = (TempDir::new("fanout-a"), TempDir::new("fanout-b"));
    let data = random_bytes(13, BLOCK as usize * 2 + 5);
    std::fs::write(src.path().join("f.bin"), &data).unwrap();
    let mut earlier = config();
    earlier.dest = "replica0".into();
    let source = Source::new(earlier, &contents_of(src.path())).unwrap();
    run(
        source,
        &mut MemoryTransport::new(Target::new(changed.path()).unwrap()),
    )
    .unwrap();
    // Same size and mtime, other content: only a checksum tells.
    let copy = changed.path().join("replica0/f.bin");
    let mtime = std::fs::metadata(&copy).unwrap().modified().unwrap();
    let mut other = data.clone();
    other[7] ^= 0xFF;
    std::fs::write(&copy, &other).unwrap();
    let file = std::fs::File::options().write(true).open(&copy).unwrap();
    file.set_modified(mtime).unwrap();

    let mut config = config();
    config.options.checksum = true;
    let fanout = Fanout::new(config, &dests(2), &contents_of(src.path())).unwrap();
    let report = fanout
        .run(&mut memory_targets(&[&changed, &fresh]))
        .unwrap();
    assert_same_tree(src.path(), &changed.path().join("replica0"));
    assert_same_tree(src.path(), &fresh.path().join("replica1"));
    assert_read_once_for(&report, 0);
    assert_read_once_for(&report, 1);
}
