//! `--compress auto`'s start, through a transport that plays a link: across a long one
//! (the job's first exchange answered late) with the compressing time told, text goes
//! compressed from the first block; across a short one it goes uncompressed first; and a
//! transport that cannot tell its compressing time keeps the uncompressed start.

use std::path::PathBuf;
use std::time::Duration;

use hawser_replicate::proto::{CompressPolicy, JobOptions, MessageKind};
use hawser_replicate::testing::TempDir;
use hawser_replicate::{
    Completion, MemoryTransport, Request, Source, SourceConfig, Target, Transport, TransportError,
    run,
};

/// A link around the in-memory target: the Begin's answer takes `begin_delay`, and the
/// compressing time is told when `tells`. Records whether each block went compressed.
struct PlayedLink {
    inner: MemoryTransport,
    begin_delay: Duration,
    tells: bool,
    begin_pending: bool,
    blocks: Vec<bool>,
}

impl Transport for PlayedLink {
    fn send(&mut self, request: Request) -> Result<(), TransportError> {
        match request.kind {
            MessageKind::Begin => self.begin_pending = true,
            MessageKind::Block => self.blocks.push(request.compress),
            _ => {}
        }
        self.inner.send(request)
    }

    fn recv(&mut self) -> Result<Completion, TransportError> {
        if std::mem::take(&mut self.begin_pending) {
            std::thread::sleep(self.begin_delay);
        }
        self.inner.recv()
    }

    fn compressing_time(&self) -> Option<Duration> {
        self.tells.then_some(Duration::ZERO)
    }
}

/// Pushes 8 MiB of log lines in 1 MiB blocks over `link`; whether each block went
/// compressed, and the job's report of `auto`.
fn push_text(
    begin_delay: Duration,
    tells: bool,
) -> (Vec<bool>, Option<hawser_replicate::AutoChoice>) {
    let src = TempDir::new("auto-src");
    let dst = TempDir::new("auto-dst");
    let line = "2026-12-07T05:30:00.000Z INFO request id=4711 path=/api/v1/items status=200\n";
    let text: String = line.repeat((8 << 20) / line.len());
    std::fs::write(src.path().join("app.log"), text).unwrap();
    let config = SourceConfig {
        dest: "d".into(),
        options: JobOptions {
            compress: CompressPolicy::Auto,
            block_size: 1 << 20,
            ..JobOptions::default()
        },
        ..SourceConfig::default()
    };
    let source = Source::new(
        config,
        &[PathBuf::from(format!("{}/", src.path().display()))],
    )
    .unwrap();
    let mut link = PlayedLink {
        inner: MemoryTransport::new(Target::new(dst.path()).unwrap()),
        begin_delay,
        tells,
        begin_pending: false,
        blocks: Vec::new(),
    };
    let report = run(source, &mut link).unwrap();
    assert_eq!(report.files, 1);
    (link.blocks, report.auto_compress)
}

#[test]
fn a_long_link_gets_text_compressed_from_the_first_block() {
    let (blocks, auto) = push_text(Duration::from_millis(30), true);
    assert_eq!(blocks.len(), 8);
    assert!(
        blocks.iter().all(|&c| c),
        "every block compressed: {blocks:?}"
    );
    let auto = auto.expect("reported");
    assert!(auto.compress && auto.raw_rate.is_none(), "{auto:?}");
}

#[test]
fn a_short_link_starts_uncompressed() {
    let (blocks, _) = push_text(Duration::ZERO, true);
    assert!(!blocks[0], "uncompressed first: {blocks:?}");
}

#[test]
fn a_transport_that_cannot_tell_its_compressing_time_starts_uncompressed() {
    let (blocks, _) = push_text(Duration::from_millis(30), false);
    assert!(!blocks[0], "uncompressed first: {blocks:?}");
}
