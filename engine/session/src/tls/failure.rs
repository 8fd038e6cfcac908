//! Why a TLS connection failed, in words that say what to do.

use rustls::{AlertDescription, CertificateError, Error};

/// A TLS failure, as the side that met it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// The client asked for TLS and the server's Hello did not agree to it.
    #[error(
        "the server did not agree to TLS (it has no certificate, or something between \
         stripped the offer): refusing to go on in clear text"
    )]
    NotOffered,
    /// The server requires TLS and the client did not ask for it.
    #[error("this server requires TLS: connect with --tls (and --ca FILE or --tls-pin SHA256)")]
    Required,
    /// The certificate is not issued by a trusted CA.
    #[error(
        "TLS: the server's certificate is not issued by a CA you trust: give the issuing CA \
         with --ca FILE, or pin a self-signed server with --tls-pin SHA256"
    )]
    UnknownIssuer,
    /// The certificate's validity ended.
    #[error("TLS: the server's certificate has expired: the operator must renew it")]
    Expired,
    /// The certificate is not valid yet.
    #[error("TLS: the server's certificate is not valid yet (check both clocks)")]
    NotYetValid,
    /// The certificate is for another name.
    #[error("TLS: the server's certificate is not for the name or address you connected to")]
    NameMismatch,
    /// The certificate is not the pinned one.
    #[error(
        "TLS: the server's certificate does not match --tls-pin (print the right pin on the \
         server with `openssl x509 -in CERT -outform DER | sha256sum`): not trusting it"
    )]
    PinMismatch,
    /// The certificate is unusable (malformed, wrong key usage, a CA certificate).
    #[error(
        "TLS: the server's certificate is unusable as a server's (malformed, a wrong key \
         usage, or a CA certificate: a self-signed one made with CA:TRUE is trusted with \
         --tls-pin, not --ca)"
    )]
    BadCertificate,
    /// The peer ended the handshake with an alert (it refused our certificate or
    /// parameters).
    #[error("TLS: the peer refused the handshake (alert: {0})")]
    PeerAlert(&'static str),
    /// Anything else: not TLS, corrupted records, a protocol violation.
    #[error("TLS: the handshake or a record failed (not a TLS peer, or corrupted data)")]
    Protocol,
}

impl From<&Error> for TlsFailure {
    fn from(e: &Error) -> Self {
        match e {
            Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsFailure::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsFailure::NotYetValid
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
                CertificateError::ApplicationVerificationFailure => TlsFailure::PinMismatch,
                _ => TlsFailure::BadCertificate,
            },
            Error::AlertReceived(alert) => TlsFailure::PeerAlert(alert_name(*alert)),
            _ => TlsFailure::Protocol,
        }
    }
}

fn alert_name(alert: AlertDescription) -> &'static str {
    match alert {
        AlertDescription::BadCertificate => "bad certificate",
        AlertDescription::UnknownCA => "unknown CA",
        AlertDescription::CertificateExpired => "certificate expired",
        AlertDescription::CertificateRequired => "certificate required",
        AlertDescription::HandshakeFailure => "handshake failure",
        AlertDescription::ProtocolVersion => "protocol version",
        AlertDescription::DecryptError => "decrypt error",
        AlertDescription::BadRecordMac => "bad record MAC",
        _ => "other",
    }
}
