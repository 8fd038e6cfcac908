//! `tls` (issue 15): what TLS costs hawser, and hawser with TLS against OpenSSH.
//!
//! Every subject runs once per round, A/B alternated; ratios are of medians:
//! 1. `hawser bench --mode bulk --tls` vs the same without `--tls`, on loopback, with the
//!    arguments of `loopback-bulk`;
//! 2. setting up a trunk: the wall time of `hawser push --connections 8` of a 1 KiB file
//!    to a `hawser serve` on loopback, with `--tls --tls-pin` vs without, many pushes per
//!    round (`HAWSER_TLS_HANDSHAKES`), the two alternating push by push;
//! 3. `hawser push` of one large file (`HAWSER_TLS_LFN_PUSH_MIB`) through linkem at
//!    10 Gbit/s × 50 ms with and without TLS (root only);
//! 4. `hawser push --tls` vs `scp` and `rsync -a --whole-file -e ssh` of one file
//!    (`HAWSER_TLS_SSH_MIB`) to an sshd the scenario starts, on loopback and through the
//!    same link.
//!
//! The TLS servers present a self-signed certificate made with `openssl`
//! ([`super::certificate`]) and refuse clients without TLS (`--require-tls`), so a TLS
//! row cannot silently measure a plain connection; the rows without TLS go to a server
//! started without a certificate. A build of hawser without the TLS flags gets its TLS
//! rows marked "not available" and the other rows still run; `HAWSER_TLS_SKIP_LINK`
//! leaves the linkem rows out (a quick loopback-only run).

mod notes;
mod rounds;
mod servers;
mod subjects;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::certificate::{self, SelfSigned};
use super::hawser_tools::{self, PushOptions};
use super::lfn::ADDRESS_B;
use super::local::RemoveOnDrop;
use super::replicate::{DataSet, env_number, write_random_file};
use super::tools;
use super::{Context, is_root};
use crate::linkem::rng::SeededRng;
use crate::report::Outcome;
use notes::{describe, ratios};
use rounds::{link, loopback};
use subjects::{THROUGHPUT, declare_baselines, link_subjects, mark_unavailable};

/// Size of the file pushed through the link with and without TLS, MiB
/// (`HAWSER_TLS_LFN_PUSH_MIB`).
pub const LFN_PUSH_MIB: u64 = 4096;
/// Size of the file hawser, scp and rsync copy, MiB (`HAWSER_TLS_SSH_MIB`).
pub const SSH_FILE_MIB: u64 = 1024;
/// Pushes of the 1 KiB file per round, each with and without TLS
/// (`HAWSER_TLS_HANDSHAKES`).
pub const HANDSHAKES: usize = 20;
/// Connections of every `hawser push` here (its default): the 8-connection trunk whose
/// setup the 1 KiB pushes time.
pub const PUSH_CONNECTIONS: usize = 8;
const TINY_FILE_BYTES: usize = 1024;
/// Ports of the servers in linkem's side b (a fresh namespace: nothing else listens).
const LINK_PLAIN_PORT: u16 = 8415;
const LINK_TLS_PORT: u16 = 8417;
const LINK_SSH_PORT: u16 = 2222;

/// What the scenario runs with: sizes, binaries (or why not), data and certificate.
struct Plan {
    seconds: f64,
    handshakes: usize,
    ssh_mib: u64,
    lfn_mib: u64,
    /// `hawser` with `bench`, else why not.
    bench: std::result::Result<PathBuf, String>,
    /// Whether that bench takes `--tls`, else why not.
    bench_tls: std::result::Result<(), String>,
    /// `hawser` with `push` and `serve`, else why not.
    push: std::result::Result<PathBuf, String>,
    /// Whether push takes `--tls-pin` and serve `--tls-cert`, else why not.
    push_tls: std::result::Result<(), String>,
    certificate: SelfSigned,
    tiny: DataSet,
    ssh_file: DataSet,
    /// Whether the link rows run (root, not skipped).
    link: bool,
    /// Written only when the link rows run and hawser push is built.
    lfn_file: Option<DataSet>,
    /// Scratch for the targets and sshd.
    dir: PathBuf,
}

impl Plan {
    fn push_binary(&self) -> Option<&Path> {
        self.push.as_deref().ok()
    }

    fn tls_push_binary(&self) -> Option<&Path> {
        self.push_tls.is_ok().then(|| self.push_binary()).flatten()
    }

    fn tls_options(&self) -> PushOptions<'_> {
        PushOptions {
            tls_pin: Some(&self.certificate.pin),
            ..PushOptions::default()
        }
    }
}

/// One file to copy, written with incompressible bytes.
fn data_file(dir: &Path, name: &str, mib: u64, seed: u64) -> Result<DataSet> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    write_random_file(&path, mib, &mut SeededRng::new(seed))?;
    Ok(DataSet {
        label: format!("one {mib} MiB file"),
        source: path,
        bytes: mib << 20,
        files: 1,
        after_delete: false,
    })
}

fn tiny_file(dir: &Path) -> Result<DataSet> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("tiny.bin");
    let mut rng = SeededRng::new(0x0074_696e);
    let bytes: Vec<u8> = (0..TINY_FILE_BYTES / 8)
        .flat_map(|_| rng.next_u64().to_le_bytes())
        .collect();
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(DataSet {
        label: "one 1 KiB file".to_owned(),
        source: path,
        bytes: TINY_FILE_BYTES as u64,
        files: 1,
        after_delete: false,
    })
}

/// Why the link rows do not run, if they do not.
fn link_skipped() -> Option<String> {
    if std::env::var_os("HAWSER_TLS_SKIP_LINK").is_some_and(|v| !v.is_empty() && v != "0") {
        Some("skipped: HAWSER_TLS_SKIP_LINK is set".to_owned())
    } else if !is_root() {
        Some("needs root (linkem creates network namespaces)".to_owned())
    } else {
        None
    }
}

/// Runs the four comparisons and writes their ratios into the notes.
pub fn run(context: &Context, outcome: &mut Outcome) -> Result<()> {
    let ssh_mib = env_number("HAWSER_TLS_SSH_MIB", SSH_FILE_MIB);
    let lfn_mib = env_number("HAWSER_TLS_LFN_PUSH_MIB", LFN_PUSH_MIB);
    let handshakes = env_number("HAWSER_TLS_HANDSHAKES", HANDSHAKES).max(1);
    declare_baselines(outcome, ssh_mib, lfn_mib);
    for program in ["openssl", "sha256sum", "ssh-keygen", "scp", "ssh", "rsync"] {
        tools::require_program(program)?;
    }

    let bench = hawser_tools::hawser_subcommand("bench");
    let bench_tls = match &bench {
        Ok(binary) if hawser_tools::hawser_takes(binary, "bench", "--tls") => Ok(()),
        Ok(_) => Err("this hawser bench has no --tls (not built yet)".to_owned()),
        Err(reason) => Err(reason.clone()),
    };
    let push = match (
        hawser_tools::hawser_subcommand("push"),
        hawser_tools::hawser_subcommand("serve"),
    ) {
        (Ok(binary), Ok(_)) => Ok(binary),
        (Err(reason), _) | (_, Err(reason)) => Err(reason),
    };
    let push_tls = match &push {
        Ok(binary)
            if hawser_tools::hawser_takes(binary, "push", "--tls-pin")
                && hawser_tools::hawser_takes(binary, "serve", "--tls-cert") =>
        {
            Ok(())
        }
        Ok(_) => Err(
            "this hawser has no `push --tls-pin` or no `serve --tls-cert` (not built yet)"
                .to_owned(),
        ),
        Err(reason) => Err(reason.clone()),
    };
    let link_skip = link_skipped();
    mark_unavailable(
        outcome,
        (&bench, &bench_tls),
        (&push, &push_tls),
        link_skip.as_deref(),
        (ssh_mib, lfn_mib),
    );

    // The data, targets, keys and certificate: removed at the end, on errors too.
    let dir = context.scratch.join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _remove = RemoveOnDrop(dir.clone());
    let certificate = certificate::generate(&dir.join("certificate"), &["127.0.0.1", ADDRESS_B])
        .context("making the self-signed certificate")?;
    eprintln!("  writing the {ssh_mib} MiB file of the ssh comparison");
    let ssh_file = data_file(&dir.join("data"), "ssh.bin", ssh_mib, 0x0073_7368)?;
    let lfn_file = if link_skip.is_none() && push.is_ok() {
        eprintln!("  writing the {lfn_mib} MiB file pushed through the link");
        Some(data_file(
            &dir.join("data"),
            "lfn.bin",
            lfn_mib,
            0x006c_666e,
        )?)
    } else {
        None
    };
    let plan = Plan {
        seconds: context.seconds(5.0),
        handshakes,
        ssh_mib,
        lfn_mib,
        bench,
        bench_tls,
        push,
        push_tls,
        tiny: tiny_file(&dir.join("data"))?,
        certificate,
        ssh_file,
        link: link_skip.is_none(),
        lfn_file,
        dir,
    };
    describe(outcome, &plan);

    loopback(context, outcome, &plan)?;
    if plan.link
        && let Err(error) = link(context, outcome, &plan)
    {
        // The loopback rows stand; the link rows say why they are missing.
        let reason = format!("the link rows failed: {error:#}");
        eprintln!("  {reason}");
        for subject in link_subjects(ssh_mib, lfn_mib) {
            if outcome.median(&subject, THROUGHPUT).is_none() {
                outcome.mark_unavailable(&subject, &reason);
            }
        }
    }
    ratios(outcome, &plan);
    Ok(())
}
