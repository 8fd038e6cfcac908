//! Throughput of the replication core alone (walk, read, digest, write, hash, rename)
//! through the in-memory transport: the ceiling the session binding can reach.
//! `cargo test --release -p hawser-replicate --test replicate_throughput -- --ignored --nocapture`

use std::io::Write;
use std::path::PathBuf;

use hawser_replicate::testing::{TempDir, random_bytes};
use hawser_replicate::{MemoryTransport, Source, SourceConfig, Target, run};

#[test]
#[ignore = "measurement: run in release with --ignored --nocapture"]
fn one_large_file_in_memory() {
    let src = TempDir::new("tput-src");
    let dst = TempDir::new("tput-dst");
    let chunk = random_bytes(5, 1 << 20);
    let mut file = std::fs::File::create(src.path().join("big")).unwrap();
    for i in 0..512u32 {
        // Vary each MiB so no two blocks are equal.
        let mut c = chunk.clone();
        c[..4].copy_from_slice(&i.to_be_bytes());
        file.write_all(&c).unwrap();
    }
    drop(file);
    let config = SourceConfig {
        dest: "d".into(),
        ..SourceConfig::default()
    };
    let source = Source::new(
        config,
        &[PathBuf::from(format!("{}/", src.path().display()))],
    )
    .unwrap();
    let mut transport = MemoryTransport::new(Target::new(dst.path()).unwrap());
    let report = run(source, &mut transport).unwrap();
    let rtt = report.block_rtt();
    println!(
        "512 MiB in {:?}: {:.0} MB/s, {} blocks, {} buffers, block rtt p50 {} us p99 {} us",
        report.duration,
        report.bytes_per_second() / 1e6,
        report.blocks_sent,
        report.buffers_allocated,
        rtt.p50 / 1000,
        rtt.p99 / 1000
    );
    assert!(report.buffers_allocated <= 8);
}
