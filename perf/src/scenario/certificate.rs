//! A self-signed certificate for `hawser serve --tls-cert/--tls-key`, made with the
//! `openssl` command, and its pin as `--tls-pin` takes it: the lowercase hex SHA-256 of
//! the certificate's DER encoding.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::tools::{require_program, run_output};

/// A certificate and its key on disk, and the certificate's pin.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (unencrypted).
    pub key: PathBuf,
    /// Lowercase hex SHA-256 of the certificate's DER.
    pub pin: String,
}

/// The `openssl req` arguments that write a P-256 certificate for `CN=localhost`, valid
/// two days, naming `addresses` (IP literals) and `localhost` as subject alternative
/// names, into `cert` and `key`.
pub fn req_args(cert: &Path, key: &Path, addresses: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = addresses.iter().map(|a| format!("IP:{a}")).collect();
    names.push("DNS:localhost".to_owned());
    [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([
        format!("subjectAltName={}", names.join(",")),
        "-keyout".to_owned(),
        key.to_string_lossy().into_owned(),
        "-out".to_owned(),
        cert.to_string_lossy().into_owned(),
    ])
    .collect()
}

/// The digest of `sha256sum`'s output line (`HEX  FILE`), checked to be 64 hex digits
/// and lowercased.
pub fn parse_sha256sum(output: &str) -> Result<String> {
    let digest = output.split_whitespace().next().unwrap_or_default();
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("sha256sum printed no SHA-256: {:?}", output.trim());
    }
    Ok(digest.to_ascii_lowercase())
}

/// Writes `cert.pem`, `key.pem` and `cert.der` into `dir` and computes the pin. Besides
/// `localhost`, the certificate names `addresses`: the pin alone is what the client
/// checks, but a name that matches the address connected to keeps the rows valid should
/// a client also check names.
pub fn generate(dir: &Path, addresses: &[&str]) -> Result<SelfSigned> {
    let openssl = require_program("openssl")?;
    let sha256sum = require_program("sha256sum")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let der = dir.join("cert.der");
    run_output(
        Command::new(&openssl).args(req_args(&cert, &key, addresses)),
        "openssl req -x509",
    )?;
    run_output(
        Command::new(&openssl)
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .arg("-out")
            .arg(&der),
        "openssl x509 -outform DER",
    )?;
    let output = run_output(Command::new(&sha256sum).arg(&der), "sha256sum")?;
    let pin = parse_sha256sum(&String::from_utf8_lossy(&output.stdout))?;
    Ok(SelfSigned { cert, key, pin })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_names_every_address_and_localhost() {
        let args = req_args(
            Path::new("/d/cert.pem"),
            Path::new("/d/key.pem"),
            &["127.0.0.1", "198.18.0.2"],
        )
        .join(" ");
        assert!(
            args.contains(
                "-addext subjectAltName=IP:127.0.0.1,IP:198.18.0.2,DNS:localhost -keyout \
                 /d/key.pem -out /d/cert.pem"
            ),
            "{args}"
        );
        assert!(args.starts_with("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"));
    }

    #[test]
    fn sha256sum_output_gives_a_lowercase_pin() {
        let line =
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855  /d/cert.der\n";
        assert_eq!(
            parse_sha256sum(line).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(parse_sha256sum("").is_err());
        assert!(parse_sha256sum("e3b0c442  short").is_err());
        let not_hex = "z".repeat(64);
        assert!(parse_sha256sum(&not_hex).is_err());
    }
}
