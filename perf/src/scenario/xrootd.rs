//! XRootD as a peer of the replication scenarios: an `xrootd` server exporting one
//! directory, started and stopped by the scenario, `xrdcp [--streams N]` copying a file
//! into it, the check that a copy is its source byte for byte (size and XXH3-128), and
//! the row of a scenario's report that one such copy per round makes.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hawser_wire::xxh3::Hasher128;

use super::process_cpu::{CpuTimes, seconds_between};
use super::replicate::{empty_directory, flush_dirty_pages};
use super::tools::{self, Background, command_in};
use super::{cpu_cost, is_root, settle};
use crate::report::{Outcome, Subject};

/// The user a root-started server drops to (`-R`).
const SERVER_USER: &str = "nobody";
/// How long the server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The configuration of a server exporting `export` on `port`.
pub fn config_text(export: &Path, port: u16) -> String {
    format!("all.export {}\nxrd.port {port}\n", export.display())
}

/// The `root://` URL of the absolute `path` on `host:port` (`root://H:P//abs/path`).
pub fn url(host: &str, port: u16, path: &Path) -> String {
    format!("root://{host}:{port}/{}", path.display())
}

/// What the server's log says so far: `Some(Ok)` once it serves, `Some(Err(line))` if
/// its initialisation failed, `None` while it is still starting.
pub fn log_readiness(log: &str) -> Option<Result<(), String>> {
    for line in log.lines() {
        if line.contains("initialization failed") || line.contains("execution terminated") {
            return Some(Err(line.trim().to_owned()));
        }
        // The last line of a good start: "------ xrootd anon@HOST:PORT initialization completed."
        if line.starts_with("------ xrootd ") && line.contains("initialization completed") {
            return Some(Ok(()));
        }
    }
    None
}

/// The uid of `user` in an `/etc/passwd` text.
pub fn passwd_uid(passwd: &str, user: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == user).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// A running `xrootd` exporting one directory; stopped when dropped.
#[derive(Debug)]
pub struct XrootdServer {
    process: Background,
    host: String,
    port: u16,
    export: PathBuf,
}

impl XrootdServer {
    /// Starts `xrootd` in `namespace` on `host:port`, exporting `export` (created), with
    /// its config and log under `scratch`, and waits until its log says it serves.
    ///
    /// As root it runs as `-R nobody`, which owns `export` and the log directory. After
    /// dropping to nobody it resolves its host name; where nobody may not read /etc (as
    /// on the build machines) that fails, so it runs in a UTS namespace of its own whose
    /// host name is its address, which needs no lookup.
    pub fn start(
        namespace: Option<&str>,
        host: &str,
        port: u16,
        export: &Path,
        scratch: &Path,
    ) -> Result<XrootdServer> {
        let xrootd = tools::require_program("xrootd")?;
        let config = scratch.join("xrootd.cfg");
        let log_dir = scratch.join("xrootd-log");
        let log = log_dir.join("xrootd.log");
        std::fs::create_dir_all(export)?;
        std::fs::create_dir_all(&log_dir)?;
        let _ = std::fs::remove_file(&log);
        std::fs::write(&config, config_text(export, port))?;
        let mut command;
        if is_root() {
            let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
            let uid = passwd_uid(&passwd, SERVER_USER)
                .with_context(|| format!("no user {SERVER_USER} in /etc/passwd"))?;
            for dir in [export, log_dir.as_path()] {
                std::os::unix::fs::chown(dir, Some(uid), None)
                    .with_context(|| format!("giving {} to {SERVER_USER}", dir.display()))?;
            }
            command = command_in(namespace, "unshare");
            command
                .args(["--uts", "sh", "-c", r#"hostname "$0" && exec "$@""#, host])
                .arg(&xrootd)
                .arg("-c")
                .arg(&config)
                .args(["-R", SERVER_USER, "-l"])
                .arg(&log);
        } else {
            command = command_in(namespace, &xrootd.to_string_lossy());
            command.arg("-c").arg(&config).arg("-l").arg(&log);
        }
        let mut process = Background::spawn(command, "xrootd")?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            match log_readiness(&text) {
                Some(Ok(())) => break,
                Some(Err(line)) => bail!("xrootd did not start: {line}"),
                None => {}
            }
            process
                .check_running()
                .with_context(|| format!("xrootd's log: {}", text.trim()))?;
            if Instant::now() > deadline {
                bail!(
                    "xrootd did not start within {READY_TIMEOUT:?}: {}",
                    text.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(XrootdServer {
            process,
            host: host.to_owned(),
            port,
            export: export.to_owned(),
        })
    }

    /// The exported directory.
    pub fn export(&self) -> &Path {
        &self.export
    }

    /// The URL of the file `name` in the exported directory.
    pub fn url_of(&self, name: &str) -> String {
        url(&self.host, self.port, &self.export.join(name))
    }

    /// The server's CPU times so far.
    pub fn cpu(&self) -> Result<CpuTimes> {
        self.process.cpu()
    }
}

/// How long a copy of `bytes` may take before it is stopped: a minute, plus the bytes
/// at 20 MB/s (far below any rate worth measuring).
pub fn copy_limit(bytes: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_secs_f64(bytes as f64 / 20e6)
}

/// One `xrdcp` copy.
#[derive(Debug, Clone, Copy)]
pub struct XrdcpRun {
    /// Wall time of the `xrdcp` process.
    pub seconds: f64,
    /// Its CPU seconds, when they could be read.
    pub client_cpu_s: Option<f64>,
}

/// `xrdcp --nopbar [--streams N] SOURCE URL` in `namespace`, stopped after `limit`.
pub fn run_xrdcp(
    namespace: Option<&str>,
    source: &Path,
    url: &str,
    streams: Option<usize>,
    limit: Duration,
) -> Result<XrdcpRun> {
    let xrdcp = tools::require_program("xrdcp")?;
    let mut command = command_in(namespace, &xrdcp.to_string_lossy());
    command.arg("--nopbar");
    if let Some(streams) = streams {
        command.args(["--streams", &streams.to_string()]);
    }
    command.arg(source).arg(url);
    // A server that is not there fails the run at once instead of being retried for
    // minutes.
    command.env("XRD_CONNECTIONRETRY", "1");
    let started = Instant::now();
    let (_, cpu) = tools::run_output_with_cpu(&mut command, "xrdcp", Some(limit))?;
    Ok(XrdcpRun {
        seconds: started.elapsed().as_secs_f64(),
        client_cpu_s: cpu,
    })
}

/// A file's size and XXH3-128 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigest {
    /// Bytes.
    pub size: u64,
    /// XXH3-128 of its contents.
    pub digest: u128,
}

/// Reads `path` through and digests it.
pub fn file_digest(path: &Path) -> Result<FileDigest> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Hasher128::new();
    let mut buffer = vec![0u8; 8 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok(FileDigest {
        size,
        digest: hasher.digest128(),
    })
}

/// `Ok` if `copy` has `source`'s size and digest; otherwise an error saying how it
/// differs.
pub fn check_copy(source: FileDigest, copy: &Path) -> Result<()> {
    let copied = file_digest(copy)?;
    if copied.size != source.size {
        bail!(
            "the copy has {} bytes, the source {}",
            copied.size,
            source.size
        );
    }
    if copied.digest != source.digest {
        bail!("the copy's XXH3-128 differs from the source's");
    }
    Ok(())
}

/// Where an `xrdcp` row runs and how.
#[derive(Debug, Clone, Copy)]
pub struct XrdcpSetup<'a> {
    /// Namespace of `xrdcp`, `None` for this one.
    pub client_namespace: Option<&'a str>,
    /// Namespace of `xrootd`.
    pub server_namespace: Option<&'a str>,
    /// Address the server is named by and the client connects to.
    pub host: &'a str,
    /// Its port.
    pub port: u16,
    /// `--streams N`, or xrdcp's default (one).
    pub streams: Option<usize>,
    /// Whether to write back every dirty page (`sync`) before each copy, as the
    /// loopback scenario does for every transfer.
    pub sync_first: bool,
}

/// A row of `xrdcp` copies of one file: the server it copies to, the file and its
/// digest; the server stops when this is dropped.
#[derive(Debug)]
pub struct XrdcpPeer {
    subject: Subject,
    client_namespace: Option<String>,
    streams: Option<usize>,
    sync_first: bool,
    server: XrootdServer,
    file: PathBuf,
    source: FileDigest,
}

impl XrdcpPeer {
    /// Starts the server of `setup` exporting `export` (config and log in `scratch`)
    /// and digests `file`, which every copy is checked against.
    pub fn start(
        subject: &Subject,
        setup: XrdcpSetup<'_>,
        file: &Path,
        export: &Path,
        scratch: &Path,
    ) -> Result<XrdcpPeer> {
        tools::require_program("xrdcp")?;
        let server = XrootdServer::start(
            setup.server_namespace,
            setup.host,
            setup.port,
            export,
            scratch,
        )?;
        Ok(XrdcpPeer {
            subject: subject.clone(),
            client_namespace: setup.client_namespace.map(str::to_owned),
            streams: setup.streams,
            sync_first: setup.sync_first,
            server,
            file: file.to_owned(),
            source: file_digest(file)?,
        })
    }

    /// The row's subject.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// One copy into the emptied export directory, checked and recorded: elapsed time,
    /// rate (file bytes / wall time of xrdcp) and cost per byte. A copy that fails or
    /// differs from the file becomes a note instead of values.
    pub fn run(&self, outcome: &mut Outcome, round: usize) -> Result<()> {
        let name = self
            .file
            .file_name()
            .context("the copied file has no name")?
            .to_string_lossy()
            .into_owned();
        empty_directory(self.server.export())?;
        if self.sync_first {
            flush_dirty_pages()?;
        }
        let bytes = self.source.size as f64;
        let server_before = self.server.cpu().ok();
        let copied = run_xrdcp(
            self.client_namespace.as_deref(),
            &self.file,
            &self.server.url_of(&name),
            self.streams,
            copy_limit(self.source.size),
        );
        settle();
        let server_s = seconds_between(server_before, self.server.cpu().ok());
        let checked = copied.and_then(|run| {
            check_copy(self.source, &self.server.export().join(&name))?;
            Ok(run)
        });
        let subject = &self.subject;
        match checked {
            Ok(run) => {
                outcome.record(subject, "elapsed_s", "s", run.seconds);
                outcome.record(
                    subject,
                    "throughput_bytes_per_sec",
                    "bytes/s",
                    bytes / run.seconds,
                );
                cpu_cost::record_transfer(outcome, subject, bytes, run.client_cpu_s, server_s);
            }
            Err(error) => outcome.notes.push(format!(
                "{} round {round} failed: {error:#}",
                subject.label()
            )),
        }
        Ok(())
    }

    /// Stops the server and removes what it received.
    pub fn stop(self) -> Result<()> {
        let export = self.server.export().to_owned();
        drop(self.server);
        empty_directory(&export)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_exports_the_directory_on_the_port() {
        assert_eq!(
            config_text(Path::new("/tmp/run/target-xrootd"), 11094),
            "all.export /tmp/run/target-xrootd\nxrd.port 11094\n"
        );
    }

    #[test]
    fn urls_carry_the_absolute_path_after_the_host() {
        assert_eq!(
            url("198.18.0.2", 1094, Path::new("/tmp/x/push.bin")),
            "root://198.18.0.2:1094//tmp/x/push.bin"
        );
    }

    #[test]
    fn readiness_from_the_log() {
        let starting = "251206 08:00:07 Copr.  2004-2012 Stanford University, xrd version v5.5.3\n\
                        ------ xroot protocol initialization completed.\n";
        assert_eq!(log_readiness(starting), None);
        let ready = format!(
            "{starting}------ xrootd anon@[::ffff:127.0.0.1]:11094 initialization completed.\n"
        );
        assert_eq!(log_readiness(&ready), Some(Ok(())));
        let failed = "261206 07:51:26 16610 XrdConfig: Unable to determine host name;  \
                      ai_family not supported ; execution terminated.\n";
        assert!(matches!(log_readiness(failed), Some(Err(line)) if line.contains("host name")));
        assert!(matches!(
            log_readiness("------ xrootd anon@h:1 initialization failed.\n"),
            Some(Err(_))
        ));
    }

    #[test]
    fn uid_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(passwd_uid(passwd, "nobody"), Some(65534));
        assert_eq!(passwd_uid(passwd, "root"), Some(0));
        assert_eq!(passwd_uid(passwd, "nob"), None);
        assert_eq!(passwd_uid("broken", "broken"), None);
    }

    #[test]
    fn copies_are_checked_by_size_and_digest() {
        let dir = std::env::temp_dir().join(format!("hawser-xrootd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("source");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&source, &bytes).unwrap();
        let digest = file_digest(&source).unwrap();
        assert_eq!(digest.size, 100_000);
        let copy = dir.join("copy");
        std::fs::write(&copy, &bytes).unwrap();
        check_copy(digest, &copy).unwrap();
        let mut changed = bytes.clone();
        changed[50_000] ^= 1;
        std::fs::write(&copy, &changed).unwrap();
        assert!(
            check_copy(digest, &copy)
                .unwrap_err()
                .to_string()
                .contains("XXH3")
        );
        std::fs::write(&copy, &bytes[..99_999]).unwrap();
        assert!(
            check_copy(digest, &copy)
                .unwrap_err()
                .to_string()
                .contains("99999 bytes")
        );
        assert!(check_copy(digest, &dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
