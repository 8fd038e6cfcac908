//! TLS for `hawser bench --tls`: the loopback server's self-signed certificate, made at
//! start, and the pin its clients trust it by.

use hawser_runtime::tls::pin_hex;
use hawser_runtime::tls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use hawser_runtime::{ApiError, ClientTls, ServerTls};
use rcgen::{CertificateParams, KeyPair};

/// A self-signed certificate for `localhost` and 127.0.0.1: the server's TLS, and the
/// pin of its certificate (hex).
pub(crate) fn self_signed() -> Result<(ServerTls, String), ApiError> {
    let failed = |e: &dyn std::fmt::Display| ApiError::Config(format!("bench certificate: {e}"));
    let key = KeyPair::generate().map_err(|e| failed(&e))?;
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| failed(&e))?;
    let cert = params.self_signed(&key).map_err(|e| failed(&e))?;
    let der = cert.der().clone();
    let pin = pin_hex(&der);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let tls = ServerTls::new(vec![der], key).map_err(|e| failed(&e))?;
    Ok((tls, pin))
}

/// A client that trusts exactly the certificate with `pin`.
pub(crate) fn pinned(pin: &str) -> Result<ClientTls, ApiError> {
    let failed = |e: &dyn std::fmt::Display| ApiError::Config(format!("bench pin: {e}"));
    let pin = hawser_runtime::tls::parse_pin(pin).map_err(|e| failed(&e))?;
    let name = ServerName::try_from("localhost").map_err(|e| failed(&e))?;
    ClientTls::with_pin(pin, name).map_err(|e| failed(&e))
}
