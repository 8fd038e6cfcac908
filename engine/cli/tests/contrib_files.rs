//! The operator's files in contrib/: the systemd unit keeps the server to its root and
//! lets it drain and reload (and `systemd-analyze verify` accepts it where present), and
//! the Containerfile runs the binary as a non-root user with the root as a volume.

use std::path::PathBuf;
use std::process::Command;

fn contrib(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `key=` in the unit, which must be set exactly once.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    let values: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(values.len(), 1, "{key}= set {} times", values.len());
    values[0]
}

#[test]
fn the_unit_file_confines_the_server_and_drains_and_reloads_it() {
    let unit = contrib("hawser.service");
    assert_eq!(unit_value(&unit, "Type"), "notify");
    assert_eq!(unit_value(&unit, "NoNewPrivileges"), "yes");
    assert_eq!(unit_value(&unit, "ProtectSystem"), "strict");
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");
    assert_eq!(unit_value(&unit, "KillSignal"), "SIGTERM");
    assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_ne!(unit_value(&unit, "User"), "root");
    let exec = unit_value(&unit, "ExecStart");
    let root = exec
        .split_once("--root ")
        .map(|(_, rest)| rest.split_whitespace().next().unwrap())
        .expect("ExecStart names the root");
    assert_eq!(
        unit_value(&unit, "ReadWritePaths"),
        root,
        "only the root is writable"
    );
    let stop: u64 = unit_value(&unit, "TimeoutStopSec").parse().unwrap();
    assert!(
        stop > 30,
        "the stop timeout leaves the default 30 s drain its time"
    );

    // systemd's own check, with ExecStart pointing at this build's binary.
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is absent: the unit's syntax is not checked here");
        return;
    };
    assert!(version.status.success());
    let dir = std::env::temp_dir().join(format!("hawser-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let local = dir.join("hawser.service");
    std::fs::write(
        &local,
        unit.replace("/usr/local/bin/hawser", env!("CARGO_BIN_EXE_hawser")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_containerfile_builds_in_a_stage_and_runs_unprivileged_on_a_volume() {
    let file = contrib("Containerfile");
    let lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
    let from: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "a builder stage and a runtime stage");
    assert!(from[0].ends_with(" AS builder"));
    assert!(lines.iter().any(|l| l.starts_with("COPY --from=builder ")));
    let user = lines
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(lines.contains(&"VOLUME [\"/srv/replica\"]"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("EXPOSE ") && l.contains("8415/tcp"))
    );
    assert!(lines.iter().any(|l| l.starts_with("HEALTHCHECK ")));
    assert!(file.contains("\"--root\", \"/srv/replica\""));
}
