//! `hawser push --transport dtp` and `hawser pull --transport dtp` against a
//! `hawser serve --dtp` over loopback: the file arrives byte-identical under the names
//! cp and rsync users expect, with a JSON report; a tree's large files go over DTP and
//! the rest with the TCP job, both ways; a missing file is refused in words.

mod support;

use std::path::Path;
use std::process::Command;

use support::{ServeProcess, TempDir, assert_succeeded, text};

fn hawser() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hawser"))
}

#[test]
fn a_file_pushed_and_pulled_over_dtp_arrives_identical() {
    let dir = TempDir::new("cli-dtp");
    let (root, local) = (dir.path().join("root"), dir.path().join("local"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&local).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(local.join("f.bin"), &data).unwrap();
    let server = ServeProcess::start_with(
        &root,
        &["--listen", "127.0.0.1:0", "--dtp", "127.0.0.1:0"],
        1,
    );
    let json = dir.path().join("push.json");
    let out = hawser()
        .args(["push", "--transport", "dtp", "--json"])
        .arg(&json)
        .arg(local.join("f.bin"))
        .arg(format!("{}:backup/", server.addr))
        .output()
        .unwrap();
    assert_succeeded(&out, "push --transport dtp");
    assert!(
        text(&out.stdout).contains("over DTP"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read(root.join("backup/f.bin")).unwrap(), data);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["size"], 3_000_000);
    assert_eq!(report["end"]["bytes"], 3_000_000);
    assert_eq!(report["transport"], "dtp");

    let out = hawser()
        .args(["pull", "--transport", "dtp", "-q"])
        .arg(format!("{}:backup/f.bin", server.addr))
        .arg(local.join("copy.bin"))
        .output()
        .unwrap();
    assert_succeeded(&out, "pull --transport dtp");
    assert_eq!(std::fs::read(local.join("copy.bin")).unwrap(), data);

    let out = hawser()
        .args(["pull", "--transport", "dtp"])
        .arg(format!("{}:backup/missing", server.addr))
        .arg(&local)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no such file or directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_tree_pushed_and_pulled_over_dtp_arrives_whole_with_its_metadata() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = TempDir::new("cli-dtp-tree");
    let (root, tree) = (dir.path().join("root"), dir.path().join("tree"));
    std::fs::create_dir_all(root.join("backup/tree/stale")).unwrap();
    std::fs::create_dir_all(tree.join("sub/empty")).unwrap();
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i * 13 % 253) as u8).collect();
    std::fs::write(tree.join("sub/big.bin"), &big).unwrap();
    std::fs::set_permissions(
        tree.join("sub/big.bin"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::write(tree.join("small.txt"), b"small").unwrap();
    std::os::unix::fs::symlink("sub/big.bin", tree.join("link")).unwrap();
    let server = ServeProcess::start_with(
        &root,
        &["--listen", "127.0.0.1:0", "--dtp", "127.0.0.1:0"],
        1,
    );
    let json = dir.path().join("push.json");
    let push = || {
        hawser()
            .args(["push", "--transport", "dtp", "--delete", "--json"])
            .arg(&json)
            .arg(&tree)
            .arg(format!("{}:backup", server.addr))
            .output()
            .unwrap()
    };
    let out = push();
    assert_succeeded(&out, "push --transport dtp of a tree");
    assert!(
        text(&out.stdout).contains("over DTP: 1 files, 5.0 MB"),
        "{}",
        text(&out.stdout)
    );
    let copy = root.join("backup/tree");
    assert_eq!(std::fs::read(copy.join("sub/big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(copy.join("small.txt")).unwrap(), b"small");
    assert_eq!(
        std::fs::read_link(copy.join("link")).unwrap(),
        Path::new("sub/big.bin")
    );
    assert!(copy.join("sub/empty").is_dir());
    assert!(!copy.join("stale").exists(), "--delete went with the tree");
    let (theirs, ours) = (
        std::fs::metadata(copy.join("sub/big.bin")).unwrap(),
        std::fs::metadata(tree.join("sub/big.bin")).unwrap(),
    );
    assert_eq!(theirs.mode() & 0o7777, 0o640);
    assert_eq!(
        (theirs.mtime(), theirs.mtime_nsec()),
        (ours.mtime(), ours.mtime_nsec())
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["transport"], "dtp");
    assert_eq!(report["dtp"]["files"], 1);
    assert_eq!(report["dtp"]["bytes"], 5_000_000);
    // The TCP job found the big file in place: it sent only the small one.
    assert_eq!(report["end"]["bytes"], 5, "{report:#}");

    let out = push();
    assert_succeeded(&out, "the same push again");
    assert!(
        text(&out.stdout).contains("over DTP: 0 files, 0.0 MB")
            && text(&out.stdout).contains("1 already in place"),
        "{}",
        text(&out.stdout)
    );
    let leftovers: Vec<_> = walk_names(&root)
        .into_iter()
        .filter(|n| n.contains("hawser"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The tree pulled back over DTP: the big file by datagrams, the rest by the TCP job.
    let back = dir.path().join("back");
    let out = hawser()
        .args(["pull", "--transport", "dtp"])
        .arg(format!("{}:backup/tree", server.addr))
        .arg(&back)
        .output()
        .unwrap();
    assert_succeeded(&out, "pull --transport dtp of a tree");
    assert!(
        text(&out.stdout).contains("over DTP: 1 files, 5.0 MB"),
        "{}",
        text(&out.stdout)
    );
    let pulled = back.join("tree");
    assert_eq!(std::fs::read(pulled.join("sub/big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(pulled.join("small.txt")).unwrap(), b"small");
    assert_eq!(
        std::fs::read_link(pulled.join("link")).unwrap(),
        Path::new("sub/big.bin")
    );
    assert!(pulled.join("sub/empty").is_dir());
    let theirs = std::fs::metadata(pulled.join("sub/big.bin")).unwrap();
    assert_eq!(theirs.mode() & 0o7777, 0o640);
    assert_eq!(
        (theirs.mtime(), theirs.mtime_nsec()),
        (ours.mtime(), ours.mtime_nsec())
    );
    let leftovers: Vec<_> = walk_names(&back)
        .into_iter()
        .filter(|n| n.contains("hawser"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        names.push(entry.file_name().to_string_lossy().into_owned());
        if entry.file_type().unwrap().is_dir() {
            names.extend(walk_names(&entry.path()));
        }
    }
    names
}

/// Waits until `path` exists.
fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A paced push of `file` to `addr:big.bin`, left running.
fn slow_push(file: &Path, addr: &str) -> std::process::Child {
    hawser()
        .args(["push", "--transport", "dtp", "-q", "--rate", "8M"])
        .arg(file)
        .arg(format!("{addr}:big.bin"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// `push --resume` of `file` to `addr:big.bin`: how many bytes it found in place and how
/// many it moved.
fn resumed_push(dir: &Path, file: &Path, addr: &str) -> (u64, u64) {
    let json = dir.join("resume.json");
    let out = hawser()
        .args(["push", "--transport", "dtp", "-q", "--resume", "--json"])
        .arg(&json)
        .arg(file)
        .arg(format!("{addr}:big.bin"))
        .output()
        .unwrap();
    assert_succeeded(&out, "push --resume");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (
        report["resumed"].as_u64().unwrap(),
        report["moved"].as_u64().unwrap(),
    )
}

#[test]
fn a_transfer_whose_client_or_server_is_killed_resumes_with_only_the_missing_bytes() {
    let dir = TempDir::new("cli-dtp-kill");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let size = 24_000_000u64;
    let data: Vec<u8> = (0..size as u32).map(|i| (i * 31 % 241) as u8).collect();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let journal = root.join(".big.bin.hawser-dtp-state");
    let args = ["--listen", "127.0.0.1:0", "--dtp", "127.0.0.1:0"];

    // SIGKILL of the client once the server has journaled.
    let server = ServeProcess::start_with(&root, &args, 1);
    let mut client = slow_push(&file, &server.addr);
    wait_for(&journal);
    client.kill().unwrap();
    client.wait().unwrap();
    let (resumed, moved) = resumed_push(dir.path(), &file, &server.addr);
    assert!(resumed >= 1 << 20, "resumed {resumed} bytes");
    assert!(resumed + moved <= size + (1 << 20), "{resumed} + {moved}");
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), data);
    assert!(!journal.exists());
    drop(server);

    // SIGKILL of the server: a new one on the same root continues the partial file.
    std::fs::remove_file(root.join("big.bin")).unwrap();
    let mut server = ServeProcess::start_with(&root, &args, 1);
    let mut client = slow_push(&file, &server.addr);
    wait_for(&journal);
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.kill();
    client.kill().unwrap();
    client.wait().unwrap();
    let server = ServeProcess::start_with(&root, &args, 1);
    let (resumed, moved) = resumed_push(dir.path(), &file, &server.addr);
    assert!(resumed >= 1 << 20, "resumed {resumed} bytes");
    assert!(resumed + moved <= size + (1 << 20), "{resumed} + {moved}");
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), data);

    // SIGKILL of a pulling client: its own journal lets `pull --resume` continue.
    let copy = dir.path().join("copy.bin");
    let pull = |extra: &[&str]| {
        let mut command = hawser();
        command
            .args(["pull", "--transport", "dtp", "-q", "--rate", "8M"])
            .args(extra)
            .arg(format!("{}:big.bin", server.addr))
            .arg(&copy);
        command
    };
    let mut client = pull(&[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&dir.path().join("copy.bin.hawser-dtp-state"));
    client.kill().unwrap();
    client.wait().unwrap();
    let json = dir.path().join("pull.json");
    let out = pull(&["--resume", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    assert_succeeded(&out, "pull --resume");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let resumed = report["resumed"].as_u64().unwrap();
    assert!(resumed >= 1 << 20, "resumed {resumed} bytes");
    assert_eq!(std::fs::read(&copy).unwrap(), data);
    let leftovers: Vec<_> = walk_names(dir.path())
        .into_iter()
        .filter(|n| n.contains("hawser"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
