//! Client certificates as a server takes them: optional, any issuer, the handshake
//! signature verified (the client holds the key). Which identity a certificate may take
//! is decided by its pin, at EXTERNAL authentication (`ServerCredentials::client_certs`),
//! as SSH maps keys to accounts.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;

use super::signatures::Signatures;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

#[derive(Debug)]
pub(super) struct PinnedClients {
    signatures: Signatures,
}

impl PinnedClients {
    pub(super) fn new(provider: &CryptoProvider) -> Self {
        PinnedClients {
            signatures: Signatures::of(provider),
        }
    }
}

impl ClientCertVerifier for PinnedClients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Clients without a certificate authenticate with SASL instead.
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Any certificate: only its pin, mapped to an identity, grants anything.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}
