//! The OpenSSH baselines: an `sshd` the scenario starts itself (its own host key, client
//! key, `authorized_keys` and config in a directory of its own; public keys only, no PAM),
//! killed when its guard is dropped, and `scp` and `rsync -e ssh` runs against it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::tools::{Background, command_in, find_program, require_program, run_output};

/// What `sshd -D -e` logs once it accepts connections.
const LISTENING: &str = "Server listening on ";
/// How long sshd may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// sshd's privilege-separation directory (Debian's build), which must exist.
const PRIVSEP_DIR: &str = "/run/sshd";

/// The client options every `ssh` here runs with: the generated key only, no
/// configuration or known-hosts files, never a prompt.
fn client_options(key: &Path) -> Vec<String> {
    [
        "-i",
        &key.to_string_lossy(),
        "-F",
        "/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The `sshd_config` of a scenario's server: keys and pid file in `dir`, listening on
/// `address` (the port comes from `-p`), public-key logins only (root's too), the SFTP
/// subsystem in-process (scp speaks SFTP by default since OpenSSH 9.0).
pub fn config_text(dir: &Path, address: &str) -> String {
    let d = dir.display();
    format!(
        "ListenAddress {address}\n\
         HostKey {d}/hostkey\n\
         AuthorizedKeysFile {d}/authorized_keys\n\
         PidFile {d}/sshd.pid\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         StrictModes no\n\
         UsePAM no\n\
         UseDNS no\n\
         PrintMotd no\n\
         X11Forwarding no\n\
         AllowTcpForwarding no\n\
         Subsystem sftp internal-sftp\n"
    )
}

/// A running `sshd` and what its clients need; the server is killed and its directory
/// removed when this is dropped.
#[derive(Debug)]
pub struct SshServer {
    process: Option<Background>,
    dir: PathBuf,
    key: PathBuf,
    host: String,
    port: u16,
    user: String,
}

fn ssh_keygen(path: &Path) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    run_output(
        Command::new(require_program("ssh-keygen")?)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "hawser-perf", "-f"])
            .arg(path),
        "ssh-keygen",
    )?;
    Ok(())
}

/// The login name of this process (whom the client logs in as: sshd started by a
/// non-root user can only log that user in).
fn current_user() -> Result<String> {
    let output = run_output(Command::new("id").arg("-un"), "id -un")?;
    let user = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if user.is_empty() {
        bail!("id -un printed no user name");
    }
    Ok(user)
}

/// sshd's absolute path (it re-executes itself and refuses a relative one); `/usr/sbin`
/// is often not on a non-root `PATH`.
fn sshd_path() -> Result<PathBuf> {
    let found = find_program("sshd").or_else(|| {
        let path = PathBuf::from("/usr/sbin/sshd");
        path.is_file().then_some(path)
    });
    let path = found.with_context(|| {
        "sshd is not installed: run scripts/setup.sh (installs openssh-server)".to_owned()
    })?;
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// The last lines of a log, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join(" / ")
}

impl SshServer {
    /// Generates the keys and config in `dir` (created; removed again on drop) and starts
    /// `sshd -D -e -E LOG -f CONFIG -p PORT` in `namespace`, listening on `address`;
    /// returns once its log says it listens.
    pub fn start(
        dir: &Path,
        namespace: Option<&str>,
        address: &str,
        port: u16,
    ) -> Result<SshServer> {
        let sshd = sshd_path()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if !Path::new(PRIVSEP_DIR).is_dir() {
            std::fs::create_dir_all(PRIVSEP_DIR)
                .with_context(|| format!("creating sshd's {PRIVSEP_DIR}"))?;
        }
        let host_key = dir.join("hostkey");
        let key = dir.join("client_key");
        ssh_keygen(&host_key)?;
        ssh_keygen(&key)?;
        std::fs::copy(key.with_extension("pub"), dir.join("authorized_keys"))
            .context("writing authorized_keys")?;
        let config = dir.join("sshd_config");
        std::fs::write(&config, config_text(dir, address))
            .with_context(|| format!("writing {}", config.display()))?;
        let log = dir.join("sshd.log");
        let _ = std::fs::remove_file(&log);
        let mut command = command_in(namespace, &sshd.to_string_lossy());
        command
            .args(["-D", "-e", "-E"])
            .arg(&log)
            .arg("-f")
            .arg(&config)
            .args(["-p", &port.to_string()]);
        let process = Background::spawn(command, "sshd")?;
        let mut server = SshServer {
            process: Some(process),
            dir: dir.to_owned(),
            key,
            host: address.to_owned(),
            port,
            user: current_user()?,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::fs::read_to_string(&log).is_ok_and(|text| text.contains(LISTENING)) {
                return Ok(server);
            }
            if let Some(process) = &mut server.process
                && let Err(error) = process.check_running()
            {
                bail!("{error}: {}", tail(&log, 5));
            }
            if Instant::now() > deadline {
                bail!(
                    "sshd did not say it listens within {START_TIMEOUT:?}: {}",
                    tail(&log, 5)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `USER@HOST:PATH` for a client.
    fn remote(&self, path: &Path) -> String {
        format!("{}@{}:{}", self.user, self.host, path.display())
    }

    /// Adds the end of sshd's log to a failed client's error.
    fn explain<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|error| {
            let log = tail(&self.dir.join("sshd.log"), 3);
            if log.is_empty() {
                error
            } else {
                error.context(format!("sshd's log ends: {log}"))
            }
        })
    }

    /// The `scp` command line (after the program name) that copies `file` to
    /// `destination` on this server.
    pub fn scp_args(&self, file: &Path, destination: &Path) -> Vec<String> {
        let mut args = vec!["-q".to_owned(), "-P".to_owned(), self.port.to_string()];
        args.extend(client_options(&self.key));
        args.push(file.to_string_lossy().into_owned());
        args.push(self.remote(destination));
        args
    }

    /// The `rsync` command line (after the program name) that copies `file` to
    /// `destination` on this server over ssh, whole (no delta algorithm: the destination
    /// is fresh, as the other tools' are).
    pub fn rsync_args(&self, file: &Path, destination: &Path) -> Vec<String> {
        let mut ssh = vec!["ssh".to_owned(), "-p".to_owned(), self.port.to_string()];
        ssh.extend(client_options(&self.key));
        vec![
            "-a".to_owned(),
            "--whole-file".to_owned(),
            "-e".to_owned(),
            ssh.join(" "),
            file.to_string_lossy().into_owned(),
            self.remote(destination),
        ]
    }

    /// Runs `scp` in `namespace`, copying `file` to `destination`.
    pub fn scp(&self, namespace: Option<&str>, file: &Path, destination: &Path) -> Result<()> {
        let scp = require_program("scp")?;
        let mut command = command_in(namespace, &scp.to_string_lossy());
        command.args(self.scp_args(file, destination));
        self.explain(run_output(&mut command, "scp").map(drop))
    }

    /// Runs `rsync -a --whole-file -e ssh` in `namespace`, copying `file` to
    /// `destination`.
    pub fn rsync(&self, namespace: Option<&str>, file: &Path, destination: &Path) -> Result<()> {
        let rsync = require_program("rsync")?;
        let mut command = command_in(namespace, &rsync.to_string_lossy());
        command.args(self.rsync_args(file, destination));
        self.explain(run_output(&mut command, "rsync -e ssh").map(drop))
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        // The listener first (Background kills and reaps it), then its keys and log.
        drop(self.process.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> SshServer {
        SshServer {
            process: None,
            dir: PathBuf::from("/nonexistent/hawser-perf-ssh-test"),
            key: PathBuf::from("/k/client_key"),
            host: "198.18.0.2".to_owned(),
            port: 2222,
            user: "root".to_owned(),
        }
    }

    #[test]
    fn config_allows_public_keys_only_and_keeps_its_files_in_its_directory() {
        let text = config_text(Path::new("/tmp/s"), "127.0.0.1");
        for line in [
            "ListenAddress 127.0.0.1",
            "HostKey /tmp/s/hostkey",
            "AuthorizedKeysFile /tmp/s/authorized_keys",
            "PidFile /tmp/s/sshd.pid",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "StrictModes no",
            "UsePAM no",
            "Subsystem sftp internal-sftp",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn client_commands_name_the_key_port_and_destination() {
        let server = server();
        let (file, dest) = (Path::new("/d/f.bin"), Path::new("/t/f.bin"));
        let scp = server.scp_args(file, dest).join(" ");
        assert!(scp.starts_with("-q -P 2222 -i /k/client_key "), "{scp}");
        assert!(scp.contains("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"));
        assert!(scp.ends_with("/d/f.bin root@198.18.0.2:/t/f.bin"), "{scp}");
        let rsync = server.rsync_args(file, dest);
        assert_eq!(rsync[..3], ["-a", "--whole-file", "-e"]);
        assert!(
            rsync[3].starts_with("ssh -p 2222 -i /k/client_key -F /dev/null"),
            "{}",
            rsync[3]
        );
        assert_eq!(rsync[4..], ["/d/f.bin", "root@198.18.0.2:/t/f.bin"]);
    }
}
