//! `replicate`: `hawser push` of a 4 GiB file and of 20,000 small files vs `rsync -a`
//! to an rsync daemon on loopback, the large file also vs `xrdcp` to an `xrootd` (and
//! `scp` when an ssh server answers on loopback).
//!
//! `hawser push` (to `hawser serve` on loopback) and its peers run in the same rounds, A/B
//! alternated, on the same data, into an emptied target directory each run; without the
//! hawser binary the hawser rows say "not available" and the peers still run. Every
//! transfer's cost per byte (core-seconds per GB of client and server) is measured beside
//! its rate, and so is iperf3's memory to memory, the reference for that cost. The data
//! sets are generated once per scenario in the
//! scratch directory (incompressible bytes from a seeded generator; the source stays in
//! the page cache, so the runs measure the transfer rather than the source disk).
//! `HAWSER_REPLICATE_BIG_MIB` and `HAWSER_REPLICATE_SMALL_FILES` shrink them for a quick
//! try. A third data set, 1 GiB of log-like text (`HAWSER_REPLICATE_TEXT_MIB`), is pushed
//! with `--compress off`, `auto` and `lz4` in the same rounds: its rate and the bytes on
//! the wire per request byte. The small files are also pushed right after deleting the
//! previous copy, in rounds of their own after all the others.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::lfn_compress::record_wire_and_cost;
use super::process_cpu;
use super::replicate_pair::Movers;
use super::tools::{self, Background, Iperf3Setup};
use super::xrootd::{XrdcpPeer, XrdcpSetup};
use super::{Context, cpu_cost, hawser_tools, settle};
use crate::linkem::rng::SeededRng as Rng;
use crate::report::{Outcome, Subject};

/// Size of the large file of issue 6, MiB.
pub const BIG_FILE_MIB: u64 = 4096;
/// Number of small files of issue 6.
pub const SMALL_FILES: usize = 20_000;
/// MiB of log-like text for the `--compress` rows (`HAWSER_REPLICATE_TEXT_MIB`).
pub const TEXT_MIB: u64 = 1024;
/// The `--compress` policies compared on the text, the first being the baseline.
const COMPRESS_POLICIES: [&str; 3] = ["off", "auto", "lz4"];
/// Length of a run of the in-crate plain-socket ceiling.
const PLAIN_SOCKET_RUN: Duration = Duration::from_secs(5);
/// Files per directory in the small-file tree.
const FILES_PER_DIRECTORY: usize = 200;

/// One data set to replicate.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// `one 4 GiB file`, `20000 small files`.
    pub label: String,
    /// Source directory.
    pub source: PathBuf,
    /// Total bytes.
    pub bytes: u64,
    /// Number of files.
    pub files: u64,
    /// Each run first deletes the copy the run before left (`rm -rf`, as a replica
    /// refreshed by deleting it does), instead of writing into a fresh directory.
    pub after_delete: bool,
}

pub(super) fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fill(rng: &mut Rng, buffer: &mut [u8]) {
    for chunk in buffer.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Small-file sizes: 4 KiB to 256 KiB (issue 5's range), spread evenly over the octaves
/// (as many 4-8 KiB files as 128-256 KiB ones), about 64 KiB on average.
pub fn small_file_size(rng: &mut Rng) -> usize {
    let exponent = rng.next_u64() % 6; // 4 KiB << 0..=5
    let base = 4096usize << exponent;
    base + (rng.next_u64() % base as u64) as usize
}

/// Writes `mib` MiB of incompressible bytes to `path`.
pub fn write_random_file(path: &Path, mib: u64, rng: &mut Rng) -> Result<()> {
    let mut writer = BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        fill(rng, &mut block);
        writer.write_all(&block)?;
    }
    writer.flush()?;
    Ok(())
}

/// Writes `mib` MiB of log-like text to `path`: timestamped request lines with ids,
/// paths and status codes, which lz4 shrinks to about a third (what `--compress` is for).
pub fn write_text_file(path: &Path, mib: u64, rng: &mut Rng) -> Result<()> {
    const PATHS: [&str; 5] = [
        "/api/v1/items",
        "/api/v1/users",
        "/static/app.js",
        "/healthz",
        "/api/v2/orders",
    ];
    const STATUS: [u16; 5] = [200, 200, 200, 404, 500];
    let mut writer = BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let (mut written, mut t) = (0u64, 0u64);
    while written < mib << 20 {
        let r = rng.next_u64();
        t += r % 50 + 1;
        let line = format!(
            "2026-12-02T14:{:02}:{:02}.{:03}Z INFO request id={} path={}/{} status={} took={}ms\n",
            t / 60_000 % 60,
            t / 1000 % 60,
            t % 1000,
            (r >> 8) % 1_000_000,
            PATHS[(r >> 32) as usize % PATHS.len()],
            (r >> 40) % 10_000,
            STATUS[(r >> 52) as usize % STATUS.len()],
            (r >> 56) % 300
        );
        let room = (mib << 20) - written;
        let bytes = &line.as_bytes()[..line.len().min(room as usize)];
        writer.write_all(bytes)?;
        written += bytes.len() as u64;
    }
    writer.flush()?;
    Ok(())
}

/// Writes the two data sets under `root`.
pub fn generate(root: &Path, big_mib: u64, small_files: usize) -> Result<Vec<DataSet>> {
    let mut rng = Rng::new(0x4841_5753);
    let big_dir = root.join("big");
    fs::create_dir_all(&big_dir)?;
    write_random_file(&big_dir.join("big.bin"), big_mib, &mut rng)?;
    let mut block = vec![0u8; 1 << 20];
    let small_dir = root.join("small");
    let mut small_bytes = 0u64;
    for index in 0..small_files {
        let dir = small_dir.join(format!("d{:03}", index / FILES_PER_DIRECTORY));
        if index.is_multiple_of(FILES_PER_DIRECTORY) {
            fs::create_dir_all(&dir)?;
        }
        let size = small_file_size(&mut rng);
        fill(&mut rng, &mut block[..size]);
        fs::write(dir.join(format!("f{index:05}.dat")), &block[..size])?;
        small_bytes += size as u64;
    }
    Ok(vec![
        DataSet {
            label: if big_mib.is_multiple_of(1024) {
                format!("one {} GiB file", big_mib / 1024)
            } else {
                format!("one {big_mib} MiB file")
            },
            source: big_dir,
            bytes: big_mib << 20,
            files: 1,
            after_delete: false,
        },
        DataSet {
            label: format!("{small_files} small files"),
            source: small_dir,
            bytes: small_bytes,
            files: small_files as u64,
            after_delete: false,
        },
    ])
}

/// `rsync --daemon` on 127.0.0.1 with one writable module, `dest`, at `target`.
fn start_rsync_daemon(scratch: &Path, target: &Path, port: u16) -> Result<Background> {
    let config = scratch.join("rsyncd.conf");
    fs::write(
        &config,
        format!(
            "use chroot = no\nuid = root\ngid = root\n[dest]\n    path = {}\n    read only = no\n",
            target.display()
        ),
    )?;
    let mut command = Command::new(tools::require_program("rsync")?);
    command
        .args([
            "--daemon",
            "--no-detach",
            "--address",
            "127.0.0.1",
            "--port",
        ])
        .arg(port.to_string())
        .arg(format!("--config={}", config.display()));
    let mut daemon = Background::spawn(command, "rsync --daemon")?;
    std::thread::sleep(Duration::from_millis(500));
    daemon.check_running()?;
    Ok(daemon)
}

/// Removes what `dir` holds but keeps `dir` itself (a server has it open as its root).
pub fn empty_directory(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        }
        .with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Where a run of `data` lands under a target root, and whether it empties that place
/// first. The large file goes to `big/`, emptied before each run. Each small-file run gets
/// its own fresh `small/runK/`, removed only at the end; the after-delete runs go to
/// `small-again/`, emptied just before each run (it holds a copy from the start).
pub(super) fn run_place(data: &DataSet, round: usize) -> (String, bool) {
    if data.after_delete {
        ("small-again".to_owned(), true)
    } else if data.files > 1 {
        (format!("small/run{round}"), false)
    } else {
        ("big".to_owned(), true)
    }
}

/// Whether the ext4 file system holding `path` has a journal (`None`: not ext4, or not
/// known), from `/sys/fs/ext4/DEVICE/journal_task` (`<none>` without one).
fn ext4_has_journal(path: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(path).ok()?.dev();
    let device = fs::read_link(format!(
        "/sys/dev/block/{}:{}",
        libc::major(dev),
        libc::minor(dev)
    ))
    .ok()?;
    let name = device.file_name()?.to_str()?.to_owned();
    let task = fs::read_to_string(format!("/sys/fs/ext4/{name}/journal_task")).ok()?;
    Some(task.trim() != "<none>")
}

/// Copies the tree `from` to `to` (directories and regular files): the copy the first
/// after-delete run deletes.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("copying to {}", target.display()))?;
        }
    }
    Ok(())
}

/// Writes every dirty page back (`sync`) so that a run does not pay for the previous
/// run's writeback: without it, whichever tool follows the other's 4 GiB write creates its
/// small files while the kernel flushes gigabytes to disk behind it.
pub(super) fn flush_dirty_pages() -> Result<()> {
    let status = Command::new("sync").status().context("running sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

/// Connections of hawser's trunk in this scenario (`hawser push`'s default).
pub const PUSH_CONNECTIONS: usize = 8;

pub(super) fn rsync_subject(data: &DataSet) -> Subject {
    Subject::new(
        "rsync",
        format!("-a to a daemon on loopback, {}", data.label),
    )
}

pub(super) fn hawser_subject(data: &DataSet) -> Subject {
    Subject::new(
        "hawser",
        format!("push, {PUSH_CONNECTIONS} connections, {}", data.label),
    )
}

/// Records one transfer of `data` that took `seconds`.
pub(super) fn record_transfer(
    outcome: &mut Outcome,
    subject: &Subject,
    data: &DataSet,
    seconds: f64,
) {
    outcome.record(subject, "elapsed_s", "s", seconds);
    outcome.record(
        subject,
        "throughput_bytes_per_sec",
        "bytes/s",
        data.bytes as f64 / seconds,
    );
    if data.files > 1 {
        outcome.record(subject, "files_per_sec", "1/s", data.files as f64 / seconds);
    }
}

/// Runs `hawser push` (when built) and the rsync baseline, alternated, on both data sets.
pub fn run(context: &Context, outcome: &mut Outcome) -> Result<()> {
    let big_mib = env_number("HAWSER_REPLICATE_BIG_MIB", BIG_FILE_MIB);
    let small_files = env_number("HAWSER_REPLICATE_SMALL_FILES", SMALL_FILES);
    let hawser = match (
        hawser_tools::hawser_subcommand("push"),
        hawser_tools::hawser_subcommand("serve"),
    ) {
        (Ok(binary), Ok(_)) => Ok(binary),
        (Err(reason), _) | (_, Err(reason)) => Err(reason),
    };
    let rsync = tools::require_program("rsync")?;
    let data_root = context.scratch.join("data");
    let rsync_target = context.scratch.join("target-rsync");
    let hawser_target = context.scratch.join("target-hawser");
    let xrootd_target = context.scratch.join("target-xrootd");
    eprintln!(
        "  generating {big_mib} MiB + {small_files} small files in {}",
        data_root.display()
    );
    let mut data_sets = generate(&data_root, big_mib, small_files)?;
    let again = DataSet {
        label: format!(
            "{}, right after deleting the previous copy",
            data_sets[1].label
        ),
        after_delete: true,
        ..data_sets[1].clone()
    };
    data_sets.push(again);
    let text_mib = env_number("HAWSER_REPLICATE_TEXT_MIB", TEXT_MIB);
    let text_dir = data_root.join("text");
    fs::create_dir_all(&text_dir)?;
    write_text_file(
        &text_dir.join("app.log"),
        text_mib,
        &mut Rng::new(0x5445_5854),
    )?;
    let text_subject = |policy: &str| {
        Subject::new(
            "hawser",
            format!("push --compress {policy}, {text_mib} MiB of log text"),
        )
    };
    for policy in COMPRESS_POLICIES {
        outcome
            .baseline_of
            .push((text_subject(policy), text_subject(COMPRESS_POLICIES[0])));
    }
    let mut auto_choices = Vec::new();
    for target in [&rsync_target, &hawser_target] {
        fs::create_dir_all(target.join("big"))?;
        fs::create_dir_all(target.join("small"))?;
        fs::create_dir_all(target.join("text"))?;
        copy_tree(&data_sets[2].source, &target.join("small-again"))?;
    }
    let rsync_port = tools::free_loopback_port()?;
    let daemon = start_rsync_daemon(&context.scratch, &rsync_target, rsync_port)?;
    let hawser_port = tools::free_loopback_port()?;
    let server = match &hawser {
        Ok(binary) => Some(hawser_tools::start_hawser_serve(
            binary,
            None,
            &format!("127.0.0.1:{hawser_port}"),
            &hawser_target,
        )?),
        Err(_) => None,
    };
    for data in &data_sets {
        if let Err(reason) = &hawser {
            outcome.mark_unavailable(&hawser_subject(data), reason);
        }
        // Each data set is its own comparison: ratios against rsync of the same data.
        outcome
            .baseline_of
            .push((hawser_subject(data), rsync_subject(data)));
        outcome
            .baseline_of
            .push((rsync_subject(data), rsync_subject(data)));
    }
    let scp_reason = if tools::find_program("scp").is_some() {
        "scp is installed but no ssh server answers on loopback on the build machines"
    } else {
        "scp is not installed"
    };
    outcome.mark_unavailable(&Subject::new("scp", "to localhost"), scp_reason);
    let small = &data_sets[1];
    outcome.notes.push(format!(
        "Data: one file of {big_mib} MiB and {} files ({:.0} MB, 4–256 KiB each, \
         {FILES_PER_DIRECTORY} per directory), incompressible, generated once and left in \
         the page cache. Before each run the target is synced (so that no run pays for the \
         previous one's writeback); a 4 GiB run replaces the previous one, each small-file \
         run writes into a fresh directory, and each after-delete run into the same \
         directory right after deleting the copy there (the first deletes a copy made \
         before the rounds); the after-delete runs come after all the others, so that \
         no other run creates files among inodes a delete has just freed. The targets' file system: {journal}. rsync: `rsync -a \
         SOURCE/ rsync://127.0.0.1:PORT/dest/` to `rsync --daemon --no-detach --address \
         127.0.0.1` (no ssh, no compression). hawser: `hawser push --connections \
         {PUSH_CONNECTIONS} --compress off --json FILE SOURCE 127.0.0.1:PORT:DEST` to \
         `hawser serve --listen 127.0.0.1:PORT --root TARGET` (one server for all runs). \
         Rate = data bytes / wall time of the client command (process start included for \
         both). Neither target is synced to disk (hawser without --fsync).",
        small.files,
        small.bytes as f64 / 1e6,
        journal = match ext4_has_journal(&hawser_target) {
            Some(true) => "ext4 with a journal",
            // fs/ext4/ialloc.c: find_inode_bit() checks recently_deleted() only when
            // the file system has no journal.
            Some(false) => {
                "ext4 without a journal, whose inode allocator skips every inode freed \
                 in the last 60 s (five minutes while its inode table block is dirty), \
                 looking each one up (`recently_deleted`, checked only without a \
                 journal): after a delete of 20,000 files every creation scans past them"
            }
            None => "not ext4 (or not known)",
        }
    ));
    let push_report = context.scratch.join("push.json");
    let big = &data_sets[0];
    let plain = Subject::new("plain-socket", "1 connection, 2 threads, 1 MiB writes");
    let direct_ceiling = Subject::new(
        "file-write",
        format!("O_DIRECT, {} writers, {}", tools::DIRECT_WRITERS, big.label),
    );
    let buffered_ceiling =
        Subject::new("file-write", format!("page cache, 1 writer, {}", big.label));
    outcome.notes.push(format!(
        "Ceilings, measured in the same rounds: plain-socket = the in-crate loopback loop \
         (one TCP connection, a writer and a reader thread, 1 MiB writes, 5 s); file-write = \
         writing {} of a fixed pattern into a new file on the targets' file system with 8 MiB \
         writes, either O_DIRECT with {} writers into the file allocated first (`fallocate`, \
         as fio lays out its file; the target allocates a dense file whole too) or through \
         the page cache with one (not synced, like the transfers). A replication cannot be faster than the slower of the \
         socket and the file system it writes to. Their cost per byte counts the harness's \
         own threads (the write or the loop).",
        big.label,
        tools::DIRECT_WRITERS
    ));
    let iperf3_subject = Subject::new("iperf3", format!("-P {PUSH_CONNECTIONS}, memory to memory"));
    let iperf3_seconds = context.seconds(5.0);
    let iperf3_port = tools::free_loopback_port()?;
    let iperf3_setup = Iperf3Setup {
        client_namespace: None,
        server_namespace: None,
        server_address: "127.0.0.1",
        port: iperf3_port,
        congestion: None,
    };
    let iperf3_available = match tools::require_program("iperf3") {
        Ok(_) => true,
        Err(error) => {
            outcome.mark_unavailable(&iperf3_subject, &format!("{error:#}"));
            false
        }
    };
    outcome.notes.push(format!(
        "iperf3: `iperf3 -c 127.0.0.1 -P {PUSH_CONNECTIONS} -t {iperf3_seconds}` to a one-shot \
         `iperf3 -s -1` on loopback: moving bytes from memory to memory over TCP, the \
         reference for the cost per byte."
    ));
    let big_file = big.source.join("big.bin");
    let xrdcp_subject = Subject::new("xrdcp", format!("to an xrootd on loopback, {}", big.label));
    outcome
        .baseline_of
        .push((xrdcp_subject.clone(), rsync_subject(big)));
    let xrdcp_setup = XrdcpSetup {
        client_namespace: None,
        server_namespace: None,
        host: "127.0.0.1",
        port: tools::free_loopback_port()?,
        streams: None,
        sync_first: true,
    };
    let xrdcp_peer = match XrdcpPeer::start(
        &xrdcp_subject,
        xrdcp_setup,
        &big_file,
        &xrootd_target,
        &context.scratch,
    ) {
        Ok(peer) => Some(peer),
        Err(error) => {
            outcome.mark_unavailable(&xrdcp_subject, &format!("{error:#}"));
            None
        }
    };
    if xrdcp_peer.is_some() {
        outcome.notes.push(
            "xrdcp: `xrdcp --nopbar big.bin root://127.0.0.1:PORT//TARGET/big.bin` (one \
             stream, its default) to `xrootd -c CFG -R nobody -l LOG` started by the \
             scenario, CFG = `all.export TARGET` and `xrd.port PORT`; TARGET is emptied before \
             each run, and each copy is checked against the source (size and XXH3-128): a copy \
             that differs fails its run. Rate = data bytes / wall time of xrdcp."
                .to_owned(),
        );
    }
    let movers = Movers {
        hawser: hawser.as_ref().ok().map(PathBuf::as_path),
        hawser_target: &hawser_target,
        hawser_port,
        server: server.as_ref(),
        push_report: &push_report,
        rsync: &rsync,
        rsync_target: &rsync_target,
        rsync_port,
        daemon: &daemon,
    };
    for round in 0..context.runs {
        super::sample_load(outcome);
        for (subject, mode) in [
            (&direct_ceiling, tools::WriteCeiling::Direct),
            (&buffered_ceiling, tools::WriteCeiling::Buffered),
        ] {
            eprintln!("  round {round}: {}", subject.label());
            flush_dirty_pages()?;
            let before = process_cpu::own_cpu().ok();
            let rate = tools::run_file_write_ceiling(
                &hawser_target.join("big/ceiling.bin"),
                big.bytes,
                mode,
            )?;
            outcome.record(subject, "throughput_bytes_per_sec", "bytes/s", rate);
            if let Some(seconds) = process_cpu::seconds_between(before, process_cpu::own_cpu().ok())
            {
                cpu_cost::record_local(outcome, subject, big.bytes as f64, seconds);
            }
            settle();
        }
        eprintln!("  round {round}: {}", plain.label());
        let before = process_cpu::own_cpu().ok();
        let result = tools::run_plain_socket(PLAIN_SOCKET_RUN, Duration::from_secs(1))?;
        outcome.record(
            &plain,
            "throughput_bytes_per_sec",
            "bytes/s",
            result.bytes_per_sec,
        );
        if let Some(seconds) = process_cpu::seconds_between(before, process_cpu::own_cpu().ok()) {
            let bytes = result.bytes_per_sec * PLAIN_SOCKET_RUN.as_secs_f64();
            cpu_cost::record_local(outcome, &plain, bytes, seconds);
        }
        settle();
        if iperf3_available {
            eprintln!("  round {round}: {}", iperf3_subject.label());
            match tools::run_iperf3(&iperf3_setup, PUSH_CONNECTIONS, iperf3_seconds, 1.0) {
                Ok(result) => {
                    outcome.record(
                        &iperf3_subject,
                        "throughput_bytes_per_sec",
                        "bytes/s",
                        result.received_bytes_per_sec,
                    );
                    let bytes = result
                        .received_bytes
                        .unwrap_or(result.received_bytes_per_sec * iperf3_seconds);
                    if let Some(cpu) = result.cpu {
                        cpu_cost::record_transfer(
                            outcome,
                            &iperf3_subject,
                            bytes,
                            Some(cpu.client_s),
                            Some(cpu.server_s),
                        );
                    }
                }
                Err(error) => outcome.notes.push(format!(
                    "{} round {round} failed: {error:#}",
                    iperf3_subject.label()
                )),
            }
            settle();
        }
        for data in data_sets.iter().filter(|d| !d.after_delete) {
            movers.run(outcome, data, round)?;
        }
        if let Some(peer) = &xrdcp_peer {
            eprintln!("  round {round}: {}", peer.subject().label());
            peer.run(outcome, round)?;
        }
        let Ok(binary) = &hawser else { continue };
        for policy in COMPRESS_POLICIES {
            let subject = text_subject(policy);
            eprintln!("  round {round}: {}", subject.label());
            empty_directory(&hawser_target.join("text"))?;
            flush_dirty_pages()?;
            let serve_before = tools::background_cpu(server.as_ref());
            let started = Instant::now();
            let pushed = hawser_tools::run_hawser_push(
                binary,
                None,
                PUSH_CONNECTIONS,
                &text_dir,
                &format!("127.0.0.1:{hawser_port}:text"),
                &push_report,
                hawser_tools::PushOptions {
                    compress: policy,
                    ..hawser_tools::PushOptions::default()
                },
            );
            let seconds = started.elapsed().as_secs_f64();
            settle();
            let serve_s =
                process_cpu::seconds_between(serve_before, tools::background_cpu(server.as_ref()));
            match pushed {
                Ok(result) => {
                    outcome.record(&subject, "elapsed_s", "s", seconds);
                    outcome.record(
                        &subject,
                        "throughput_bytes_per_sec",
                        "bytes/s",
                        (text_mib << 20) as f64 / seconds,
                    );
                    record_wire_and_cost(
                        outcome,
                        &subject,
                        (text_mib << 20) as f64,
                        &result,
                        serve_s,
                    );
                    if policy == "auto" {
                        auto_choices.push(result.auto_compressed);
                    }
                }
                Err(error) => outcome.notes.push(format!(
                    "{} round {round} failed: {error:#}",
                    subject.label()
                )),
            }
        }
    }
    // The after-delete runs come last: on ext4 without a journal the inodes a delete frees
    // stay "recently deleted" for minutes, and every creation near them scans past them,
    // so interleaved they would slow the fresh-directory runs of both tools too.
    for round in 0..context.runs {
        for data in data_sets.iter().filter(|d| d.after_delete) {
            super::sample_load(outcome);
            movers.run(outcome, data, round)?;
        }
    }
    if !auto_choices.is_empty() {
        let count = |c: Option<bool>| auto_choices.iter().filter(|&&x| x == c).count();
        outcome.notes.push(format!(
            "Text rows: {text_mib} MiB of generated log lines (lz4 shrinks them to about \
             0.3), pushed with `--compress off|auto|lz4` to `text/` of the same server, \
             emptied before each run; wire_fraction = bytes on the trunk / request bytes. \
             `auto` compressed in {} of {} runs, chose not to in {}, and ended before \
             choosing in {}: on loopback lz4 on the push's compressing threads (0.4-0.7 \
             GB/s each, on cores the server shares) is slower than sending raw, so auto \
             should not compress here (over a slower link it does; see PROTOCOL.md, \
             Begin).",
            count(Some(true)),
            auto_choices.len(),
            count(Some(false)),
            count(None)
        ));
    }
    drop(server);
    drop(daemon);
    if let Some(peer) = xrdcp_peer {
        peer.stop()?;
    }
    empty_directory(&rsync_target)?;
    empty_directory(&hawser_target)?;
    let costed: Vec<Subject> = [
        iperf3_subject.clone(),
        plain.clone(),
        direct_ceiling.clone(),
        buffered_ceiling.clone(),
    ]
    .into_iter()
    .chain(
        data_sets
            .iter()
            .flat_map(|d| [hawser_subject(d), rsync_subject(d)]),
    )
    .chain([xrdcp_subject.clone()])
    .chain(COMPRESS_POLICIES.iter().map(|p| text_subject(p)))
    .collect();
    if let Some(table) = cpu_cost::section(outcome, &costed, &iperf3_subject) {
        outcome
            .sections
            .push(("Cost per byte (core-s/GB)".to_owned(), table));
        outcome.notes.push(cpu_cost::method_note());
    }
    let throughput = "throughput_bytes_per_sec";
    if let (Some(hawser_rate), Some(xrdcp_rate)) = (
        outcome.median(&hawser_subject(big), throughput),
        outcome.median(&xrdcp_subject, throughput),
    ) {
        outcome.notes.push(format!(
            "hawser {} / xrdcp: {:.2}x in bytes/s (medians).",
            big.label,
            hawser_rate / xrdcp_rate
        ));
    }
    let rate = |subject: &Subject| outcome.median(subject, throughput);
    if let (Some(big_rate), Some(small_rate)) =
        (rate(&hawser_subject(big)), rate(&hawser_subject(small)))
    {
        let mut ratios = vec![format!(
            "hawser {} / hawser {}: {:.2}x in bytes/s",
            small.label,
            big.label,
            small_rate / big_rate
        )];
        for ceiling in [&plain, &direct_ceiling, &buffered_ceiling] {
            if let Some(c) = rate(ceiling) {
                ratios.push(format!(
                    "hawser {} / {}: {:.2}x",
                    big.label,
                    ceiling.label(),
                    big_rate / c
                ));
            }
        }
        outcome
            .notes
            .push(format!("Ratios of medians: {}.", ratios.join("; ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_files_have_the_asked_size_and_are_lines_of_text() {
        let dir = std::env::temp_dir().join(format!("hawser-text-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.log");
        write_text_file(&path, 2, &mut Rng::new(1)).unwrap();
        let text = fs::read(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text.len(), 2 << 20);
        assert!(text.iter().all(|b| b.is_ascii()));
        let lines = text.split(|&b| b == b'\n').count();
        assert!(lines > 20_000, "{lines} lines");
        // Not one line repeated: the ids differ.
        let first: Vec<&[u8]> = text.split(|&b| b == b'\n').take(100).collect();
        let distinct: std::collections::HashSet<&&[u8]> = first.iter().collect();
        assert_eq!(distinct.len(), first.len());
    }

    #[test]
    fn small_file_sizes_stay_in_range() {
        let mut rng = Rng::new(7);
        let sizes: Vec<usize> = (0..10_000).map(|_| small_file_size(&mut rng)).collect();
        assert!(sizes.iter().all(|&s| (4096..256 * 1024).contains(&s)));
        assert!(sizes.iter().any(|&s| s < 8192) && sizes.iter().any(|&s| s >= 128 * 1024));
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((48 * 1024..80 * 1024).contains(&mean), "mean {mean}");
    }

    #[test]
    fn generates_both_data_sets() {
        let root =
            std::env::temp_dir().join(format!("hawser-replicate-test-{}", std::process::id()));
        let sets = generate(&root, 1, 450).unwrap();
        assert_eq!(sets[0].bytes, 1 << 20);
        assert_eq!(
            fs::metadata(sets[0].source.join("big.bin")).unwrap().len(),
            1 << 20
        );
        assert_eq!(sets[1].files, 450);
        let directories = fs::read_dir(&sets[1].source).unwrap().count();
        assert_eq!(directories, 3);
        let total: u64 = fs::read_dir(&sets[1].source)
            .unwrap()
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .map(|f| f.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(total, sets[1].bytes);
        // The copy an after-delete run removes first holds the same tree.
        let copy = root.join("copy");
        copy_tree(&sets[1].source, &copy).unwrap();
        let copied: u64 = fs::read_dir(&copy)
            .unwrap()
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .map(|f| f.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(copied, sets[1].bytes);
        assert_eq!(
            fs::read(copy.join("d001/f00200.dat")).unwrap(),
            fs::read(sets[1].source.join("d001/f00200.dat")).unwrap()
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
