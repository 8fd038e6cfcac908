//! `hawser serve` keeps to its root and tidies partial files, as real processes: a stock
//! push cannot make it change anything outside, `--clean-partials` removes what
//! unfinished jobs left, and expired partial files go when the server starts.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{ServeProcess, TempDir, assert_succeeded, hawser, snapshot, text};

fn hawser_serve(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hawser"))
        .arg("serve")
        .args(args)
        .output()
        .unwrap()
}

/// Partial state as an interrupted job leaves it, beside a replica file, at two depths.
fn plant_partials(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::create_dir_all(root.join("replica/sub/.hawser-partial")).unwrap();
    std::fs::create_dir_all(root.join("replica/.hawser-partial")).unwrap();
    std::fs::write(root.join("replica/kept"), b"replica").unwrap();
    let partials = vec![
        root.join("replica/.hawser-partial/big.part"),
        root.join("replica/.hawser-partial/big.journal"),
        root.join("replica/sub/.hawser-partial/other.part"),
    ];
    for (i, path) in partials.iter().enumerate() {
        std::fs::write(path, vec![i as u8; 8192]).unwrap();
    }
    partials
}

/// Finding 1 through the stock CLI: sources holding a directory `d` and a symlink `d`
/// to a directory outside the server's root.
#[test]
fn a_push_naming_a_directory_and_a_symlink_alike_changes_nothing_outside() {
    let base = TempDir::new("cli-root-dirlink");
    let (first, second, root, outside) = (
        base.path().join("first"),
        base.path().join("second"),
        base.path().join("root"),
        base.path().join("outside"),
    );
    std::fs::create_dir_all(first.join("d")).unwrap();
    std::fs::write(first.join("d/x"), b"x").unwrap();
    std::fs::set_permissions(first.join("d"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"keep").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::symlink(&outside, second.join("d")).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let before = snapshot(base.path());
    let before_outside = std::fs::metadata(&outside).unwrap();

    let server = ServeProcess::start(&root);
    let out = hawser(
        "push",
        &[
            &format!("{}/", first.display()),
            &format!("{}/", second.display()),
            &format!("{}:replica", server.addr),
        ],
    );
    // The second `d` is refused as a duplicate: the push reports it and fails.
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("named twice"),
        "{}",
        text(&out.stderr)
    );
    let after_outside = std::fs::metadata(&outside).unwrap();
    assert_eq!(
        after_outside.permissions().mode(),
        before_outside.permissions().mode()
    );
    let after = snapshot(base.path());
    for (path, seen) in &before {
        if path == "outside" || path.starts_with("outside/") {
            assert_eq!(after.get(path), Some(seen), "{path} changed");
        }
    }
}

#[test]
fn clean_partials_removes_every_partial_file_and_says_how_much() {
    let base = TempDir::new("cli-root-clean");
    let partials = plant_partials(base.path());
    let out = hawser_serve(&["--root", base.path().to_str().unwrap(), "--clean-partials"]);
    assert_succeeded(&out, "serve --clean-partials");
    let said = text(&out.stdout);
    assert!(
        said.contains("removed partial files and journals under"),
        "{said}"
    );
    assert!(said.contains(": 3 files, "), "{said}");
    assert!(partials.iter().all(|p| !p.exists()));
    assert!(!base.path().join("replica/.hawser-partial").exists());
    assert_eq!(
        std::fs::read(base.path().join("replica/kept")).unwrap(),
        b"replica"
    );
    // Nothing left: it says so.
    let again = hawser_serve(&["--root", base.path().to_str().unwrap(), "--clean-partials"]);
    assert!(
        text(&again.stdout).contains(": 0 files, 0 bytes"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn expired_partial_files_go_when_the_server_starts() {
    let base = TempDir::new("cli-root-expire");
    let partials = plant_partials(base.path());
    let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--partial-max-age",
            "0s",
            "--root",
        ])
        .arg(base.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = ServeProcess::announced(child);
    // The first sweep runs on the server's own thread right after it starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while partials.iter().any(|p| p.exists()) {
        assert!(Instant::now() < deadline, "partial files still there");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read(base.path().join("replica/kept")).unwrap(),
        b"replica"
    );
}

#[test]
fn serve_help_and_config_name_the_new_options() {
    let help = hawser_serve(&["--help"]);
    let help = text(&help.stdout);
    for word in [
        "--clean-partials",
        "--partial-max-age",
        "max_job_entries",
        "max_open_files",
        "partial_max_age",
    ] {
        assert!(help.contains(word), "{word} missing from serve --help");
    }
    let base = TempDir::new("cli-root-config");
    for (config, complaint) in [
        ("max_open_files = 0\n", "max_open_files must be at least 1"),
        ("partial_max_age = \"3 fortnights\"\n", "partial_max_age"),
        ("max_job_entries = -1\n", "max_job_entries"),
    ] {
        let file = base.path().join("serve.toml");
        std::fs::write(&file, config).unwrap();
        let out = hawser_serve(&[
            "--listen",
            "127.0.0.1:0",
            "--root",
            base.path().to_str().unwrap(),
            "--config",
            file.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{config}");
        assert!(
            text(&out.stderr).contains(complaint),
            "{config}: {}",
            text(&out.stderr)
        );
    }
    let bad = hawser_serve(&["--partial-max-age", "soon", "--clean-partials"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("is not an age"),
        "{}",
        text(&bad.stderr)
    );
}
