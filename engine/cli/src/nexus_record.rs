//! The nexus a `hawser push` or `pull` with an explicit `--identity` created, remembered
//! in a small file while the job runs: if the process dies, the server keeps that nexus
//! for its grace period and holds the next run's create, so the next run with the same
//! server and identity recovers and destroys it first (`ClientOptions::replace_nexus`).
//!
//! One file per (server address, identity) under `$XDG_STATE_HOME/hawser/nexus/` (or
//! `~/.local/state/hawser/nexus/`), written once the nexus exists and removed when the
//! job ends cleanly. It also names the process that wrote it: a nexus whose process
//! still runs is in use and is never replaced.

use std::io::Write;
use std::path::{Path, PathBuf};

use hawser_runtime::{Address, NexusId};

use crate::serve::access::shown_address;

/// Longest file name written (file systems allow 255 bytes).
const MAX_NAME: usize = 200;

/// Where the records live: `$XDG_STATE_HOME/hawser/nexus`, else
/// `$HOME/.local/state/hawser/nexus`; `None` without either.
pub fn record_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".local/state")
        }
    };
    Some(base.join("hawser").join("nexus"))
}

/// The file name of the record for `server` and `identity`: both spelled out with every
/// byte outside `[A-Za-z0-9._-]` as `%XX`, or a hash of them when that is too long.
fn file_name(server: &Address, identity: &str) -> String {
    let text = format!("{} {identity}", shown_address(server));
    let mut name = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.len() > MAX_NAME {
        let hash = hawser_wire::xxh3::hash128(text.as_bytes());
        name = format!("{hash:032x}");
    }
    name
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Record {
    /// The nexus id, 32 hex digits.
    nexus: String,
    /// The process that created it.
    pid: u32,
}

/// A nexus left by an earlier run, as far as the records in `dir` tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous {
    /// No record.
    None,
    /// Left by a run that no longer runs: replace it.
    Abandoned(NexusId),
    /// Its run still runs (another `hawser` process): leave it alone.
    InUse(NexusId),
}

/// Whether process `pid` is a running `hawser` other than this one.
fn hawser_runs(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim_end().starts_with("hawser"))
}

fn parse_nexus(text: &str) -> Option<NexusId> {
    let hex = text.strip_prefix("nexus-").unwrap_or(text);
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok().map(NexusId)
}

/// Reads a nexus id as `nexus-<32 hex digits>` (as errors and logs print it) or the bare
/// hex digits.
pub fn parse_nexus_id(text: &str) -> Result<NexusId, String> {
    parse_nexus(text.trim())
        .ok_or_else(|| format!("{text:?} is not a nexus id (nexus-<32 hex digits>)"))
}

/// The record in `dir` for `server` and `identity`.
pub fn previous_in(dir: &Path, server: &Address, identity: &str) -> Previous {
    let path = dir.join(file_name(server, identity));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Previous::None;
    };
    let Some(record) = toml::from_str::<Record>(&text).ok() else {
        return Previous::None;
    };
    match parse_nexus(&record.nexus) {
        Some(nexus) if hawser_runs(record.pid) => Previous::InUse(nexus),
        Some(nexus) => Previous::Abandoned(nexus),
        None => Previous::None,
    }
}

/// Records in `dir` that this process created `nexus` on `server` as `identity`.
pub fn remember_in(
    dir: &Path,
    server: &Address,
    identity: &str,
    nexus: NexusId,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let record = Record {
        nexus: format!("{:032x}", nexus.0),
        pid: std::process::id(),
    };
    let text = toml::to_string(&record).map_err(std::io::Error::other)?;
    let path = dir.join(file_name(server, identity));
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    std::fs::rename(&temporary, &path)
}

/// Removes the record in `dir` for `server` and `identity` (the job ended cleanly).
pub fn forget_in(dir: &Path, server: &Address, identity: &str) {
    let _ = std::fs::remove_file(dir.join(file_name(server, identity)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hawser-record-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_record_is_found_until_forgotten_and_a_running_writer_keeps_it() {
        let d = dir("cycle");
        let server = &Address::parse("[2001:db8::1]:8415").unwrap();
        let nexus = NexusId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(previous_in(&d, server, "backup"), Previous::None);
        remember_in(&d, server, "backup", nexus).unwrap();
        // Written by this process, which is not "another run".
        assert_eq!(
            previous_in(&d, server, "backup"),
            Previous::Abandoned(nexus)
        );
        assert_eq!(previous_in(&d, server, "other"), Previous::None);
        let other = &Address::parse("192.0.2.1:8415").unwrap();
        assert_eq!(previous_in(&d, other, "backup"), Previous::None);
        forget_in(&d, server, "backup");
        assert_eq!(previous_in(&d, server, "backup"), Previous::None);
        // A record whose process is a running hawser (pid 1 is not; fake one through the
        // file) is in use; garbage is ignored.
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join(file_name(server, "backup"));
        std::fs::write(&path, "nexus = \"zz\"\npid = 1\n").unwrap();
        assert_eq!(previous_in(&d, server, "backup"), Previous::None);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn file_names_are_plain_and_bounded() {
        let server = &Address::parse("127.0.0.1:8415").unwrap();
        assert_eq!(
            file_name(server, "back up/1"),
            "127.0.0.1%3A8415%20back%20up%2F1"
        );
        assert_eq!(
            file_name(&Address::parse("unix:///run/h.sock").unwrap(), "b"),
            "unix%3A%2F%2F%2Frun%2Fh.sock%20b"
        );
        assert!(file_name(server, &"x/".repeat(300)).len() <= MAX_NAME);
        assert_ne!(
            file_name(server, &"x/".repeat(300)),
            file_name(server, &"y/".repeat(300))
        );
    }

    #[test]
    fn nexus_ids_parse_as_printed() {
        let nexus = NexusId(0xfeed);
        assert_eq!(parse_nexus_id(&nexus.to_string()), Ok(nexus));
        assert_eq!(
            parse_nexus_id("0000000000000000000000000000feed"),
            Ok(nexus)
        );
        assert!(parse_nexus_id("nexus-feed").is_err());
    }
}
