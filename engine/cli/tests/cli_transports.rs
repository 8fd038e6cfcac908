//! `hawser serve` on several transports at once, and `push`/`pull` over each: TCP, a
//! Unix socket and shared memory; EXTERNAL authentication by the peer's uid (over both
//! local transports); DSP refused on a datagram transport.

mod support;

use support::{
    ServeProcess, TempDir, assert_same_tree, assert_succeeded, build_tree, hawser, text,
};

fn socket(dir: &TempDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

#[test]
fn push_and_pull_round_trip_over_tcp_unix_and_shared_memory() {
    let src = TempDir::new("tr-src");
    let dst = TempDir::new("tr-dst");
    let back = TempDir::new("tr-back");
    let sockets = TempDir::new("tr-sock");
    build_tree(src.path(), 64 * 1024);
    let unix = format!("unix://{}", socket(&sockets, "h.sock"));
    let shm = format!("shm://{}", socket(&sockets, "h.shm"));
    let server = ServeProcess::start_with(
        dst.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            &unix,
            "--listen",
            &shm,
        ],
        3,
    );
    assert_eq!(server.addrs[1], unix);
    assert_eq!(server.addrs[2], shm);
    let from = format!("{}/", src.path().display());
    for (i, addr) in server.addrs.iter().enumerate() {
        let to = format!("{addr}:/copy{i}");
        let out = hawser("push", &["--block-size", "64K", &from, &to]);
        assert_succeeded(&out, &format!("push to {to}"));
        assert_same_tree(src.path(), &dst.path().join(format!("copy{i}")));
        let pulled = back.path().join(format!("pulled{i}"));
        let spec = format!("{addr}:copy{i}/");
        let out = hawser(
            "pull",
            &["--block-size", "64K", &spec, pulled.to_str().unwrap()],
        );
        assert_succeeded(&out, &format!("pull from {spec}"));
        assert_same_tree(src.path(), &pulled);
    }
}

#[test]
fn external_authentication_takes_the_peers_uid_over_unix_and_shm() {
    let dst = TempDir::new("ext-dst");
    let src = TempDir::new("ext-src");
    let sockets = TempDir::new("ext-sock");
    std::fs::write(src.path().join("f"), b"by uid").unwrap();
    let uid = std::fs::metadata(src.path()).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    let uid = uid.unwrap();
    let unix = format!("unix://{}", socket(&sockets, "ext.sock"));
    let shm = format!("shm://{}", socket(&sockets, "ext.shm"));
    let grant = format!("agent={uid}");
    let wrong = format!("other={}", uid + 1);
    let server = ServeProcess::start_with(
        dst.path(),
        &[
            "--listen",
            &unix,
            "--listen",
            &shm,
            "--allow-peer-uid",
            &grant,
            "--allow-peer-uid",
            &wrong,
        ],
        2,
    );
    let from = src.path().join("f");
    for (i, addr) in server.addrs.iter().enumerate() {
        let to = format!("{addr}:/e{i}");
        let out = hawser(
            "push",
            &[
                "--identity",
                "agent",
                "--external",
                from.to_str().unwrap(),
                &to,
            ],
        );
        assert_succeeded(&out, &format!("push with --external to {to}"));
        // One file to a new name: written as that name, as with scp.
        let copy = dst.path().join(format!("e{i}"));
        assert_eq!(std::fs::read(copy).unwrap(), b"by uid");
    }
    let to = format!("{}:/a", server.addr);
    // An identity granted to another uid is refused; so is anonymous, since the server
    // has credentials.
    let out = hawser(
        "push",
        &[
            "--identity",
            "other",
            "--external",
            from.to_str().unwrap(),
            &to,
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("authentication failed"),
        "{}",
        text(&out.stderr)
    );
    let out = hawser("push", &[from.to_str().unwrap(), &to]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("anonymous"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn external_over_tcp_is_refused_with_the_reason() {
    let dst = TempDir::new("ext-tcp-dst");
    let src = TempDir::new("ext-tcp-src");
    std::fs::write(src.path().join("f"), b"x").unwrap();
    let server = ServeProcess::start_with(
        dst.path(),
        &["--listen", "127.0.0.1:0", "--allow-peer-uid", "agent=0"],
        1,
    );
    let from = src.path().join("f");
    let to = format!("{}:/a", server.addr);
    let out = hawser(
        "push",
        &[
            "--identity",
            "agent",
            "--external",
            from.to_str().unwrap(),
            &to,
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("EXTERNAL authentication needs a local connection"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dsp_over_udp_is_refused_in_words() {
    let src = TempDir::new("udp-src");
    std::fs::write(src.path().join("f"), b"x").unwrap();
    let from = src.path().join("f");
    let out = hawser("push", &[from.to_str().unwrap(), "udp://127.0.0.1:9:/a"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("DSP needs a reliable stream; udp:// is a datagram transport"),
        "{}",
        text(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["bench", "--mode", "rpc", "--connect", "udp://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("udp:// is a datagram transport"),
        "{}",
        text(&out.stderr)
    );
    // A server does not listen on it either.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", "--listen", "udp://127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("udp:// is a datagram transport"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_socket_path_a_live_server_holds_is_not_taken_but_a_stale_one_is() {
    let dst = TempDir::new("stale-dst");
    let sockets = TempDir::new("stale-sock");
    let path = socket(&sockets, "s.sock");
    // A stale socket file (its server is gone): replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let unix = format!("unix://{path}");
    let first = ServeProcess::start_with(dst.path(), &["--listen", &unix], 1);
    // A second server on the same path fails and says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", "--root"])
        .arg(dst.path())
        .args(["--listen", &unix])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&path), "{}", text(&out.stderr));
    drop(first);
}
