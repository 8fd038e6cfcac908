//! `hawser push --transport dtp` and `hawser pull --transport dtp` of one regular file,
//! whose data travels as DTP datagrams over UDP, control over the nexus (trees:
//! [`crate::dtp_tree`]).
//!
//! Names follow cp and rsync: a DEST that is empty, ends in `/` or (for a pull) is an
//! existing directory receives the file under its own name; any other DEST is the file's
//! new name.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use hawser_dtp::client::{DtpClient, TransferOptions, TransferReport, push};
use hawser_dtp::engine::Progress;

use crate::connect::{connect, first_reachable, forget_nexus_record};
use crate::error::{CliError, io_err};
use crate::job_args::JobArgs;
use crate::pull::PullArgs;
use crate::push::PushArgs;
use crate::remote::{host_of, parse_remote, split_remote};
use crate::serve::access::shown_address;

pub(crate) fn options(job: &JobArgs) -> TransferOptions {
    TransferOptions {
        max_rate: job.rate.unwrap_or(0),
        mtu: job.mtu,
        resume: job.resume,
        ..TransferOptions::default()
    }
}

/// Refuses the job options DTP does not take, in words.
fn refuse_tcp_only(job: &JobArgs) -> Result<(), CliError> {
    let tcp_only = [
        (job.delete, "--delete"),
        (job.dry_run, "--dry-run"),
        (!job.exclude.is_empty(), "--exclude"),
        (job.checksum, "--checksum"),
        (job.histogram.is_some(), "--histogram"),
        (job.plot.is_some(), "--plot"),
    ];
    match tcp_only.iter().find(|(set, _)| *set) {
        Some((_, name)) => Err(CliError::Usage(format!(
            "{name} applies to trees; --transport dtp of one file moves just that file"
        ))),
        None => Ok(()),
    }
}

/// A progress line on a terminal (bytes of the total, percentage, rate, time left), and
/// the bytes the receiver got in each second for the report.
pub(crate) struct ProgressLine {
    shown: bool,
    started: Instant,
    /// Bytes of the whole job.
    pub(crate) total: u64,
    /// Bytes of the job done without moving (already in place).
    pub(crate) base: u64,
    /// (start s, end s, bytes) of each whole second so far.
    pub(crate) intervals: Vec<(f64, f64, u64)>,
    counted: u64,
    /// Bytes delivered by the job's earlier files, and by the current one so far.
    earlier: u64,
    current: u64,
}

impl ProgressLine {
    pub(crate) fn new(job: &JobArgs) -> Self {
        Self::starting_now(!job.quiet && std::io::stderr().is_terminal())
    }

    /// A line whose seconds start now, drawn on the terminal if `shown`.
    fn starting_now(shown: bool) -> Self {
        ProgressLine {
            shown,
            started: Instant::now(),
            total: 0,
            base: 0,
            intervals: Vec::new(),
            counted: 0,
            earlier: 0,
            current: 0,
        }
    }

    /// The current file is done: the next transfer's progress counts from zero.
    pub(crate) fn next_file(&mut self) {
        self.earlier += self.current;
        self.current = 0;
    }

    pub(crate) fn update(&mut self, p: &Progress) {
        // Goodput: what the receiver has, not what was sent (resends).
        self.current = p.delivered.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.count_seconds(secs);
        if !self.shown {
            return;
        }
        let moved = self.earlier + self.current;
        let rate = moved as f64 / secs;
        let done = (self.base + moved).min(self.total.max(1));
        let pct = if self.total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / self.total as f64
        };
        let left = if rate > 0.0 && self.total > done {
            format!("{:.0} s left", (self.total - done) as f64 / rate)
        } else {
            String::new()
        };
        eprint!(
            "\r{:.1} of {:.1} MB {:5.1}% {:8.1} MB/s  {}    ",
            done as f64 / 1e6,
            self.total as f64 / 1e6,
            pct,
            rate / 1e6,
            left
        );
        let _ = std::io::stderr().flush();
    }

    /// Closes the whole seconds up to `secs`. Bytes counted after more than a second
    /// (the caller was late) are spread evenly over the seconds they span: one second
    /// does not get them all and the next ones nothing.
    fn count_seconds(&mut self, secs: f64) {
        let moved = self.earlier + self.current;
        let closed = self.intervals.len();
        let due = secs.floor() as usize;
        if due <= closed {
            return;
        }
        let seconds = (due - closed) as u64;
        let bytes = moved.saturating_sub(self.counted);
        for i in 0..seconds {
            let share = bytes / seconds + u64::from(i < bytes % seconds);
            let end = (closed as u64 + i + 1) as f64;
            self.intervals.push((end - 1.0, end, share));
        }
        self.counted = moved;
    }

    pub(crate) fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// Per-second goodput (start s, end s, bytes) in the JSON report's interval shape.
pub(crate) fn intervals_json(intervals: &[(f64, f64, u64)]) -> Vec<serde_json::Value> {
    intervals
        .iter()
        .map(|&(start, end, bytes)| {
            serde_json::json!({
                "start": start,
                "end": end,
                "seconds": end - start,
                "bytes": bytes,
                "bits_per_second": bytes as f64 * 8.0 / (end - start),
            })
        })
        .collect()
}

fn print_report(
    kind: &str,
    name: &str,
    r: &TransferReport,
    intervals: &[(f64, f64, u64)],
    job: &JobArgs,
) -> Result<(), CliError> {
    let secs = r.elapsed.as_secs_f64().max(1e-6);
    let rate = r.moved as f64 / secs;
    if !job.quiet {
        println!(
            "{kind} {name}: {:.1} MB in {:.2} s, {:.1} MB/s ({:.0} Mbit/s) over DTP; {} B resumed, {} datagrams, {} B re-sent, {} dropped; digest {:032x}",
            r.moved as f64 / 1e6,
            secs,
            rate / 1e6,
            rate * 8.0 / 1e6,
            r.resumed,
            r.datagrams,
            r.resent,
            r.dropped,
            r.digest
        );
    }
    if let Some(path) = &job.json {
        // The shape of the TCP job's report (start, intervals, end), and DTP's own figures.
        let json = serde_json::json!({
            "start": { "transport": "dtp", "job": kind, "name": name, "mtu": job.mtu },
            "intervals": intervals_json(intervals),
            "end": {
                "files": 1,
                "bytes": r.moved,
                "seconds": secs,
                "bits_per_second": rate * 8.0,
            },
            "transport": "dtp",
            "size": r.size,
            "moved": r.moved,
            "resumed": r.resumed,
            "datagrams": r.datagrams,
            "resent": r.resent,
            "dropped": r.dropped,
            "seconds": secs,
            "bytes_per_second": rate,
            "digest": format!("{:032x}", r.digest),
        });
        std::fs::write(path, format!("{json:#}\n")).map_err(io_err(path))?;
    }
    Ok(())
}

/// `hawser push --transport dtp FILE ADDRESS:DEST` (several sources or a directory:
/// [`crate::dtp_tree::push_tree`]).
pub fn push_file(args: &PushArgs) -> Result<(), CliError> {
    if args.job.histogram.is_some() {
        return Err(CliError::Usage(
            "--histogram records the block round trips of --transport tcp; DTP has none".into(),
        ));
    }
    if crate::push_targets::split_push_paths(&args.paths)?
        .targets
        .len()
        > 1
    {
        return Err(CliError::Usage(
            "--transport dtp pushes to one target at a time; a push to several targets \
             goes with --transport tcp (the default)"
                .into(),
        ));
    }
    let [source, remote] = args.paths.as_slice() else {
        return crate::dtp_tree::push_tree(args);
    };
    let source = PathBuf::from(source);
    let meta = std::fs::metadata(&source).map_err(io_err(&source))?;
    if !meta.is_file() {
        return crate::dtp_tree::push_tree(args);
    }
    refuse_tcp_only(&args.job)?;
    let (candidates, dest) = parse_remote(remote)?;
    let host = host_of(remote, &candidates);
    let addr = first_reachable(&host, &candidates)?;
    let file_name = source
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("{} has no file name", source.display())))?
        .to_string_lossy()
        .into_owned();
    let dest = if dest.is_empty() || dest.ends_with('/') {
        format!("{dest}{file_name}")
    } else {
        dest
    };
    let (client, _rtt) = connect(&addr, &host, &args.job, 1 << 20)?;
    let mut line = ProgressLine::new(&args.job);
    line.total = meta.len();
    let result = push(
        &client,
        &source,
        dest.as_bytes(),
        &options(&args.job),
        &mut |p| line.update(p),
    );
    line.finish();
    client.close();
    forget_nexus_record(&addr, &args.job);
    let report = result?;
    let name = format!("{}:{dest}", shown_address(&addr));
    print_report("push", &name, &report, &line.intervals, &args.job)
}

/// Where a pulled file goes: into DEST if it is a directory (or ends in `/`), else DEST.
fn pulled_path(dest: &str, remote: &str) -> Result<PathBuf, CliError> {
    let name = Path::new(remote)
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("{remote:?} names no file")))?;
    let dest_path = Path::new(dest);
    if dest.ends_with('/') || dest_path.is_dir() {
        Ok(dest_path.join(name))
    } else {
        Ok(dest_path.to_path_buf())
    }
}

/// `hawser pull --transport dtp ADDRESS:SRC DEST`: one file, or a tree
/// ([`crate::dtp_tree::pull_tree`]).
pub fn pull_file(args: &PullArgs) -> Result<(), CliError> {
    let [remote, dest] = args.paths.as_slice() else {
        return Err(CliError::Usage(
            "--transport dtp pulls from one server: ADDRESS:SRC DEST".into(),
        ));
    };
    if args.job.histogram.is_some() {
        return Err(CliError::Usage(
            "--histogram records the block round trips of --transport tcp; DTP has none".into(),
        ));
    }
    let (candidates, path) = split_remote(remote, "SRC")?;
    let host = host_of(remote, &candidates);
    let addr = first_reachable(&host, &candidates)?;
    let path = path.trim_start_matches('/').to_string();
    let (client, _rtt) = connect(&addr, &host, &args.job, 1 << 20)?;
    // A tree's DTP part runs on this nexus; its TCP job, on its own, once this one is gone.
    let tree = (|| {
        let dtp = DtpClient::new(&client)?;
        let listing = dtp.list(path.as_bytes(), crate::dtp_tree::DTP_MIN_FILE)?;
        if listing.is_dir {
            return crate::dtp_tree::pull_tree_files(args, &dtp, &path, &listing).map(Some);
        }
        refuse_tcp_only(&args.job)?;
        let target = pulled_path(dest, &path)?;
        let mut line = ProgressLine::new(&args.job);
        let report = dtp.pull(path.as_bytes(), &target, &options(&args.job), &mut |p| {
            line.update(p)
        });
        line.finish();
        let name = target.display().to_string();
        print_report("pull", &name, &report?, &line.intervals, &args.job).map(|()| None)
    })();
    client.close();
    forget_nexus_record(&addr, &args.job);
    match tree? {
        Some(phase) => crate::dtp_tree::finish_pull_tree(args, &phase),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulled_file_goes_into_a_directory_or_takes_the_name_given() {
        let dir = std::env::temp_dir();
        assert_eq!(
            pulled_path(dir.to_str().unwrap(), "a/b.bin").unwrap(),
            dir.join("b.bin")
        );
        assert_eq!(
            pulled_path("new/", "b.bin").unwrap(),
            Path::new("new/b.bin")
        );
        assert_eq!(
            pulled_path("copy.bin", "a/b.bin").unwrap(),
            Path::new("copy.bin")
        );
        assert!(pulled_path("x", "").is_err());
    }

    /// A caller three seconds late (the push hashing its file) spreads what moved
    /// meanwhile over those seconds, and the next second counts only its own bytes.
    #[test]
    fn seconds_missed_share_the_bytes_moved_in_them() {
        let mut line = ProgressLine::starting_now(false);
        line.current = 100;
        line.count_seconds(0.5);
        assert!(line.intervals.is_empty());
        line.current = 3_000_002;
        line.count_seconds(3.2);
        assert_eq!(
            line.intervals,
            vec![
                (0.0, 1.0, 1_000_001),
                (1.0, 2.0, 1_000_001),
                (2.0, 3.0, 1_000_000)
            ]
        );
        line.current = 4_000_002;
        line.count_seconds(4.05);
        assert_eq!(line.intervals[3], (3.0, 4.0, 1_000_000));
        line.count_seconds(4.9);
        assert_eq!(line.intervals.len(), 4);
    }
}
