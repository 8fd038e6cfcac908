//! A raw DSP client for the probes: the handshake frames a hostile client sends, spoken
//! with `hawser_wire::dsp` over a blocking TCP stream, nothing of the session layer, and
//! the SCRAM-SHA-256 messages (RFC 5802, RFC 7677) of an attempt with a wrong proof.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hawser_wire::dsp::{
    Auth, AuthResponse, Capabilities, Channel, ChannelAttrs, Compression, EncodeOptions, Frame,
    FrameDecoder, FrameEncoder, Hello, NexusCreate, NexusFeatures, Request,
};

/// What the server said to a handshake step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The step succeeded.
    Ok,
    /// The server answered with a refusal (status or GoAway) and this text.
    Refused(String),
    /// The connection closed (or timed out) without an answer.
    Silent,
}

/// What the server said to an `Auth` or an `AuthResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// An `AuthChallenge`: the mechanism goes on with an `AuthResponse`.
    Challenge(Vec<u8>),
    /// The end: the `AuthResult`, a refusal without one (GoAway), or no answer.
    Done(Answer),
}

/// One probe connection.
#[derive(Debug)]
pub struct RawConnection {
    stream: TcpStream,
    encoder: FrameEncoder,
    decoder: FrameDecoder,
    rx: Vec<u8>,
    /// The mechanisms the server listed after its Hello.
    mechanisms: Vec<String>,
}

/// The largest payload the probe decodes (handshake answers are small).
const MAX_ANSWER: u32 = 1 << 20;

impl RawConnection {
    /// Connects to `addr`; reads wait at most `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RawConnection {
            stream,
            // Handshake frames carry a digest, as hawser's own client sends them.
            encoder: FrameEncoder::new(EncodeOptions {
                digest: true,
                compression: Compression::Off,
            }),
            decoder: FrameDecoder::new(MAX_ANSWER),
            rx: Vec::new(),
            mechanisms: Vec::new(),
        })
    }

    /// The underlying stream (to hold it open, or write raw bytes).
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    fn send(&mut self, frame: &Frame<'_>) -> Result<()> {
        let mut out = Vec::new();
        self.encoder.encode(frame, &mut out)?;
        self.stream.write_all(&out)?;
        Ok(())
    }

    /// Reads the next frame and turns it into an answer with `judge` (which sees every
    /// frame but Ping/Pong and GoAway, and may keep what it needs of the frame).
    fn answer(&mut self, mut judge: impl FnMut(&Frame<'_>) -> Option<Answer>) -> Result<Answer> {
        loop {
            if let Some((frame, used)) = self.decoder.decode(&self.rx)? {
                let verdict = match &frame {
                    Frame::GoAway(g) => {
                        Some(Answer::Refused(format!("GoAway {}: {}", g.code, g.reason)))
                    }
                    Frame::Ping(_) | Frame::Pong(_) => None,
                    other => Some(judge(other).unwrap_or_else(|| {
                        Answer::Refused(format!("unexpected {:?} frame", other.kind()))
                    })),
                };
                self.rx.drain(..used);
                match verdict {
                    Some(answer) => return Ok(answer),
                    None => continue,
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(Answer::Silent),
                Ok(n) => self.rx.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Ok(Answer::Silent);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Hello, version 1 only, digest and backchannel, without TLS; then the server's
    /// Hello and the list of mechanisms that follows it ([`mechanisms`](Self::mechanisms)).
    pub fn hello(&mut self, nonce: [u8; 16]) -> Result<Answer> {
        self.send(&Frame::Hello(Hello {
            min_version: 1,
            max_version: 1,
            capabilities: Capabilities::DIGEST | Capabilities::BACKCHANNEL,
            nonce,
        }))?;
        let hello = self.answer(|f| matches!(f, Frame::Hello(_)).then_some(Answer::Ok))?;
        if hello != Answer::Ok {
            return Ok(hello);
        }
        // The server's first AuthChallenge is not a mechanism's: it lists the mechanisms
        // it offers, space-separated, before the client's Auth.
        let mut list = Vec::new();
        let answer = self.answer(|f| match f {
            Frame::AuthChallenge(c) => {
                list = String::from_utf8_lossy(c.data)
                    .split_ascii_whitespace()
                    .map(str::to_owned)
                    .collect();
                Some(Answer::Ok)
            }
            _ => None,
        })?;
        self.mechanisms = list;
        Ok(answer)
    }

    /// The mechanisms the server listed after its Hello (empty before [`hello`](Self::hello)).
    pub fn mechanisms(&self) -> &[String] {
        &self.mechanisms
    }

    /// Auth with a one-message `mechanism` (ANONYMOUS, EXTERNAL, PLAIN) and its initial
    /// response.
    pub fn auth(&mut self, mechanism: &str, initial_response: &[u8]) -> Result<Answer> {
        match self.auth_start(mechanism, initial_response)? {
            Exchange::Done(answer) => Ok(answer),
            Exchange::Challenge(_) => Ok(Answer::Refused(format!(
                "{mechanism}: the server sent a challenge"
            ))),
        }
    }

    /// Auth with `mechanism` and its initial response: the server's challenge or its
    /// verdict.
    pub fn auth_start(&mut self, mechanism: &str, initial_response: &[u8]) -> Result<Exchange> {
        self.send(&Frame::Auth(Auth {
            mechanism,
            initial_response: Some(initial_response),
        }))?;
        self.exchange()
    }

    /// AuthResponse with `data`, the answer to the server's last challenge.
    pub fn auth_response(&mut self, data: &[u8]) -> Result<Exchange> {
        self.send(&Frame::AuthResponse(AuthResponse { data }))?;
        self.exchange()
    }

    fn exchange(&mut self) -> Result<Exchange> {
        let mut challenge = None;
        let answer = self.answer(|f| match f {
            Frame::AuthChallenge(c) => {
                challenge = Some(c.data.to_vec());
                Some(Answer::Ok)
            }
            Frame::AuthResult(r) if r.status.is_ok() => Some(Answer::Ok),
            Frame::AuthResult(r) => Some(Answer::Refused(format!("{}: {}", r.status, r.reason))),
            _ => None,
        })?;
        Ok(match challenge {
            Some(data) => Exchange::Challenge(data),
            None => Exchange::Done(answer),
        })
    }

    /// One SCRAM-SHA-256 attempt as `identity` that is bound to fail: the client-first
    /// message with `nonce`, then, once the server's first message arrives, a client-final
    /// message whose proof is `proof` instead of one derived from a password. The
    /// server's verdict, or what ended the exchange before it.
    pub fn scram_wrong_proof(
        &mut self,
        identity: &str,
        nonce: &str,
        proof: &[u8; 32],
    ) -> Result<Answer> {
        let first = scram::client_first(identity, nonce);
        let server_first = match self.auth_start("SCRAM-SHA-256", first.as_bytes())? {
            Exchange::Challenge(data) => data,
            Exchange::Done(Answer::Ok) => {
                return Ok(Answer::Refused(
                    "SCRAM-SHA-256 ended without a challenge".into(),
                ));
            }
            Exchange::Done(answer) => return Ok(answer),
        };
        let Some(full_nonce) = scram::server_nonce(&server_first, nonce) else {
            return Ok(Answer::Refused(format!(
                "unexpected server-first message {:?}",
                String::from_utf8_lossy(&server_first)
            )));
        };
        let last = scram::client_final(&full_nonce, proof);
        match self.auth_response(last.as_bytes())? {
            Exchange::Done(answer) => Ok(answer),
            Exchange::Challenge(_) => Ok(Answer::Refused(
                "a second challenge after the client-final message".into(),
            )),
        }
    }

    /// NexusCreate for `identity`, asking for `max_request` bytes per request.
    pub fn create_nexus(&mut self, identity: &str, max_request: u32) -> Result<Answer> {
        let attrs = ChannelAttrs {
            slots: 16,
            max_request_size: max_request,
            max_response_size: 1 << 20,
            max_cached_response_size: 1 << 20,
        };
        self.send(&Frame::NexusCreate(NexusCreate {
            fore: attrs,
            back: attrs,
            grace_period_ms: 120_000,
            features: NexusFeatures::BACKCHANNEL,
            client_identity: identity,
        }))?;
        self.answer(|f| match f {
            Frame::NexusCreated(c) if c.status.is_ok() => Some(Answer::Ok),
            Frame::NexusCreated(c) => Some(Answer::Refused(format!("{}: {}", c.status, c.reason))),
            _ => None,
        })
    }

    /// Hello, ANONYMOUS as `identity`, NexusCreate: a bound connection.
    pub fn anonymous_nexus(&mut self, identity: &str, max_request: u32) -> Result<()> {
        expect_ok(self.hello([7; 16])?, "hello")?;
        expect_ok(self.auth("ANONYMOUS", identity.as_bytes())?, "auth")?;
        expect_ok(self.create_nexus(identity, max_request)?, "nexus create")?;
        Ok(())
    }

    /// The head (header and fixed fields) of a fore-channel request whose body is
    /// `body_len` bytes: what a client sends before the body.
    pub fn request_head(body_len: usize) -> Result<Vec<u8>> {
        // The split is computed from the body's length; its bytes are never read for
        // the head without a digest.
        let body = vec![0u8; body_len];
        let frame = Frame::Request(Request {
            channel: Channel::Fore,
            slot: 0,
            sequence: 1,
            request_id: 1,
            exchange: 0x5245_5003,
            order: None,
            body: &body,
        });
        let split = frame
            .split(false)
            .context("a request splits")?
            .context("encoding the request head")?;
        Ok(split.head().to_vec())
    }
}

/// The client's SCRAM-SHA-256 messages (RFC 5802 §7), without channel binding.
pub mod scram {
    /// The client-first message: no channel binding, no authzid, `identity` (as a
    /// saslname) and the client's `nonce` (printable, no comma).
    pub fn client_first(identity: &str, nonce: &str) -> String {
        let name = identity.replace('=', "=3D").replace(',', "=2C");
        format!("n,,n={name},r={nonce}")
    }

    /// The full nonce of a server-first message (`r=...,s=...,i=...`), when it extends
    /// the client's `nonce` as it must.
    pub fn server_nonce(server_first: &[u8], nonce: &str) -> Option<String> {
        let text = std::str::from_utf8(server_first).ok()?;
        let full = text.split(',').find_map(|a| a.strip_prefix("r="))?;
        (full.len() > nonce.len() && full.starts_with(nonce)).then(|| full.to_owned())
    }

    /// The client-final message: the GS2 header `n,,` again (`biws`), the full nonce and
    /// `proof` as the ClientProof.
    pub fn client_final(full_nonce: &str, proof: &[u8]) -> String {
        format!("c=biws,r={full_nonce},p={}", base64(proof))
    }

    /// Standard base64 with padding (RFC 4648 §4).
    pub fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn base64_matches_rfc_4648_vectors() {
            for (input, encoded) in [
                ("", ""),
                ("f", "Zg=="),
                ("fo", "Zm8="),
                ("foo", "Zm9v"),
                ("foob", "Zm9vYg=="),
                ("fooba", "Zm9vYmE="),
                ("foobar", "Zm9vYmFy"),
            ] {
                assert_eq!(base64(input.as_bytes()), encoded);
            }
            assert_eq!(base64(b"n,,"), "biws");
        }

        #[test]
        fn messages_follow_rfc_7677() {
            // RFC 7677 §3's exchange, its proof replaced.
            let nonce = "rOprNGfwEbeRWgbNEkqO";
            assert_eq!(
                client_first("user", nonce),
                "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
            );
            assert_eq!(client_first("a,b=c", "x"), "n,,n=a=2Cb=3Dc,r=x");
            let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
            let full = server_nonce(server_first, nonce).unwrap();
            assert_eq!(full, "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
            assert_eq!(
                client_final(&full, &[0; 32]),
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                 p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            );
            assert_eq!(server_nonce(b"r=other,s=AA==,i=4096", nonce), None);
            assert_eq!(server_nonce(server_first, "abc"), None);
            assert_eq!(server_nonce(b"s=AA==,i=4096", nonce), None);
        }
    }
}

fn expect_ok(answer: Answer, step: &str) -> Result<()> {
    match answer {
        Answer::Ok => Ok(()),
        Answer::Refused(why) => bail!("{step} refused: {why}"),
        Answer::Silent => bail!("{step}: no answer"),
    }
}
