//! The brokers of the `messaging` scenario, started as child processes on free loopback
//! ports with everything they write under the scenario's scratch directory, and stopped
//! when dropped: `nats-server` and `rabbitmq-server` (with its own `epmd` on a port of its
//! own, so a system epmd and its nodes are never touched). ZeroMQ has no broker.
//!
//! Works as root and as a normal user: Debian's `/usr/sbin/rabbitmq-server` is a wrapper
//! that switches to the `rabbitmq` user (and refuses anyone else), so the scripts behind
//! it in `/usr/lib/rabbitmq/bin/` are run directly, with `HOME` (the Erlang cookie), the
//! node's database, logs, configuration and enabled-plugins files in the scratch
//! directory.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::super::tools::{Background, find_program, free_loopback_port};
use super::peer::tail;

/// How long a broker may take to accept connections (RabbitMQ boots in ~5 s on an idle
/// 2-core machine; much longer while others compile).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `rabbitmqctl stop` and the server's exit may take before the group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn accepts(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}

/// The last lines of a log file.
fn log_tail(path: &Path, lines: usize) -> String {
    tail(&std::fs::read_to_string(path).unwrap_or_default(), lines)
}

/// Waits until `port` accepts connections; fails early if `exited` reports the server
/// gone (with why).
fn wait_for_port(
    port: u16,
    what: &str,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if accepts(port) {
            return Ok(started.elapsed());
        }
        if let Some(why) = exited() {
            bail!("{what} exited before accepting connections: {why}");
        }
        if started.elapsed() > START_TIMEOUT {
            bail!("{what} did not accept connections on 127.0.0.1:{port} within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------
// NATS

/// A `nats-server` (core NATS, no JetStream) on a free loopback port.
#[derive(Debug)]
pub struct NatsServer {
    process: Background,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    /// What `nats-server --version` says.
    pub version: String,
}

impl NatsServer {
    /// Starts `nats-server -a 127.0.0.1 -p PORT -l DIR/nats.log -P DIR/nats.pid`.
    pub fn start(program: &Path, dir: &Path) -> Result<NatsServer> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = free_loopback_port()?;
        let log = dir.join("nats.log");
        let mut command = Command::new(program);
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-l"])
            .arg(&log)
            .arg("-P")
            .arg(dir.join("nats.pid"));
        let mut process = Background::spawn(command, "nats-server")?;
        wait_for_port(port, "nats-server", || {
            process
                .check_running()
                .err()
                .map(|error| format!("{error}; its log ends: {}", log_tail(&log, 3)))
        })?;
        let version = Command::new(program)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Ok(NatsServer {
            process,
            url: format!("nats://127.0.0.1:{port}"),
            version,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

// ---------------------------------------------------------------------------------------
// RabbitMQ

/// The RabbitMQ scripts: those behind Debian's wrappers when they exist, else the ones on
/// `PATH` (a generic installation has the real scripts there).
#[derive(Debug, Clone)]
pub struct RabbitPrograms {
    /// `rabbitmq-server`.
    pub server: PathBuf,
    /// `rabbitmqctl`.
    pub ctl: PathBuf,
    /// `epmd`, to stop the one the node started.
    pub epmd: Option<PathBuf>,
}

impl RabbitPrograms {
    /// Finds the scripts, or says what to install.
    pub fn find() -> Result<RabbitPrograms> {
        let script = |name: &str| {
            let debian = Path::new("/usr/lib/rabbitmq/bin").join(name);
            if debian.is_file() {
                Some(debian)
            } else {
                find_program(name)
            }
        };
        let missing =
            || "rabbitmq-server is not installed: run scripts/setup.sh (installs rabbitmq-server)";
        Ok(RabbitPrograms {
            server: script("rabbitmq-server").with_context(missing)?,
            ctl: script("rabbitmqctl").with_context(missing)?,
            epmd: find_program("epmd"),
        })
    }
}

/// The Erlang resolver configuration of the node and `rabbitmqctl`.
const INETRC: &str = "{host, {127,0,0,1}, [\"localhost\"]}.\n{lookup, [file, native]}.\n";

/// Ports of one RabbitMQ node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RabbitPorts {
    /// AMQP listener.
    pub amqp: u16,
    /// Erlang distribution (by default AMQP + 20000, past 65535 for a high free port).
    pub dist: u16,
    /// The node's own epmd.
    pub epmd: u16,
}

/// The environment of the node and of `rabbitmqctl` talking to it: every path under
/// `dir`, every port given, nothing read from `/etc/rabbitmq` or the user's home.
pub fn rabbit_env(dir: &Path, node: &str, ports: RabbitPorts) -> Vec<(&'static str, OsString)> {
    let path = |name: &str| dir.join(name).into_os_string();
    vec![
        ("HOME", path("home")),
        ("RABBITMQ_NODENAME", node.into()),
        ("RABBITMQ_USE_LONGNAME", "false".into()),
        ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
        ("RABBITMQ_NODE_PORT", ports.amqp.to_string().into()),
        ("RABBITMQ_DIST_PORT", ports.dist.to_string().into()),
        ("ERL_EPMD_PORT", ports.epmd.to_string().into()),
        ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
        ("RABBITMQ_MNESIA_BASE", path("mnesia")),
        ("RABBITMQ_LOG_BASE", path("log")),
        ("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf")),
        ("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf")),
        ("RABBITMQ_ADVANCED_CONFIG_FILE", path("advanced.config")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins")),
        ("RABBITMQ_PID_FILE", path("rabbitmq.pid")),
        // Erlang resolves the node's host (`localhost`) from its own table first: no
        // dependence on a readable /etc/hosts.
        ("ERL_INETRC", path("erl_inetrc")),
    ]
}

/// A RabbitMQ node on free loopback ports; stopped (`rabbitmqctl stop`, else its process
/// group killed) and its epmd stopped when dropped.
#[derive(Debug)]
pub struct RabbitServer {
    child: Option<Child>,
    programs: RabbitPrograms,
    env: Vec<(&'static str, OsString)>,
    node: String,
    dir: PathBuf,
    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub url: String,
    /// What `rabbitmqctl version` says.
    pub version: String,
    /// How long the node took to accept connections.
    pub boot: Duration,
}

impl RabbitServer {
    /// Writes the node's files into `dir` and starts it; returns once `rabbitmqctl
    /// await_startup` says it runs.
    pub fn start(programs: &RabbitPrograms, dir: &Path) -> Result<RabbitServer> {
        for sub in ["home", "mnesia", "log"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        // No site configuration: the defaults (guest may log in from loopback), no plugins.
        for (name, text) in [
            ("rabbitmq-env.conf", "# hawser-perf: no overrides\n"),
            ("rabbitmq.conf", "# hawser-perf: the defaults\n"),
            ("enabled_plugins", "[].\n"),
            ("erl_inetrc", INETRC),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        let ports = RabbitPorts {
            amqp: free_loopback_port()?,
            dist: free_loopback_port()?,
            epmd: free_loopback_port()?,
        };
        let node = format!("hawser-perf-{}@localhost", std::process::id());
        let env = rabbit_env(dir, &node, ports);
        let output = dir.join("server.out");
        let out = std::fs::File::create(&output)
            .with_context(|| format!("creating {}", output.display()))?;
        let mut command = Command::new(&programs.server);
        command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Its own process group: erl, beam.smp and their helpers go down together.
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", programs.server.display()))?;
        let mut server = RabbitServer {
            child: Some(child),
            programs: programs.clone(),
            env,
            url: format!("amqp://guest:guest@127.0.0.1:{}/%2f", ports.amqp),
            node,
            dir: dir.to_owned(),
            version: String::new(),
            boot: Duration::ZERO,
        };
        let log = dir.join("log").join(format!("{}.log", server.node));
        let child = server.child.as_mut().expect("just spawned");
        server.boot = wait_for_port(ports.amqp, "rabbitmq-server", || match child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{status}; it printed: {}; its log ends: {}",
                log_tail(&output, 4),
                log_tail(&log, 4)
            )),
            _ => None,
        })?;
        server
            .ctl(
                &["await_startup", "--timeout", "60"],
                Duration::from_secs(90),
            )
            .with_context(|| format!("rabbitmq-server's log ends: {}", log_tail(&log, 4)))?;
        server.version = server
            .ctl(&["version"], Duration::from_secs(30))
            .unwrap_or_default();
        Ok(server)
    }

    /// Runs `rabbitmqctl -n NODE ARGS` with the node's environment (killed after
    /// `timeout`); returns its standard output.
    fn ctl(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let mut child = Command::new(&self.programs.ctl)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting rabbitmqctl")?;
        let deadline = Instant::now() + timeout;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "rabbitmqctl {} did not finish within {timeout:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "rabbitmqctl {} failed ({}): {}",
                args.join(" "),
                output.status,
                tail(&String::from_utf8_lossy(&output.stderr), 3)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Stops the node, then its epmd. Best effort: a node that does not stop has its
    /// process group killed.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = self.ctl(&["stop"], STOP_TIMEOUT);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Whatever of the group is left (helpers, or the node itself after a timeout).
        let _ = crate::sys::kill_process_group(child.id());
        let _ = child.wait();
        // The epmd the node started on its own port (a daemon outside the group).
        if let Some(epmd) = &self.programs.epmd {
            let _ = Command::new(epmd)
                .arg("-kill")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_reads_and_writes_only_its_directory() {
        let ports = RabbitPorts {
            amqp: 40001,
            dist: 40002,
            epmd: 40003,
        };
        let env = rabbit_env(Path::new("/s"), "n@localhost", ports);
        let get = |key: &str| {
            env.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("RABBITMQ_NODE_PORT").as_deref(), Some("40001"));
        assert_eq!(get("RABBITMQ_DIST_PORT").as_deref(), Some("40002"));
        assert_eq!(get("ERL_EPMD_PORT").as_deref(), Some("40003"));
        assert_eq!(
            get("RABBITMQ_NODE_IP_ADDRESS").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(get("RABBITMQ_NODENAME").as_deref(), Some("n@localhost"));
        for (key, value) in &env {
            let value = value.to_string_lossy();
            if value.starts_with('/') {
                assert!(value.starts_with("/s/"), "{key}={value}");
            }
        }
        for key in [
            "HOME",
            "RABBITMQ_MNESIA_BASE",
            "RABBITMQ_LOG_BASE",
            "RABBITMQ_CONF_ENV_FILE",
            "RABBITMQ_CONFIG_FILE",
            "RABBITMQ_ENABLED_PLUGINS_FILE",
        ] {
            assert!(get(key).is_some(), "{key} missing");
        }
    }
}
