//! Handshake signatures checked with the provider's algorithms: what both of hawser's own
//! certificate verifiers (the server's pin, the clients' certificates) do alike, since
//! they decide trust by pin but must still see the peer prove it holds the key.

use rustls::DigitallySignedStruct;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::CertificateDer;
use rustls::{Error, SignatureScheme};

#[derive(Debug)]
pub(super) struct Signatures(WebPkiSupportedAlgorithms);

impl Signatures {
    pub(super) fn of(provider: &CryptoProvider) -> Self {
        Signatures(provider.signature_verification_algorithms)
    }

    pub(super) fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    pub(super) fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    pub(super) fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
