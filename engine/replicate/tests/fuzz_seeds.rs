//! Writes the seed corpus of the `replicate_message` fuzz target: one real message of each
//! kind, recorded from a replication of a small tree (with delete, so Delete and its list
//! travel too), plus a Pull request and a Pull report. Run it when the messages change:
//! `cargo test -p hawser-replicate --test fuzz_seeds -- --ignored`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hawser_replicate::proto::{Begin, JobOptions, PROTOCOL_VERSION, PullRequest};
use hawser_replicate::testing::{TempDir, build_tree};
use hawser_replicate::{
    Completion, MemoryTransport, Request, Source, SourceConfig, Target, Transport, TransportError,
    run,
};

/// Records the first body of each message tag that passes through.
struct Recording<T> {
    inner: T,
    seen: BTreeMap<u8, Vec<u8>>,
}

impl<T> Recording<T> {
    fn keep(&mut self, body: &[u8]) {
        if let Some(&tag) = body.first() {
            self.seen.entry(tag).or_insert_with(|| body.to_vec());
        }
    }
}

impl<T: Transport> Transport for Recording<T> {
    fn send(&mut self, request: Request) -> Result<(), TransportError> {
        self.keep(&request.body);
        self.inner.send(request)
    }

    fn recv(&mut self) -> Result<Completion, TransportError> {
        let completion = self.inner.recv()?;
        if let Ok(body) = &completion.result {
            self.keep(body);
        }
        Ok(completion)
    }
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/replicate_message")
}

#[test]
#[ignore = "writes fuzz/corpus/replicate_message; run by hand when the messages change"]
fn write_replicate_fuzz_seeds() {
    let src = TempDir::new("seeds-src");
    let dst = TempDir::new("seeds-dst");
    build_tree(src.path(), 64 * 1024);
    // Something on the target the source does not have, for Delete.
    std::fs::create_dir_all(dst.path().join("replica")).unwrap();
    std::fs::write(dst.path().join("replica/stale.txt"), b"stale").unwrap();
    let mut config = SourceConfig::default();
    config.options.block_size = 64 * 1024;
    config.options.delete = true;
    config.dest = "replica".into();
    let source = Source::new(
        config,
        &[PathBuf::from(format!("{}/", src.path().display()))],
    )
    .unwrap();
    let mut transport = Recording {
        inner: MemoryTransport::new(Target::new(dst.path()).unwrap()),
        seen: BTreeMap::new(),
    };
    run(source, &mut transport).unwrap();

    let dir = corpus();
    std::fs::create_dir_all(&dir).unwrap();
    for (tag, body) in &transport.seen {
        std::fs::write(dir.join(format!("seed-tag-{tag:02x}")), body).unwrap();
    }
    let mut pull = Vec::new();
    PullRequest {
        begin: Begin {
            version: PROTOCOL_VERSION,
            job_id: 7,
            options: JobOptions::default(),
            dest: b"local",
        },
        window_blocks: 16,
        stall_timeout: Duration::from_secs(30),
        rate_bytes_per_sec: 0,
        sources: vec![b"data/", b"more"],
        excludes: vec![b"*.tmp"],
    }
    .encode(&mut pull)
    .unwrap();
    std::fs::write(dir.join("seed-pull-request"), pull).unwrap();
    assert!(
        transport.seen.len() >= 12,
        "tags seen: {:x?}",
        transport.seen.keys()
    );
}
