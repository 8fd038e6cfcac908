//! `hawser bench` without `--mode` (replicate): the embedded demo. Starts a replication
//! server on loopback in this process with a temporary root, generates a data set (one
//! large random file, medium text-like and random files, many small files), pushes it
//! over a trunk, verifies every byte on the target and prints the report.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::bench::args::BenchArgs;
use crate::connect::connect;
use crate::error::{CliError, io_err};
use crate::job_args::JobArgs;
use crate::logging::LogFormat;
use crate::push::push_with;
use crate::report::{json_report, print_report, write_outputs};
use crate::serve::{ServeArgs, start_server};

/// Default data set size.
const DEFAULT_SIZE: u64 = 256 << 20;

/// A directory removed on drop (also when the bench fails half way).
#[derive(Debug)]
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the generated data set holds.
#[derive(Debug, Default, Clone, Copy)]
struct DataSet {
    files: u64,
    bytes: u64,
}

fn text_like(len: usize, seed: u64) -> Vec<u8> {
    let words = [
        "hawser", "replica", "block", "journal", "nexus", "trunk", "manifest", "offset", "the",
        "of", "and", "data", "mover", "target", "source", "commit",
    ];
    let mut out = Vec::with_capacity(len + 64);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut line = 0u64;
    while out.len() < len {
        line += 1;
        let _ = write!(out, "{line:08} ");
        for _ in 0..10 {
            let word = rng.next_u64() % words.len() as u64;
            out.extend_from_slice(words[word as usize].as_bytes());
            out.push(b' ');
        }
        out.push(b'\n');
    }
    out.truncate(len);
    out
}

/// Half the bytes in one large random file, a quarter in 4 MiB files (text-like and
/// random alternately), a quarter in small files of 4 KiB–256 KiB in 16 directories.
fn generate(root: &Path, size: u64) -> std::io::Result<DataSet> {
    let mut set = DataSet::default();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x5eed);
    let write = |path: PathBuf, data: &[u8], set: &mut DataSet| -> std::io::Result<()> {
        std::fs::write(path, data)?;
        set.files += 1;
        set.bytes += data.len() as u64;
        Ok(())
    };
    let large = (size / 2) as usize;
    let mut buf = vec![0u8; large];
    rng.fill_bytes(&mut buf);
    write(root.join("large.bin"), &buf, &mut set)?;
    drop(buf);

    std::fs::create_dir(root.join("medium"))?;
    let medium_len = 4usize << 20;
    let mut i = 0u64;
    while set.bytes + medium_len as u64 <= size / 2 + size / 4 {
        let data = if i.is_multiple_of(2) {
            text_like(medium_len, i)
        } else {
            let mut d = vec![0u8; medium_len];
            rng.fill_bytes(&mut d);
            d
        };
        write(root.join(format!("medium/m{i:04}")), &data, &mut set)?;
        i += 1;
    }

    for d in 0..16 {
        std::fs::create_dir_all(root.join(format!("small/d{d:02}")))?;
    }
    let mut n = 0u64;
    while set.bytes < size {
        let len = (4096 + (rng.next_u64() % (252 * 1024))) as usize;
        let len = len.min((size - set.bytes) as usize).max(1);
        let data = if n.is_multiple_of(3) {
            text_like(len, n)
        } else {
            let mut d = vec![0u8; len];
            rng.fill_bytes(&mut d);
            d
        };
        write(
            root.join(format!("small/d{:02}/s{n:06}", n % 16)),
            &data,
            &mut set,
        )?;
        n += 1;
    }
    // An empty directory and an empty file too.
    std::fs::create_dir(root.join("empty_dir"))?;
    write(root.join("empty_file"), b"", &mut set)?;
    Ok(set)
}

/// Compares every regular file under `src` with its copy under `dst`, byte for byte.
fn verify(src: &Path, dst: &Path) -> Result<DataSet, String> {
    let mut seen = DataSet::default();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let entries = std::fs::read_dir(src.join(&rel)).map_err(|e| e.to_string())?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let rel = rel.join(entry.file_name());
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            if kind.is_dir() {
                if !dst.join(&rel).is_dir() {
                    return Err(format!("{}: directory missing", rel.display()));
                }
                stack.push(rel);
            } else if kind.is_file() {
                let a = std::fs::read(src.join(&rel)).map_err(|e| e.to_string())?;
                let b =
                    std::fs::read(dst.join(&rel)).map_err(|e| format!("{}: {e}", rel.display()))?;
                if a != b {
                    return Err(format!("{}: content differs", rel.display()));
                }
                seen.files += 1;
                seen.bytes += a.len() as u64;
            }
        }
    }
    Ok(seen)
}

fn job_args(args: &BenchArgs) -> JobArgs {
    JobArgs {
        transport: "tcp".into(),
        mtu: 1472,
        connections: args.connections,
        block_size: 8 << 20,
        window: Some(4),
        rate: None,
        congestion: args.congestion.clone(),
        verify: false,
        fsync: false,
        delete: false,
        checksum: false,
        dry_run: false,
        exclude: Vec::new(),
        resume: false,
        compress: Default::default(),
        compress_threads: None,
        identity: None,
        secret_file: None,
        security: Default::default(),
        external: false,
        replace_nexus: None,
        timeout: 30.0,
        quiet: args.json,
        verbose: 0,
        json: None,
        histogram: args.histogram.clone(),
        plot: args.plot.clone(),
    }
}

fn run(args: &BenchArgs) -> Result<(), CliError> {
    if args.connect.is_some() {
        return Err(CliError::Usage(
            "--connect measures rpc or bulk; give --mode".into(),
        ));
    }
    let size = args.size.unwrap_or(DEFAULT_SIZE);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let scratch =
        Scratch(std::env::temp_dir().join(format!("hawser-bench-{}-{nanos}", std::process::id())));
    let (src, dst) = (scratch.0.join("src"), scratch.0.join("dst"));
    std::fs::create_dir_all(&src).map_err(io_err(&src))?;
    std::fs::create_dir_all(&dst).map_err(io_err(&dst))?;
    let started = Instant::now();
    let set = generate(&src, size).map_err(io_err(&src))?;
    if !args.json {
        println!(
            "hawser bench replicate: generated {} files, {} bytes in {:.1} s under {}",
            set.files,
            set.bytes,
            started.elapsed().as_secs_f64(),
            scratch.0.display()
        );
    }
    let server = start_server(&ServeArgs {
        dtp: None,
        dtp_rate: None,
        operators: Vec::new(),
        listen: vec!["127.0.0.1:0".into()],
        root: Some(dst.clone()),
        shards: Some(1),
        config: None,
        congestion: args.congestion.clone(),
        write_mode: None,
        partial_max_age: None,
        clean_partials: false,
        allow_anonymous: false,
        allow_peer_uid: Vec::new(),
        allow_client_cert: Vec::new(),
        tls_cert: None,
        tls_key: None,
        require_tls: false,
        allow_plain: false,
        dmp: false,
        max_connections_per_address: None,
        max_handshakes: None,
        max_nexuses: None,
        metrics: None,
        drain_timeout: None,
        log_format: LogFormat::Text,
    })?;
    let job = job_args(args);
    let config = job.source_config("bench".into())?;
    let (client, _) = connect(
        &server.addresses()[0],
        "localhost",
        &job,
        config.options.block_size,
    )?;
    let outcome = push_with(
        &client,
        &[PathBuf::from(format!("{}/", src.display()))],
        config,
        job.quiet,
        hawser_replicate::service::DEFAULT_STALL_TIMEOUT,
        None,
    );
    client.close();
    drop(server);
    let outcome = outcome?;
    let verified = verify(&src, &dst.join("bench"))
        .map_err(|e| CliError::Usage(format!("verification failed: {e}")))?;
    if verified.files != set.files || verified.bytes != set.bytes {
        return Err(CliError::Usage(format!(
            "verification: {} files / {} bytes found, {} / {} generated",
            verified.files, verified.bytes, set.files, set.bytes
        )));
    }
    write_outputs(&job, &outcome, "loopback", "bench")?;
    if args.json {
        let mut value = json_report(&outcome, "loopback", "bench", &job);
        value["end"]["verified_files"] = verified.files.into();
        value["end"]["verified_bytes"] = verified.bytes.into();
        println!("{value}");
    } else {
        print_report(&outcome, 0);
        println!(
            "verified: {} files, {} bytes identical on the target",
            verified.files, verified.bytes
        );
    }
    Ok(())
}

/// `hawser bench` in replicate mode.
pub fn run_cli(args: &BenchArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hawser bench: {e}");
            ExitCode::FAILURE
        }
    }
}
