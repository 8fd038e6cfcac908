//! `hawser push --transport dtp` and `hawser pull --transport dtp` of directory trees (a
//! push also of several sources): each large regular file's data travels as DTP
//! datagrams, then the TCP job carries the rest of the tree over the nexus —
//! directories, symlinks, small files, modes, `--delete` — and checks every file,
//! finding DTP's files already in place (same size and mtime).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hawser_dtp::client::{DtpClient, PushSource};
use hawser_dtp::control::{FileListing, FileMetadata};
use hawser_replicate::{Source, WalkedFile};

use crate::connect::{connect, forget_nexus_record};
use crate::dtp_transfer::{ProgressLine, intervals_json, options};
use crate::error::{CliError, io_err};
use crate::pull::PullArgs;
use crate::push::{PushArgs, PushPlaces};
use crate::report::json_report;

/// Files smaller than this go with the TCP job (inline in its manifest or as blocks):
/// two control round trips and a fresh rate probe per file would cost them more than
/// datagrams save.
pub const DTP_MIN_FILE: u64 = 4 << 20;

/// What the datagram part of a tree push did.
#[derive(Debug, Default)]
pub(crate) struct DtpPhase {
    files: u64,
    /// Files whose copy was already in place (same size and mtime).
    in_place: u64,
    bytes: u64,
    resent: u64,
    elapsed: Duration,
    intervals: Vec<(f64, f64, u64)>,
}

impl DtpPhase {
    fn json(&self) -> serde_json::Value {
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        serde_json::json!({
            "files": self.files,
            "in_place": self.in_place,
            "bytes": self.bytes,
            "resent": self.resent,
            "seconds": secs,
            "bits_per_second": self.bytes as f64 * 8.0 / secs,
            "intervals": intervals_json(&self.intervals),
        })
    }
}

/// The server's path of a walked file: `dest` (relative to the root) joined with the
/// file's path relative to it.
fn remote_path(dest: &str, rel: &[u8]) -> Vec<u8> {
    let dest = dest.trim_matches('/');
    let mut path = dest.as_bytes().to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(rel);
    path
}

/// Pushes `files` of `walk` over DTP, one after the other, skipping those in place.
fn push_files(
    dtp: &DtpClient<'_>,
    walk: &Source,
    files: &[WalkedFile],
    args: &PushArgs,
) -> Result<DtpPhase, CliError> {
    let started = Instant::now();
    let mut phase = DtpPhase::default();
    let mut line = ProgressLine::new(&args.job);
    line.total = files.iter().map(|f| f.size).sum();
    let options = options(&args.job);
    for walked in files {
        let remote = remote_path(walk.dest(), &walked.rel);
        let shown = PathBuf::from(String::from_utf8_lossy(&walked.rel).into_owned());
        if dtp.stat(&remote)?.is_some_and(|there| {
            there.size == walked.size && there.metadata.mtime_ns == walked.mtime_ns
        }) {
            phase.in_place += 1;
            line.base += walked.size;
            continue;
        }
        let file = walk.open(walked)?;
        let meta = file.metadata().map_err(io_err(&shown))?;
        let source = PushSource {
            size: meta.len(),
            metadata: FileMetadata::of(&meta),
            file,
            shown: shown.clone(),
        };
        let report = dtp
            .push(source, &remote, &options, &mut |p| line.update(p))
            .map_err(|e| CliError::Usage(format!("{}: {e}", shown.display())))?;
        line.next_file();
        phase.files += 1;
        phase.bytes += report.moved;
        phase.resent += report.resent;
    }
    line.finish();
    phase.elapsed = started.elapsed();
    phase.intervals = line.intervals;
    Ok(phase)
}

/// `hawser push --transport dtp SRC... ADDRESS:DEST` where a source is a directory or
/// there are several.
pub fn push_tree(args: &PushArgs) -> Result<(), CliError> {
    let PushPlaces {
        addr,
        host,
        server,
        dest,
        sources,
    } = PushPlaces::resolve(args)?;
    let walk = Source::new(args.job.source_config(dest.clone())?, &sources)?;
    let large: Vec<WalkedFile> = walk
        .regular_files()
        .into_iter()
        .filter(|f| f.size >= DTP_MIN_FILE)
        .collect();
    let phase = if args.job.dry_run || large.is_empty() {
        DtpPhase::default()
    } else {
        let (client, _rtt) = connect(&addr, &host, &args.job, 1 << 20)?;
        let phase = DtpClient::new(&client)
            .map_err(CliError::from)
            .and_then(|dtp| push_files(&dtp, &walk, &large, args));
        client.close();
        forget_nexus_record(&addr, &args.job);
        phase?
    };
    if !args.job.quiet && !args.job.dry_run {
        print_phase(&phase);
    }
    let mut rest = args.clone();
    rest.job.json = None;
    let outcome = crate::push::push(&rest)?;
    if let Some(path) = &args.job.json {
        let mut json = json_report(&outcome, &server, &dest, &args.job);
        json["transport"] = "dtp".into();
        json["dtp"] = phase.json();
        std::fs::write(path, format!("{json:#}\n")).map_err(io_err(path))?;
    }
    Ok(())
}

/// The server's path of a listed file: the pull source's directory (the source itself
/// when it ends in `/`, else its parent) joined with the file's path relative to DEST.
fn pulled_remote_path(source: &str, rel: &[u8]) -> Vec<u8> {
    let mut source = source;
    while let Some(rest) = source.strip_prefix("./") {
        source = rest;
    }
    let base = if source.is_empty() || source == "." || source.ends_with('/') {
        source.trim_end_matches('/')
    } else {
        source.rsplit_once('/').map_or("", |(parent, _)| parent)
    };
    remote_path(base, rel)
}

/// Where a listed file goes under DEST: every component of the server's path must be a
/// plain name (the server is a peer: no `..`, no absolute path), and nothing on the way
/// here may be a symlink.
fn local_path(dest: &Path, rel: &[u8]) -> Result<PathBuf, CliError> {
    let refused = |why: &str| {
        CliError::Usage(format!(
            "the server listed {:?}, {why}: refused",
            String::from_utf8_lossy(rel)
        ))
    };
    let mut path = dest.to_path_buf();
    for part in rel.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." || part == b".." || part.contains(&0) {
            return Err(refused("not a relative path of plain names"));
        }
        path.push(std::ffi::OsStr::from_bytes(part));
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(refused("and a symlink is in its place here"));
        }
    }
    Ok(path)
}

/// Pulls the listed files over DTP into `dest`, one after the other, skipping those in
/// place; each takes the server file's mode and mtime.
fn pull_files(
    dtp: &DtpClient<'_>,
    source: &str,
    listing: &FileListing,
    dest: &Path,
    args: &PullArgs,
) -> Result<DtpPhase, CliError> {
    let started = Instant::now();
    let mut phase = DtpPhase::default();
    let mut line = ProgressLine::new(&args.job);
    line.total = listing.files.iter().map(|f| f.size).sum();
    let options = options(&args.job);
    for listed in &listing.files {
        let local = local_path(dest, &listed.rel)?;
        if std::fs::metadata(&local).is_ok_and(|m| {
            m.len() == listed.size && FileMetadata::of(&m).mtime_ns == listed.metadata.mtime_ns
        }) {
            phase.in_place += 1;
            line.base += listed.size;
            continue;
        }
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let remote = pulled_remote_path(source, &listed.rel);
        let report = dtp
            .pull(&remote, &local, &options, &mut |p| line.update(p))
            .map_err(|e| CliError::Usage(format!("{}: {e}", local.display())))?;
        std::fs::File::open(&local)
            .and_then(|f| listed.metadata.apply(&f))
            .map_err(io_err(&local))?;
        line.next_file();
        phase.files += 1;
        phase.bytes += report.moved;
    }
    line.finish();
    phase.elapsed = started.elapsed();
    phase.intervals = line.intervals;
    Ok(phase)
}

/// The DTP part of `hawser pull --transport dtp ADDRESS:SRC DEST` where SRC is a
/// directory on the server: its files of [`DTP_MIN_FILE`] and more, over `dtp`.
pub(crate) fn pull_tree_files(
    args: &PullArgs,
    dtp: &DtpClient<'_>,
    source: &str,
    listing: &FileListing,
) -> Result<DtpPhase, CliError> {
    if args.job.dry_run || listing.files.is_empty() {
        return Ok(DtpPhase::default());
    }
    let dest = pull_dest(args)?;
    std::fs::create_dir_all(&dest).map_err(io_err(&dest))?;
    pull_files(dtp, source, listing, &dest, args)
}

/// The rest of a tree pull once the DTP part is done (and its nexus closed): the TCP
/// job, which finds the DTP files in place, and the reports.
pub(crate) fn finish_pull_tree(args: &PullArgs, phase: &DtpPhase) -> Result<(), CliError> {
    if !args.job.quiet && !args.job.dry_run {
        print_phase(phase);
    }
    let mut rest = args.clone();
    rest.job.json = None;
    let outcome = crate::pull::pull(&rest)?;
    if let Some(path) = &args.job.json {
        let server = args.paths[0].rsplit_once(':').map_or("", |(s, _)| s);
        let dest = pull_dest(args)?;
        let mut json = json_report(&outcome, server, &dest.display().to_string(), &args.job);
        json["transport"] = "dtp".into();
        json["dtp"] = phase.json();
        std::fs::write(path, format!("{json:#}\n")).map_err(io_err(path))?;
    }
    Ok(())
}

fn pull_dest(args: &PullArgs) -> Result<PathBuf, CliError> {
    args.paths
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| CliError::Usage("give ADDRESS:SRC DEST".into()))
}

fn print_phase(phase: &DtpPhase) {
    let secs = phase.elapsed.as_secs_f64().max(1e-6);
    println!(
        "over DTP: {} files, {:.1} MB in {:.2} s, {:.1} MB/s; {} already in place, {} B re-sent",
        phase.files,
        phase.bytes as f64 / 1e6,
        secs,
        phase.bytes as f64 / 1e6 / secs,
        phase.in_place,
        phase.resent
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulled_files_are_found_beside_the_source_and_land_beneath_dest() {
        assert_eq!(pulled_remote_path("data", b"data/a"), b"data/a");
        assert_eq!(pulled_remote_path("x/data", b"data/a"), b"x/data/a");
        assert_eq!(pulled_remote_path("x/data/", b"a/b"), b"x/data/a/b");
        assert_eq!(pulled_remote_path("", b"a"), b"a");
        assert_eq!(pulled_remote_path("./", b"a"), b"a");
        let dest = Path::new("/nonexistent-dest");
        assert_eq!(local_path(dest, b"d/a").unwrap(), dest.join("d/a"));
        for hostile in [
            &b"../x"[..],
            b"/etc/passwd",
            b"a//b",
            b"a/./b",
            b"",
            b"a/\0",
        ] {
            assert!(local_path(dest, hostile).is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn remote_paths_join_the_destination_and_the_walked_path() {
        assert_eq!(remote_path("", b"d/a"), b"d/a");
        assert_eq!(remote_path("/", b"d/a"), b"d/a");
        assert_eq!(remote_path("backup/", b"d/a"), b"backup/d/a");
        assert_eq!(remote_path("/backup", b"a"), b"backup/a");
    }
}
