//! The destination rules of `hawser push` and `hawser pull`, as scp and rsync users
//! expect them, against a real `hawser serve` over loopback: one file to a new name or
//! onto a file is written as that name; into an existing directory, with a trailing
//! '/', and to the root (`host:`) it keeps its own name.

mod support;

use support::{ServeProcess, TempDir, assert_succeeded, hawser, random_bytes};

fn push(args: &[&str]) {
    assert_succeeded(&hawser("push", args), "push");
}

fn pull(args: &[&str]) {
    assert_succeeded(&hawser("pull", args), "pull");
}

#[test]
fn push_follows_the_scp_and_rsync_destination_rules() {
    let local = TempDir::new("paths-push-src");
    let root = TempDir::new("paths-push-root");
    let file = local.path().join("notes.bin");
    let data = random_bytes(3, 300_000);
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();
    let server = ServeProcess::start(root.path());
    let at = |dest: &str| format!("{}:{dest}", server.addr);
    let read = |rel: &str| std::fs::read(root.path().join(rel)).unwrap();

    // A new name: the file itself, not a directory holding it (and its latency curve).
    let svg = local.path().join("push.svg");
    push(&["--plot", svg.to_str().unwrap(), file, &at("renamed.bin")]);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(
        plot.starts_with("<svg") && plot.contains("<polyline"),
        "{plot}"
    );
    assert!(root.path().join("renamed.bin").is_file());
    assert_eq!(read("renamed.bin"), data);

    // Onto an existing file: replaced.
    std::fs::write(root.path().join("old.bin"), b"stale").unwrap();
    push(&[file, &at("old.bin")]);
    assert_eq!(read("old.bin"), data);

    // Into an existing directory: under its own name.
    std::fs::create_dir(root.path().join("dir")).unwrap();
    push(&[file, &at("dir")]);
    assert_eq!(read("dir/notes.bin"), data);

    // A trailing slash: into that directory, made if missing.
    push(&[file, &at("made/")]);
    assert_eq!(read("made/notes.bin"), data);

    // `host:` and `host:/`: the root.
    push(&[file, &at("")]);
    assert_eq!(read("notes.bin"), data);
    std::fs::remove_file(root.path().join("notes.bin")).unwrap();
    push(&[file, &at("/")]);
    assert_eq!(read("notes.bin"), data);

    // By host name: `localhost` reaches the server listening on 127.0.0.1 (whichever of
    // its addresses the resolver gives first; connect.rs tests the try-each order).
    let port = server.addr.rsplit(':').next().unwrap();
    push(&[file, &format!("localhost:{port}:by-name.bin")]);
    assert_eq!(read("by-name.bin"), data);
}

#[test]
fn pull_follows_the_same_rules_for_its_local_destination() {
    let served = TempDir::new("paths-pull-srv");
    let local = TempDir::new("paths-pull-local");
    let data = random_bytes(4, 200_000);
    std::fs::write(served.path().join("remote.bin"), &data).unwrap();
    let server = ServeProcess::start(served.path());
    let src = format!("{}:remote.bin", server.addr);
    let here = |rel: &str| local.path().join(rel);

    pull(&[&src, here("copy.bin").to_str().unwrap()]);
    assert!(here("copy.bin").is_file());
    assert_eq!(std::fs::read(here("copy.bin")).unwrap(), data);

    std::fs::write(here("old.bin"), b"stale").unwrap();
    pull(&[&src, here("old.bin").to_str().unwrap()]);
    assert_eq!(std::fs::read(here("old.bin")).unwrap(), data);

    std::fs::create_dir(here("dir")).unwrap();
    pull(&[&src, here("dir").to_str().unwrap()]);
    assert_eq!(std::fs::read(here("dir/remote.bin")).unwrap(), data);

    let slash = format!("{}/", here("made").display());
    pull(&[&src, &slash]);
    assert_eq!(std::fs::read(here("made/remote.bin")).unwrap(), data);
}
