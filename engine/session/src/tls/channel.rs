//! One connection's TLS layer: ciphertext in, plaintext out, and back — rustls's buffered
//! sans-IO connection driven by the link, on the shard's thread, without async.

use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};

use super::{ClientTls, ServerTls, TlsFailure};
use crate::link::TransmitSink;

/// RFC 9266's label for the `tls-exporter` channel binding.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

pub(crate) struct SecureChannel {
    conn: rustls::Connection,
    failed: Option<TlsFailure>,
    /// Where records are written for the driver: handed over as shared pieces, its
    /// allocation comes back once the driver has sent them (a fresh multi-megabyte
    /// buffer per send cost page faults on every one).
    outgoing: BytesMut,
}

impl std::fmt::Debug for SecureChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureChannel")
            .field("handshaking", &self.conn.is_handshaking())
            .field("failed", &self.failed)
            .finish()
    }
}

impl SecureChannel {
    /// The client end: its ClientHello is ready to send at once.
    pub(crate) fn client(tls: &ClientTls) -> Result<SecureChannel, TlsFailure> {
        let conn = rustls::ClientConnection::new(tls.config.clone(), tls.server_name.clone())
            .map_err(|e| TlsFailure::from(&e))?;
        Ok(Self::new(conn.into()))
    }

    /// The server end.
    pub(crate) fn server(tls: &ServerTls) -> Result<SecureChannel, TlsFailure> {
        let conn =
            rustls::ServerConnection::new(tls.config.clone()).map_err(|e| TlsFailure::from(&e))?;
        Ok(Self::new(conn.into()))
    }

    fn new(mut conn: rustls::Connection) -> SecureChannel {
        // The link hands over only what it has queued and drains after each batch, so
        // rustls's own limit would only split writes.
        conn.set_buffer_limit(None);
        SecureChannel {
            conn,
            failed: None,
            outgoing: BytesMut::new(),
        }
    }

    /// Feeds received ciphertext and appends the plaintext it carries to `plaintext`.
    pub(crate) fn receive(
        &mut self,
        mut ciphertext: &[u8],
        plaintext: &mut BytesMut,
    ) -> Result<(), TlsFailure> {
        if let Some(failure) = self.failed {
            return Err(failure);
        }
        while !ciphertext.is_empty() {
            if self.conn.read_tls(&mut ciphertext).is_err() {
                return Err(self.fail(TlsFailure::Protocol));
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => return Err(self.fail(TlsFailure::from(&e))),
            };
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plaintext.len();
                plaintext.resize(start + ready, 0);
                if self
                    .conn
                    .reader()
                    .read_exact(&mut plaintext[start..])
                    .is_err()
                {
                    plaintext.truncate(start);
                    return Err(self.fail(TlsFailure::Protocol));
                }
            }
            if state.peer_has_closed() {
                break;
            }
        }
        Ok(())
    }

    fn fail(&mut self, failure: TlsFailure) -> TlsFailure {
        self.failed = Some(failure);
        failure
    }

    /// Encrypts `plaintext` (buffered until the handshake is done).
    pub(crate) fn send(&mut self, plaintext: &[u8]) {
        if self.failed.is_none() {
            // Cannot fail without a buffer limit, short of a broken connection, which
            // `receive` reports.
            let _ = self.conn.writer().write_all(plaintext);
        }
    }

    /// Moves the ciphertext ready to send into `out`; returns how many bytes.
    pub(crate) fn drain(&mut self, out: &mut impl TransmitSink) -> usize {
        if !self.conn.wants_write() {
            return 0;
        }
        let mut records = (&mut self.outgoing).writer();
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut records).is_err() {
                break;
            }
        }
        let records = self.outgoing.split().freeze();
        let n = records.len();
        out.put_shared(records);
        n
    }

    /// The pin of the certificate the peer showed (a client's, on a server that asked).
    pub(crate) fn peer_certificate_pin(&self) -> Option<[u8; 32]> {
        if self.conn.is_handshaking() || self.failed.is_some() {
            return None;
        }
        self.conn
            .peer_certificates()
            .and_then(<[_]>::first)
            .map(super::certificate_pin)
    }

    /// The `tls-exporter` channel binding (RFC 9266), once the handshake is done.
    pub(crate) fn exporter(&self) -> Option<[u8; 32]> {
        if self.conn.is_handshaking() || self.failed.is_some() {
            return None;
        }
        self.conn
            .export_keying_material([0; 32], EXPORTER_LABEL, None)
            .ok()
    }
}
