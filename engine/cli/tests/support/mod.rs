//! Helpers of the command-line tests: a `hawser serve` child and `hawser` runs.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub use hawser_replicate::testing::*;

/// A `hawser serve` child on a free loopback port, killed on drop.
pub struct ServeProcess {
    pub child: Child,
    /// The first address it listens on, as clients type it.
    pub addr: String,
    /// Every address, in the order of its `--listen` options.
    pub addrs: Vec<String>,
}

impl ServeProcess {
    pub fn start(root: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Self::announced(child)
    }

    /// `hawser serve --root ROOT ARGS...` (ARGS with its --listen options) once it
    /// prints its `listens` addresses.
    pub fn start_with(root: &Path, args: &[&str], listens: usize) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
            .arg("serve")
            .arg("--root")
            .arg(root)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Self::announcing(child, listens)
    }

    /// Takes a spawned `hawser serve` (stdout piped) once it prints its address.
    pub fn announced(child: Child) -> Self {
        Self::announcing(child, 1)
    }

    fn announcing(mut child: Child, listens: usize) -> Self {
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut addrs = Vec::new();
        for _ in 0..listens {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            let addr = line
                .trim()
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("unexpected serve output {line:?}"))
                .to_string();
            addrs.push(addr);
        }
        ServeProcess {
            child,
            addr: addrs[0].clone(),
            addrs,
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `hawser SUBCOMMAND --quiet --connections 4 ARGS...` and returns its output.
pub fn hawser(subcommand: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hawser"))
        .arg(subcommand)
        .args(["--quiet", "--connections", "4"])
        .args(args)
        .output()
        .unwrap()
}

/// Process output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails the test with the command's output unless it succeeded.
pub fn assert_succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The `[users.IDENTITY]` entry `hawser passwd` prints for `password` (read from
/// HAWSER_PASSWORD).
#[allow(dead_code)]
pub fn users_entry(identity: &str, password: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["passwd", identity])
        .env("HAWSER_PASSWORD", password)
        .output()
        .unwrap();
    assert_succeeded(&out, "hawser passwd");
    text(&out.stdout)
}
