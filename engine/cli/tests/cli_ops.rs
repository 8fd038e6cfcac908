//! A server as operators run it: Prometheus metrics checked by `promtool`, job lines with
//! their figures in the JSON log (pushes, DMP publishers), SIGHUP reloading the user
//! database, SIGTERM draining a slow push that `push --resume` then completes, a drain
//! bounded by its timeout or cut short by a second signal, and systemd's readiness
//! notifications.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{TempDir, assert_succeeded, text, users_entry};

/// A `hawser serve --log-format json` child whose stderr is collected line by line.
struct Server {
    child: Child,
    addr: String,
    metrics: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(root: &Path, args: &[&str]) -> Server {
        Self::start_with_env(root, args, &[])
    }

    fn start_with_env(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--root")
            .arg(root)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let collected = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let wants_metrics = args.contains(&"--metrics");
        let (mut addr, mut metrics) = (None, None);
        while addr.is_none() || (wants_metrics && metrics.is_none()) {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("serve ended early: {:?}", log.lock().unwrap());
            }
            if let Some(a) = line.trim().strip_prefix("listening on ") {
                addr = Some(a.to_owned());
            } else if let Some(m) = line.trim().strip_prefix("metrics on ") {
                metrics = Some(m.to_owned());
            }
        }
        Server {
            child,
            addr: addr.unwrap(),
            metrics,
            log,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// The log's events (JSON objects), as parsed so far.
    fn events(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// Waits up to `timeout` for an event whose message is `message`.
    fn wait_for(&self, message: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self
                .events()
                .into_iter()
                .find(|e| e["fields"]["message"] == message)
            {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no {message:?} in {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the process to exit.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve still runs after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hawser push ARGS...` with `password` (if any) in HAWSER_PASSWORD.
fn push(args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hawser"));
    command
        .args(["push", "--quiet", "--connections", "2"])
        .args(args)
        .env_remove("HAWSER_PASSWORD")
        .env_remove("RUST_LOG");
    if let Some(password) = password {
        command.env("HAWSER_PASSWORD", password);
    }
    command.output().unwrap()
}

/// One HTTP/1.1 request `head` to `addr`; the whole answer.
fn http(addr: &str, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Runs `promtool check metrics` on `exposition`; without promtool the test fails under
/// CI=true (the CI installs it: scripts/setup.sh --ci) and is skipped in words otherwise.
fn promtool_check(exposition: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let message = format!(
                "promtool cannot run ({e}): install Debian's `prometheus` package \
                 (scripts/setup.sh --ci does)"
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("SKIPPED the promtool check: {message}");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the exposition: {}{}\n{exposition}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn the_metrics_endpoint_serves_what_promtool_accepts() {
    let (src, dst, etc) = (
        TempDir::new("ops-m-src"),
        TempDir::new("ops-m-dst"),
        TempDir::new("ops-m-etc"),
    );
    std::fs::write(src.path().join("f"), vec![7u8; 100_000]).unwrap();
    let config = etc.path().join("serve.toml");
    std::fs::write(&config, users_entry("alice", "right")).unwrap();
    let server = Server::start(
        dst.path(),
        &[
            "--metrics",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let metrics = server.metrics.clone().unwrap();
    let from = format!("{}/", src.path().display());
    let to = format!("{}:m", server.addr);
    let as_alice = ["--identity", "alice", from.as_str(), to.as_str()];
    assert_succeeded(&push(&as_alice, Some("right")), "push");
    // A login the server refuses is counted, and its source is throttled.
    assert!(!push(&as_alice, Some("wrong")).status.success());

    let answer = http(&metrics, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    for sample in [
        "hawser_identity_jobs_started_total{identity=\"alice\",kind=\"push\"} 1",
        "hawser_identity_jobs_ended_total{identity=\"alice\",kind=\"push\",outcome=\"ok\"} 1",
        "hawser_identity_job_bytes_total{identity=\"alice\",kind=\"push\"} 100000",
        "hawser_identity_job_files_total{identity=\"alice\",kind=\"push\"} 1",
        "# TYPE hawser_connection_rtt_seconds histogram",
        "hawser_shard_accepts_total{shard=\"0\"}",
        "hawser_server_nexuses ",
        "hawser_server_connections_refused_total 1\n",
        "hawser_server_throttled_sources 1\n",
    ] {
        assert!(body.contains(sample), "no {sample:?} in\n{body}");
    }
    let requests = body
        .lines()
        .find_map(|l| l.strip_prefix("hawser_identity_requests_total{identity=\"alice\"} "))
        .unwrap_or_else(|| panic!("no request counter in\n{body}"));
    assert!(
        requests.parse::<u64>().unwrap() >= 3,
        "Begin, Block, Finish: {requests}"
    );
    promtool_check(body);

    // Anything else is refused, and a client that sends garbage gets an answer too.
    assert!(http(&metrics, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(&metrics, "DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(http(&metrics, "\u{1}\u{2}\r\n\r\n").starts_with("HTTP/1.1 400"));
    let oversized = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    let mut stream = TcpStream::connect(&metrics).unwrap();
    let _ = stream.write_all(oversized.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(http(&metrics, "GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_push_logs_its_start_and_end_with_figures_on_the_server() {
    let (src, dst) = (TempDir::new("ops-log-src"), TempDir::new("ops-log-dst"));
    std::fs::write(src.path().join("a"), vec![1u8; 300_000]).unwrap();
    std::fs::write(src.path().join("b"), b"second").unwrap();
    let mut server = Server::start(dst.path(), &[]);
    let from = format!("{}/", src.path().display());
    assert_succeeded(
        &push(&[&from, &format!("{}:logged", server.addr)], None),
        "push",
    );
    let start = server.wait_for("job started", Duration::from_secs(10));
    let end = server.wait_for("job finished", Duration::from_secs(10));
    for event in [&start, &end] {
        assert_eq!(event["target"], "hawser::job");
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["fields"]["kind"], "push");
        assert_eq!(event["fields"]["peer"], "127.0.0.1");
        assert_eq!(event["fields"]["anonymous"], true);
        assert!(event["fields"]["identity"].is_string(), "{event}");
        assert_eq!(event["fields"]["nexus"], start["fields"]["nexus"]);
    }
    let f = &end["fields"];
    assert_eq!(f["outcome"], "ok");
    assert_eq!(f["bytes"], 300_006);
    assert_eq!(f["files"], 2);
    assert!(f["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{end}");
    assert!(f["rate"].as_u64().is_some(), "{end}");

    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    server.wait_for(
        "drained: every running request finished; exiting",
        Duration::ZERO,
    );
}

#[test]
fn sighup_reloads_the_user_database_and_a_refusal_is_logged() {
    let (src, dst, etc) = (
        TempDir::new("ops-hup-src"),
        TempDir::new("ops-hup-dst"),
        TempDir::new("ops-hup-etc"),
    );
    std::fs::write(src.path().join("f"), b"reloaded").unwrap();
    let config = etc.path().join("serve.toml");
    std::fs::write(&config, users_entry("alice", "old secret")).unwrap();
    let server = Server::start(dst.path(), &["--config", config.to_str().unwrap()]);
    let from = format!("{}/", src.path().display());
    let to = format!("{}:hup", server.addr);
    let as_alice = ["--identity", "alice", from.as_str(), to.as_str()];
    assert_succeeded(&push(&as_alice, Some("old secret")), "push, old password");

    std::fs::write(
        &config,
        format!(
            "{}\n[limits]\nnexuses = 100\n",
            users_entry("alice", "new secret")
        ),
    )
    .unwrap();
    server.signal("HUP");
    let reloaded = server.wait_for("configuration reloaded", Duration::from_secs(10));
    assert_eq!(reloaded["fields"]["users"], 1);
    assert_eq!(reloaded["fields"]["nexuses"], 100);

    let old = push(&as_alice, Some("old secret"));
    assert!(!old.status.success(), "the old password still works");
    assert!(
        text(&old.stderr).contains("unknown identity or wrong password"),
        "{}",
        text(&old.stderr)
    );
    assert_succeeded(&push(&as_alice, Some("new secret")), "push, new password");
    assert_eq!(
        std::fs::read(dst.path().join("hup/f")).unwrap(),
        b"reloaded"
    );
    let refused = server.wait_for_prefix("connection refused: authentication failed");
    assert_eq!(refused["level"], "WARN");
    assert_eq!(refused["fields"]["peer"], "127.0.0.1");

    // A broken file is refused and the running configuration stays.
    std::fs::write(&config, "[users.alice\n").unwrap();
    server.signal("HUP");
    server.wait_for_prefix("reload refused, the running configuration stays");
    assert_succeeded(
        &push(&as_alice, Some("new secret")),
        "push after a bad reload",
    );
}

impl Server {
    /// Waits up to 10 s for an event whose message starts with `prefix`.
    fn wait_for_prefix(&self, prefix: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.events().into_iter().find(|e| {
                e["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(prefix))
            }) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} in {:#?}",
                self.log
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn sigterm_drains_a_slow_push_and_its_resume_completes_it() {
    let (src, dst) = (TempDir::new("ops-term-src"), TempDir::new("ops-term-dst"));
    let data: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.path().join("big"), &data).unwrap();
    let from = format!("{}/", src.path().display());
    let mut server = Server::start(dst.path(), &["--drain-timeout", "20s"]);
    let to = format!("{}:slow", server.addr);
    // 1 MiB blocks at 2 MB/s: about three seconds of blocks arriving one after another.
    let slow = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args([
            "push",
            "--quiet",
            "--connections",
            "2",
            "--block-size",
            "1M",
        ])
        .args(["--rate", "2M", &from, &to])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_for("job started", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1200));
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(25));
    assert!(status.success(), "serve exited with {status}");
    assert!(signalled.elapsed() < Duration::from_secs(20));
    server.wait_for_prefix("draining: new connections are refused, running requests finish");
    // The client would retry for a while before it gives up: it is not needed any more.
    let mut slow = slow;
    if slow.try_wait().unwrap().is_some_and(|s| s.success()) {
        // The push beat the signal: nothing is left to resume.
        assert_eq!(std::fs::read(dst.path().join("slow/big")).unwrap(), data);
        return;
    }
    let _ = slow.kill();
    let _ = slow.wait();

    let server = Server::start(dst.path(), &[]);
    let to = format!("{}:slow", server.addr);
    let resumed = push(&["--resume", "--block-size", "1M", &from, &to], None);
    assert_succeeded(&resumed, "push --resume");
    assert_eq!(std::fs::read(dst.path().join("slow/big")).unwrap(), data);
    let details = server.wait_for("job details", Duration::from_secs(10));
    let kept = details["fields"]["bytes_resumed"].as_u64().unwrap();
    assert!(
        kept >= 1 << 20,
        "the journal kept {kept} bytes of the first push"
    );
}

#[test]
fn systemd_is_told_when_the_server_is_ready_and_when_it_stops() {
    let (root, run) = (
        TempDir::new("ops-notify-root"),
        TempDir::new("ops-notify-run"),
    );
    let socket_path = run.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut server = Server::start_with_env(root.path(), &[], &[("NOTIFY_SOCKET", &socket_path)]);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    server.signal("TERM");
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

/// Starts a rate-limited pull of `root`'s `big` (about six seconds), once the server says
/// the job started.
fn slow_pull(server: &Server, into: &Path) -> Child {
    let pull = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args([
            "pull",
            "--quiet",
            "--connections",
            "2",
            "--block-size",
            "1M",
        ])
        .args(["--rate", "1M", &format!("{}:big", server.addr)])
        .arg(into)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server.wait_for("job started", Duration::from_secs(10));
    pull
}

#[test]
fn a_drain_is_bounded_by_its_timeout_and_a_second_signal_ends_it_at_once() {
    let (root, into) = (
        TempDir::new("ops-bound-root"),
        TempDir::new("ops-bound-into"),
    );
    std::fs::write(root.path().join("big"), vec![5u8; 6 << 20]).unwrap();

    // A pull holds a request running: the drain waits for it, up to its timeout.
    let mut server = Server::start(root.path(), &["--drain-timeout", "1s"]);
    let mut pull = slow_pull(&server, &into.path().join("a"));
    let signalled = Instant::now();
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    let waited = signalled.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    let timed_out = server.wait_for_prefix("drain timed out with requests still running");
    assert_eq!(timed_out["fields"]["running"], 1);
    let _ = pull.kill();
    let _ = pull.wait();

    // A second SIGTERM during a drain exits at once, with failure.
    let mut server = Server::start(root.path(), &["--drain-timeout", "60s"]);
    let mut pull = slow_pull(&server, &into.path().join("b"));
    server.signal("TERM");
    server.wait_for_prefix("draining: new connections are refused");
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    let _ = pull.kill();
    let _ = pull.wait();
}

#[test]
fn a_publisher_logs_its_start_and_end_with_its_messages() {
    let (root, etc) = (TempDir::new("ops-dmp-root"), TempDir::new("ops-dmp-etc"));
    let config = etc.path().join("serve.toml");
    std::fs::write(&config, "[dmp]\nsinks = [\"orders\"]\n").unwrap();
    let server = Server::start(root.path(), &["--config", config.to_str().unwrap()]);
    let mut publisher = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["publish", &server.addr, "orders", "--routing-key", "eu.fr"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    publisher
        .stdin
        .take()
        .unwrap()
        .write_all(b"first\nsecond\n")
        .unwrap();
    let out = publisher.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start = server.wait_for("job started", Duration::from_secs(10));
    assert_eq!(start["fields"]["kind"], "dmp-publish");
    assert_eq!(start["fields"]["peer"], "127.0.0.1");
    let end = server.wait_for("job finished", Duration::from_secs(10));
    assert_eq!(end["fields"]["kind"], "dmp-publish");
    assert_eq!(end["fields"]["messages"], 2);
    assert!(end["fields"]["bytes"].as_u64().unwrap() > 0, "{end}");
}
