//! TLS 1.3 for the session's connections (rustls, aws-lc-rs provider): the configurations
//! a server offers and a client asks with, and the per-connection layer the link runs its
//! bytes through once the Hello exchange agreed to TLS.
//!
//! TLS is a layer of the pipeline: it needs a reliable byte stream and offers one, so it
//! runs over TCP and Unix sockets alike. Both sides send their Hello in clear text; the
//! client starts TLS right after its own Hello (its ClientHello follows in the same
//! write), the server right after reading a Hello that asks for it. A client that asked
//! for TLS never goes on in clear text: a server Hello without the TLS capability ends
//! the connection. Every later byte, authentication included, is inside TLS.
//!
//! Session keys stay inside rustls. The configurations leave room for kernel TLS: with
//! `enable_secret_extraction` a connection's traffic secrets can be extracted once the
//! handshake is done and handed to the kernel's `tls` module, where it exists.

mod channel;
mod client_auth;
mod failure;
mod pin;
mod signatures;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};

pub(crate) use channel::SecureChannel;
pub use failure::TlsFailure;

/// The crypto provider: aws-lc-rs, measured faster than ring on these machines (see
/// `benches/tls-provider-compare/RESULTS.md`).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What a server offers: its certificate chain and key, and whether clients must use TLS.
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// Refuse clients that do not ask for TLS.
    pub require: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("require", &self.require)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// TLS 1.3 with this certificate chain (leaf first) and its private key.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ServerTls, rustls::Error> {
        Self::build(chain, key, false)
    }

    /// [`new`](Self::new), also asking clients for a certificate (optional for them): a
    /// client whose certificate's pin a server maps to an identity
    /// ([`ServerCredentials::client_certs`](crate::ServerCredentials::client_certs)) may
    /// log in as it with `EXTERNAL`.
    pub fn with_client_certificates(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ServerTls, rustls::Error> {
        Self::build(chain, key, true)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_certificates: bool,
    ) -> Result<ServerTls, rustls::Error> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let builder = if client_certificates {
            builder.with_client_cert_verifier(Arc::new(client_auth::PinnedClients::new(&provider)))
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key)?;
        // Inert unless SSLKEYLOGFILE names a file: decrypting captures for debugging.
        config.key_log = Arc::new(rustls::KeyLogFile::new());
        Ok(ServerTls {
            config: Arc::new(config),
            require: false,
        })
    }
}

/// How a client checks the server: which certificates it trusts, and the name it
/// expects; and the certificate it shows, if any.
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
    trust: Trust,
}

/// What a client trusts.
#[derive(Clone)]
enum Trust {
    Roots(Arc<rustls::RootCertStore>),
    Pin([u8; 32]),
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts certificates issued by `roots` for `server_name` (web PKI rules: chain,
    /// dates, name).
    pub fn with_roots(
        roots: rustls::RootCertStore,
        server_name: ServerName<'static>,
    ) -> Result<ClientTls, rustls::Error> {
        Self::build(Trust::Roots(Arc::new(roots)), server_name, None)
    }

    /// Trusts exactly the server certificate whose DER has this SHA-256 (a self-signed
    /// server; its name and dates are not checked, as with an SSH host key).
    pub fn with_pin(
        sha256: [u8; 32],
        server_name: ServerName<'static>,
    ) -> Result<ClientTls, rustls::Error> {
        Self::build(Trust::Pin(sha256), server_name, None)
    }

    /// The same trust, showing this certificate chain (leaf first) when the server asks:
    /// with its pin mapped to an identity there, the client logs in as it with
    /// `EXTERNAL`.
    pub fn with_client_certificate(
        self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ClientTls, rustls::Error> {
        Self::build(self.trust, self.server_name, Some((chain, key)))
    }

    fn build(
        trust: Trust,
        server_name: ServerName<'static>,
        certificate: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<ClientTls, rustls::Error> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let builder = match &trust {
            Trust::Roots(roots) => builder.with_root_certificates(Arc::clone(roots)),
            Trust::Pin(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pin::PinVerifier::new(*pin, &provider))),
        };
        let mut config = match certificate {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
            None => builder.with_no_client_auth(),
        };
        config.key_log = Arc::new(rustls::KeyLogFile::new());
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
            trust,
        })
    }
}

/// The pin of a certificate: SHA-256 of its DER (what `--tls-pin` takes, in hex).
pub fn certificate_pin(certificate: &CertificateDer<'_>) -> [u8; 32] {
    Sha256::digest(certificate.as_ref()).into()
}
