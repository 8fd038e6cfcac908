//! `hawser push --transport dtp` and `hawser pull --transport dtp` against a
//! `hawser serve --dtp` over loopback: the file arrives byte-identical under the names
//! cp and rsync users expect, with a JSON report; a directory is refused in words.

mod support;

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
        .args(["push", "--transport", "dtp"])
        .arg(&local)
        .arg(format!("{}:x", server.addr))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a regular file"),
        "{}",
        text(&out.stderr)
    );
}
