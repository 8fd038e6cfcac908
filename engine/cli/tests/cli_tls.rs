//! `hawser serve` with TLS and a user database, and `hawser push` against it: the pin and
//! CA checks, TLS required, PLAIN only over TLS, the retired `[secrets]` table.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{ServeProcess, TempDir, assert_succeeded, text, users_entry};

const PASSWORD: &str = "correct horse";

/// A self-signed certificate named `name`, for localhost and 127.0.0.1, written as PEM
/// under `dir`:
/// (cert path, key path, pin).
fn certificate(dir: &Path, name: &str) -> (String, String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let pin = hawser_runtime::tls::pin_hex(cert.der());
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
        pin,
    )
}

/// A server on loopback requiring TLS, with `alice` in its user database.
fn serve_tls(root: &Path, etc: &Path) -> (ServeProcess, String, String) {
    let (cert, key, pin) = certificate(etc, "hawser test server");
    let config = etc.join("serve.toml");
    std::fs::write(&config, users_entry("alice", PASSWORD)).unwrap();
    let server = ServeProcess::start_with(
        root,
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--require-tls",
            "--allow-plain",
        ],
        1,
    );
    (server, pin, cert)
}

fn push(args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hawser"));
    command
        .args([
            "push",
            "--quiet",
            "--connections",
            "2",
            "--identity",
            "alice",
        ])
        .args(args)
        .env_remove("HAWSER_PASSWORD");
    if let Some(password) = password {
        command.env("HAWSER_PASSWORD", password);
    }
    command.output().unwrap()
}

#[test]
fn a_push_over_tls_with_scram_plus_arrives_and_the_checks_say_what_is_wrong() {
    let (src, dst, etc) = (
        TempDir::new("tls-src"),
        TempDir::new("tls-dst"),
        TempDir::new("tls-etc"),
    );
    std::fs::write(src.path().join("f"), b"over TLS").unwrap();
    let (server, pin, cert) = serve_tls(dst.path(), etc.path());
    let from = format!("{}/", src.path().display());
    let to = |name: &str| format!("{}:{name}", server.addr);

    let out = push(&["--tls-pin", &pin, &from, &to("pinned")], Some(PASSWORD));
    assert_succeeded(&out, "push --tls-pin");
    assert_eq!(
        std::fs::read(dst.path().join("pinned/f")).unwrap(),
        b"over TLS"
    );
    // A pin of another certificate, and another CA, are refused in words.
    let wrong_pin = "00".repeat(32);
    let out = push(&["--tls-pin", &wrong_pin, &from, &to("x")], Some(PASSWORD));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not match --tls-pin"),
        "{}",
        text(&out.stderr)
    );
    let other = TempDir::new("tls-other");
    let (other_cert, _, _) = certificate(other.path(), "another server");
    let out = push(&["--ca", &other_cert, &from, &to("y")], Some(PASSWORD));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not issued by a CA you trust"),
        "{}",
        text(&out.stderr)
    );
    // The server's own self-signed certificate as the CA, for the name it carries.
    let by_name = format!("localhost:{}", server.addr.rsplit(':').next().unwrap());
    let out = push(
        &["--ca", &cert, &from, &format!("{by_name}:by-ca")],
        Some(PASSWORD),
    );
    assert_succeeded(&out, "push --ca");
    // In clear text the server that requires TLS says how to connect.
    let out = push(&[&from, &to("z")], Some(PASSWORD));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("requires TLS"),
        "{}",
        text(&out.stderr)
    );
    // A wrong password over TLS: the same words as an unknown identity.
    let out = push(
        &["--tls-pin", &pin, &from, &to("w")],
        Some("battery staple"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown identity or wrong password"),
        "{}",
        text(&out.stderr)
    );
    // PLAIN when asked for, inside TLS.
    let out = push(
        &[
            "--tls-pin",
            &pin,
            "--sasl-mechanism",
            "PLAIN",
            &from,
            &to("plain"),
        ],
        Some(PASSWORD),
    );
    assert_succeeded(&out, "push --sasl-mechanism PLAIN");
    for refused in ["x", "y", "z", "w"] {
        assert!(!dst.path().join(refused).exists(), "{refused} was written");
    }
}

#[test]
fn plain_in_clear_text_is_refused_before_the_password_leaves() {
    let (dst, etc) = (TempDir::new("plain-dst"), TempDir::new("plain-etc"));
    let config = etc.path().join("serve.toml");
    std::fs::write(&config, users_entry("alice", PASSWORD)).unwrap();
    let server = ServeProcess::start_with(
        dst.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
        1,
    );
    let out = push(
        &[
            "--sasl-mechanism",
            "PLAIN",
            etc.path().to_str().unwrap(),
            &format!("{}:p", server.addr),
        ],
        Some(PASSWORD),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("accepted over TLS only"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn passwd_prints_scram_keys_and_serve_refuses_the_old_secrets_table() {
    let entry = users_entry("backup-1", PASSWORD);
    assert!(entry.starts_with("[users.backup-1]\n"), "{entry}");
    for key in [
        "salt = ",
        "iterations = 4096",
        "stored_key = ",
        "server_key = ",
    ] {
        assert!(entry.contains(key), "{entry}");
    }
    assert!(!entry.contains(PASSWORD), "the password is in the entry");
    // Two runs, two salts.
    assert_ne!(entry, users_entry("backup-1", PASSWORD));

    let etc = TempDir::new("secrets-etc");
    let config = etc.path().join("serve.toml");
    std::fs::write(&config, "[secrets]\nalice = \"s3cret\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(etc.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("retired") && err.contains("hawser passwd"),
        "{err}"
    );
}

/// Mutual TLS: the identity a client certificate is mapped to logs in with --external,
/// no password; without the certificate it is refused, saying what EXTERNAL needs.
#[test]
fn a_client_certificate_mapped_to_an_identity_pushes_with_external() {
    let (src, dst, etc) = (
        TempDir::new("mtls-src"),
        TempDir::new("mtls-dst"),
        TempDir::new("mtls-etc"),
    );
    std::fs::write(src.path().join("f"), b"mutual").unwrap();
    let (cert, key, pin) = certificate(etc.path(), "replica server");
    let client_dir = TempDir::new("mtls-client");
    let (client_cert, client_key, client_pin) = certificate(client_dir.path(), "replica client");
    let server = ServeProcess::start_with(
        dst.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--allow-client-cert",
            &format!("replica={client_pin}"),
        ],
        1,
    );
    let from = format!("{}/", src.path().display());
    let run = |extra: &[&str], dest: &str| {
        Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args([
                "push",
                "--quiet",
                "--connections",
                "2",
                "--identity",
                "replica",
            ])
            .args(["--external", "--tls-pin", &pin])
            .args(extra)
            .arg(&from)
            .arg(format!("{}:{dest}", server.addr))
            .env_remove("HAWSER_PASSWORD")
            .output()
            .unwrap()
    };
    let out = run(&["--tls-cert", &client_cert, "--tls-key", &client_key], "m");
    assert_succeeded(&out, "push --external with a client certificate");
    assert_eq!(std::fs::read(dst.path().join("m/f")).unwrap(), b"mutual");
    let out = run(&[], "n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("client certificate"),
        "{}",
        text(&out.stderr)
    );
}
