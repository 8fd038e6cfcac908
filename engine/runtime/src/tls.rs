//! TLS configurations from files: a server's certificate chain and private key (PEM), and
//! what a client trusts — a CA's certificates (PEM) or one server certificate's pin.

use std::path::{Path, PathBuf};

use hawser_session::tls::certificate_pin;
use hawser_session::{ClientTls, ServerTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The certificate and key types of the TLS configurations.
pub use rustls::pki_types;

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A file could not be read or holds no usable PEM.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The pin is not 64 hex digits.
    #[error(
        "--tls-pin {0:?} is not a SHA-256 (64 hex digits, colons allowed; the server's is \
         `openssl x509 -in CERT -outform DER | sha256sum`)"
    )]
    Pin(String),
    /// The server name cannot be checked against a certificate.
    #[error("{0:?} is not a host name or IP address a certificate can name")]
    ServerName(String),
    /// rustls refused the configuration (a key that does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(path: &Path, why: impl ToString) -> TlsConfigError {
    TlsConfigError::File {
        path: path.to_owned(),
        why: why.to_string(),
    }
}

/// The certificates of a PEM file, leaf first.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if chain.is_empty() {
        return Err(file_error(path, "no CERTIFICATE in this PEM file"));
    }
    Ok(chain)
}

/// A private key file (PEM: PKCS#8, PKCS#1 or SEC1).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| file_error(path, format!("{e} (a PEM private key is expected)")))
}

/// A server's TLS from its certificate chain and private key files (PEM); asking clients
/// for certificates when `client_certificates` (identities mapped to their pins).
pub fn server_tls(
    cert: &Path,
    key: &Path,
    require: bool,
    client_certificates: bool,
) -> Result<ServerTls, TlsConfigError> {
    let chain = load_certificates(cert)?;
    let key = load_key(key)?;
    let mut tls = if client_certificates {
        ServerTls::with_client_certificates(chain, key)?
    } else {
        ServerTls::new(chain, key)?
    };
    tls.require = require;
    Ok(tls)
}

/// What a client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Certificates issued by the CA(s) in this PEM file.
    Ca(PathBuf),
    /// Exactly the certificate with this SHA-256.
    Pin([u8; 32]),
}

/// A client's TLS, checking the server named `host` as `trust` says, and showing the
/// certificate of `certificate` (chain and key files, PEM) when given.
pub fn client_tls_with(
    trust: &Trust,
    host: &str,
    certificate: Option<(&Path, &Path)>,
) -> Result<ClientTls, TlsConfigError> {
    let tls = client_tls(trust, host)?;
    match certificate {
        Some((cert, key)) => {
            Ok(tls.with_client_certificate(load_certificates(cert)?, load_key(key)?)?)
        }
        None => Ok(tls),
    }
}

/// A client's TLS, checking the server named `host` as `trust` says.
pub fn client_tls(trust: &Trust, host: &str) -> Result<ClientTls, TlsConfigError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned())
        .map_err(|_| TlsConfigError::ServerName(host.to_owned()))?;
    match trust {
        Trust::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in load_certificates(path)? {
                roots
                    .add(certificate)
                    .map_err(|e| file_error(path, format!("not a usable CA certificate: {e}")))?;
            }
            Ok(ClientTls::with_roots(roots, name)?)
        }
        Trust::Pin(pin) => Ok(ClientTls::with_pin(*pin, name)?),
    }
}

/// A pin as typed: 64 hex digits, in either case, colons allowed, `sha256:` optional.
pub fn parse_pin(text: &str) -> Result<[u8; 32], TlsConfigError> {
    let digits: String = text
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|&c| c != ':')
        .collect();
    let bytes = (digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| {
            (0..32)
                .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .flatten()
        .ok_or_else(|| TlsConfigError::Pin(text.to_owned()))?;
    Ok(bytes.try_into().expect("32 bytes"))
}

/// The pin of the first certificate of a PEM file, in hex (what `--tls-pin` takes).
pub fn pin_of(cert: &Path) -> Result<String, TlsConfigError> {
    let chain = load_certificates(cert)?;
    Ok(pin_hex(&chain[0]))
}

/// The pin of a certificate, in hex.
pub fn pin_hex(certificate: &CertificateDer<'_>) -> String {
    certificate_pin(certificate)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_in_the_forms_tools_print() {
        let hex = "ab".repeat(32);
        let colons: Vec<String> = (0..32).map(|_| "AB".to_owned()).collect();
        for text in [hex.clone(), colons.join(":"), format!("sha256:{hex}")] {
            assert_eq!(parse_pin(&text).unwrap(), [0xab; 32], "{text}");
        }
        // A multibyte character where a hex digit pair would be sliced panicked (review).
        let euro = format!("€{}", "a".repeat(61));
        for bad in ["", "ab", &"zz".repeat(32), &"a".repeat(63), &euro] {
            assert!(parse_pin(bad).is_err(), "{bad}");
        }
        assert!(
            client_tls(&Trust::Pin([0; 32]), "[::1]").is_ok()
                && client_tls(&Trust::Pin([0; 32]), "backup.example").is_ok()
        );
        let missing = client_tls(&Trust::Ca("/nonexistent/ca.pem".into()), "x").unwrap_err();
        assert!(
            missing.to_string().starts_with("/nonexistent/ca.pem: "),
            "{missing}"
        );
    }
}
