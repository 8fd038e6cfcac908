//! How a client command secures its connections: TLS (`--tls`, `--ca`, `--tls-pin`), the
//! SASL mechanism it insists on, and where its password comes from (`--secret-file`,
//! `HAWSER_PASSWORD`, or a prompt on the terminal).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use hawser_runtime::tls::{Trust, client_tls_with};
use hawser_runtime::{Address, ClientTls, Mechanism};

use crate::error::{CliError, io_err};

/// The system's CA bundle (Debian's `ca-certificates`), trusted by `--tls` alone.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The environment variable a password may come from.
pub const PASSWORD_VARIABLE: &str = "HAWSER_PASSWORD";

/// A client's TLS and SASL options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientSecurityArgs {
    /// Run every connection over TLS 1.3, never falling back to clear text; the server's
    /// certificate is checked against --ca, --tls-pin, or else the system's CA bundle
    /// (/etc/ssl/certs/ca-certificates.crt).
    #[arg(long)]
    pub tls: bool,
    /// Trust server certificates issued by the CA(s) in this PEM file (implies --tls).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Trust exactly the server certificate whose SHA-256 this is (64 hex digits, colons
    /// allowed; implies --tls): for a self-signed server, whose log prints its pin at
    /// start.
    #[arg(long, value_name = "SHA256", conflicts_with = "ca")]
    pub tls_pin: Option<String>,
    /// Show this TLS certificate (PEM chain) when the server asks: a server that maps its
    /// pin to --identity lets you in with --external over TLS (mutual TLS).
    #[arg(long = "tls-cert", value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long = "tls-key", value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Authenticate with this SASL mechanism whatever else the server offers:
    /// SCRAM-SHA-256-PLUS, SCRAM-SHA-256, PLAIN (over TLS only), EXTERNAL or ANONYMOUS
    /// [default: the strongest the server offers that the credentials allow].
    #[arg(long, value_name = "MECHANISM")]
    pub sasl_mechanism: Option<Mechanism>,
}

impl ClientSecurityArgs {
    /// Whether TLS is asked for.
    pub fn wants_tls(&self) -> bool {
        self.tls || self.ca.is_some() || self.tls_pin.is_some() || self.client_cert.is_some()
    }

    /// The TLS configuration for a server at `address`, named `host` in certificates.
    pub fn client_tls(&self, host: &str) -> Result<Option<ClientTls>, CliError> {
        if !self.wants_tls() {
            return Ok(None);
        }
        let trust = match (&self.tls_pin, &self.ca) {
            (Some(pin), _) => Trust::Pin(hawser_runtime::tls::parse_pin(pin).map_err(usage)?),
            (None, Some(ca)) => Trust::Ca(ca.clone()),
            (None, None) if Path::new(SYSTEM_CA_BUNDLE).exists() => {
                Trust::Ca(SYSTEM_CA_BUNDLE.into())
            }
            (None, None) => {
                return Err(CliError::Usage(format!(
                    "--tls: say which server certificates to trust with --ca FILE or \
                     --tls-pin SHA256 (there is no system CA bundle at {SYSTEM_CA_BUNDLE})"
                )));
            }
        };
        let certificate = self.client_cert.as_deref().zip(self.client_key.as_deref());
        client_tls_with(&trust, host, certificate)
            .map(Some)
            .map_err(usage)
    }
}

fn usage(e: impl ToString) -> CliError {
    CliError::Usage(e.to_string())
}

/// The name a server at `address` has in certificates: the host as the user typed it in
/// `spec` (a name or an address), `localhost` for local transports.
pub fn tls_host(spec: &str, address: &Address) -> String {
    match address {
        Address::Tcp(a) | Address::Udp(a) => {
            let rest = spec.strip_prefix("tcp://").unwrap_or(spec);
            let host = if let Some(bracketed) = rest.strip_prefix('[') {
                bracketed.split(']').next().unwrap_or_default()
            } else {
                rest.split(':').next().unwrap_or_default()
            };
            if host.is_empty() {
                a.ip().to_string()
            } else {
                host.to_owned()
            }
        }
        Address::Unix(_) | Address::Shm(_) => "localhost".to_owned(),
    }
}

/// The first line of `text` without its line ending (`\n` or `\r\n`): a password file's
/// and `hawser passwd`'s stdin's, read alike (spaces are part of a password).
pub fn first_line(text: &[u8]) -> &[u8] {
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The password of a client: the first line of `secret_file`, else `HAWSER_PASSWORD`, else
/// (when `prompt` names the login and stdin is a terminal) typed at a prompt; `None`
/// when there is none of these.
pub fn client_password(
    secret_file: Option<&Path>,
    prompt: Option<&str>,
) -> Result<Option<Vec<u8>>, CliError> {
    if let Some(path) = secret_file {
        let text = std::fs::read(path).map_err(io_err(path))?;
        return Ok(Some(first_line(&text).to_vec()));
    }
    if let Some(password) = std::env::var_os(PASSWORD_VARIABLE) {
        return Ok(Some(password.into_encoded_bytes()));
    }
    match prompt {
        Some(login) if std::io::stdin().is_terminal() => {
            let typed = rpassword::prompt_password(format!("password for {login}: "))
                .map_err(|e| CliError::Usage(format!("cannot read the password: {e}")))?;
            Ok(Some(typed.into_bytes()))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_name_the_host_as_typed() {
        let tcp = Address::parse("127.0.0.1:1").unwrap();
        assert_eq!(tls_host("backup.example:9000:dir", &tcp), "backup.example");
        assert_eq!(
            tls_host("tcp://backup.example:9000", &tcp),
            "backup.example"
        );
        assert_eq!(tls_host("[::1]:9000:dir", &tcp), "::1");
        assert_eq!(tls_host(":9000", &tcp), "127.0.0.1");
        let unix = Address::parse("unix:///tmp/x.sock").unwrap();
        assert_eq!(tls_host("unix:///tmp/x.sock:dir", &unix), "localhost");
    }

    #[test]
    fn password_files_give_their_first_line_with_its_spaces() {
        assert_eq!(first_line(b"pencil\n"), b"pencil");
        assert_eq!(first_line(b"pen cil \r\nnext"), b"pen cil ");
        assert_eq!(first_line(b""), b"");
    }

    #[test]
    fn tls_is_asked_by_any_of_its_options() {
        let mut args = ClientSecurityArgs::default();
        assert!(!args.wants_tls());
        assert!(args.client_tls("h").unwrap().is_none());
        args.tls_pin = Some("ab".repeat(32));
        assert!(args.wants_tls());
        assert!(args.client_tls("h").unwrap().is_some());
        args.tls_pin = Some("nope".into());
        let e = args.client_tls("h").unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
    }
}
