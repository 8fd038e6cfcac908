//! A server with the DTP service over loopback: pulls and pushes of files arrive whole
//! and in place; names a peer shaped to reach outside the root are refused; a push
//! interrupted halfway resumes with only what is missing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hawser_dtp::client::{DtpClientError, TransferOptions, pull, push};
use hawser_dtp::engine::{DtpEngine, EngineConfig};
use hawser_dtp::service::{DtpService, DtpServiceConfig, JOURNAL_SUFFIX};
use hawser_replicate::RootDir;
use hawser_runtime::{CallError, Client, ClientOptions, Server, ServerBuilder};

struct Setup {
    root: PathBuf,
    local: PathBuf,
    server: Server,
    client: Client,
}

fn setup(name: &str) -> Setup {
    let base = std::env::temp_dir().join(format!("hawser-dtp-svc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (root, local) = (base.join("root"), base.join("local"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&local).unwrap();
    let engine = DtpEngine::start(EngineConfig {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        ..EngineConfig::default()
    })
    .unwrap();
    let dtp = DtpService::new(
        RootDir::open(&root).unwrap(),
        Arc::new(engine),
        DtpServiceConfig::default(),
    );
    let server = ServerBuilder::new()
        .service(dtp.service())
        .listen("127.0.0.1:0")
        .unwrap();
    let client = Client::connect(server.local_addr(), ClientOptions::default()).unwrap();
    Setup {
        root,
        local,
        server,
        client,
    }
}

fn content(path: &Path, size: usize, seed: u8) -> Vec<u8> {
    let data: Vec<u8> = (0..size)
        .map(|i| ((i.wrapping_mul(2_654_435_761) >> 13) as u8) ^ seed)
        .collect();
    std::fs::write(path, &data).unwrap();
    data
}

#[test]
fn pull_and_push_move_files_whole_and_in_place() {
    let s = setup("both");
    let data = content(&s.root.join("remote.bin"), 9 * 1024 * 1024 + 5, 1);
    let target = s.local.join("pulled.bin");
    let report = pull(
        &s.client,
        b"remote.bin",
        &target,
        &TransferOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert_eq!(
        (report.size, report.moved),
        (data.len() as u64, data.len() as u64)
    );
    assert!(!s.local.join("pulled.bin.hawser-dtp").exists());

    let up = content(&s.local.join("up.bin"), 5 * 1024 * 1024 + 17, 2);
    let report = push(
        &s.client,
        &s.local.join("up.bin"),
        b"sub/dir/up.bin",
        &TransferOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(s.root.join("sub/dir/up.bin")).unwrap(), up);
    assert_eq!(report.moved, up.len() as u64);
    let leftovers: Vec<_> = std::fs::read_dir(s.root.join("sub/dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "only the file: {leftovers:?}");

    let empty = s.local.join("empty");
    std::fs::write(&empty, b"").unwrap();
    push(
        &s.client,
        &empty,
        b"empty",
        &TransferOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(s.root.join("empty")).unwrap(), b"");
    s.client.close();
    s.server.shutdown();
}

#[test]
fn names_reaching_outside_the_root_are_refused() {
    let s = setup("escape");
    let outside = s.root.parent().unwrap().join("secret");
    std::fs::write(&outside, b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, s.root.join("link")).unwrap();
    std::os::unix::fs::symlink(s.root.parent().unwrap(), s.root.join("linkdir")).unwrap();
    let options = TransferOptions::default();
    for name in [
        &b"../secret"[..],
        b"/etc/passwd",
        b"link",
        b"a/../../secret",
        b"linkdir/secret",
    ] {
        let got = pull(&s.client, name, &s.local.join("x"), &options, &mut |_| {});
        assert!(
            matches!(got, Err(DtpClientError::Call(CallError::Remote(_)))),
            "pull {:?}: {got:?}",
            String::from_utf8_lossy(name)
        );
        if name == b"link" {
            continue; // a push replaces the link itself, inside the root (checked below)
        }
        let up = s.local.join("up");
        std::fs::write(&up, b"data").unwrap();
        let got = push(&s.client, &up, name, &options, &mut |_| {});
        assert!(
            matches!(got, Err(DtpClientError::Call(CallError::Remote(_)))),
            "push {:?}: {got:?}",
            String::from_utf8_lossy(name)
        );
    }
    push(
        &s.client,
        &s.local.join("up"),
        b"link",
        &options,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(s.root.join("link")).unwrap(), b"data");
    assert!(!s.root.join("link").is_symlink());
    assert_eq!(std::fs::read(&outside).unwrap(), b"secret");
    s.client.close();
    s.server.shutdown();
}

#[test]
fn an_interrupted_pull_resumes_with_only_its_holes() {
    let s = setup("resume");
    let size = 32 * 1024 * 1024;
    let data = content(&s.root.join("big"), size, 3);
    let target = s.local.join("big");
    let slow = TransferOptions {
        max_rate: 40_000_000,
        journal_every: Duration::from_millis(50),
        ..TransferOptions::default()
    };
    // Interrupted: the client's progress callback panics after a while, as a kill would
    // stop it (the journal stays behind).
    let started = std::time::Instant::now();
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pull(&s.client, b"big", &target, &slow, &mut |_| {
            if started.elapsed() > Duration::from_millis(300) {
                panic!("interrupted");
            }
        })
    }));
    assert!(interrupted.is_err());
    let journal = s.local.join(format!("big{JOURNAL_SUFFIX}"));
    assert!(journal.exists());
    let resume = TransferOptions {
        resume: true,
        ..TransferOptions::default()
    };
    let report = pull(&s.client, b"big", &target, &resume, &mut |_| {}).unwrap();
    assert!(report.resumed > 0, "{report:?}");
    assert!(
        report.moved <= size as u64 - report.resumed + 64 * 1024,
        "{report:?}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert!(!journal.exists());
    s.client.close();
    s.server.shutdown();
}
