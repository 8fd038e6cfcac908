//! `hawser bench --mode dtp`: a DTP pull on loopback, from a server in this process to a
//! file here: a generated `--size`-byte file, the whole data path (the server's reads,
//! pacing, GSO sends, GRO receives, writes, block digests) and the digest check at the end.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use hawser_dtp::client::{TransferOptions, pull};
use hawser_dtp::engine::{DtpEngine, EngineConfig};
use hawser_dtp::service::{DtpService, DtpServiceConfig};
use hawser_replicate::RootDir;
use hawser_runtime::{Client, ClientOptions, ServerBuilder};
use serde::Serialize;

use super::BenchArgs;

/// The report.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DtpBenchReport {
    /// The file's size.
    pub bytes: u64,
    /// From the request to the file in place, digest checked.
    pub seconds: f64,
    /// Bytes per second.
    pub bytes_per_sec: f64,
    /// Datagrams received.
    pub datagrams: u64,
    /// Duplicates and dropped datagrams.
    pub dropped: u64,
}

/// A scratch directory removed on drop.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn generate(path: &std::path::Path, size: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()
}

/// Measures as `args` say.
pub(super) fn run(args: &BenchArgs) -> Result<DtpBenchReport, String> {
    let size = args.size.unwrap_or(256 << 20);
    let dir = std::env::temp_dir().join(format!("hawser-bench-dtp-{}", std::process::id()));
    let scratch = Scratch(dir.clone());
    let (root, local) = (dir.join("root"), dir.join("local"));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    std::fs::create_dir_all(&local).map_err(|e| format!("{}: {e}", local.display()))?;
    generate(&root.join("payload"), size).map_err(|e| format!("cannot write the payload: {e}"))?;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let engine = DtpEngine::start(EngineConfig {
        bind: SocketAddr::new(loopback, 0),
        ..EngineConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let service = DtpService::new(
        RootDir::open(&root).map_err(|e| e.to_string())?,
        Arc::new(engine),
        DtpServiceConfig::default(),
    );
    let server = ServerBuilder::new()
        .service(service.service())
        .listen("127.0.0.1:0")
        .map_err(|e| e.to_string())?;
    let client = Client::connect(server.local_addr(), ClientOptions::default())
        .map_err(|e| e.to_string())?;
    let result = pull(
        &client,
        b"payload",
        &local.join("payload"),
        &TransferOptions::default(),
        &mut |_| {},
    );
    client.close();
    server.shutdown();
    drop(scratch);
    let report = result.map_err(|e| e.to_string())?;
    let seconds = report.elapsed.as_secs_f64();
    Ok(DtpBenchReport {
        bytes: report.size,
        seconds,
        bytes_per_sec: report.size as f64 / seconds.max(1e-9),
        datagrams: report.datagrams,
        dropped: report.dropped,
    })
}

/// `hawser bench --mode dtp`.
pub(super) fn run_cli(args: &BenchArgs) -> ExitCode {
    match run(args) {
        Ok(report) if args.json => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "dtp pull on loopback: {:.1} MB in {:.2} s, {:.1} MB/s ({:.2} Gbit/s); {} datagrams, {} dropped; digests match",
                r.bytes as f64 / 1e6,
                r.seconds,
                r.bytes_per_sec / 1e6,
                r.bytes_per_sec * 8.0 / 1e9,
                r.datagrams,
                r.dropped
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hawser bench --mode dtp: {e}");
            ExitCode::FAILURE
        }
    }
}
