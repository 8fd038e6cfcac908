//! A raw DSP client for the probes: the handshake frames a hostile client sends, spoken
//! with `hawser_wire::dsp` over a blocking TCP stream, nothing of the session layer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hawser_wire::dsp::{
    Auth, Capabilities, Channel, ChannelAttrs, Compression, EncodeOptions, Frame, FrameDecoder,
    FrameEncoder, Hello, NexusCreate, NexusFeatures, Request,
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

/// One probe connection.
#[derive(Debug)]
pub struct RawConnection {
    stream: TcpStream,
    encoder: FrameEncoder,
    decoder: FrameDecoder,
    rx: Vec<u8>,
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
    /// frame but Ping/Pong).
    fn answer(&mut self, judge: impl Fn(&Frame<'_>) -> Option<Answer>) -> Result<Answer> {
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

    /// Hello, version 1 only, digest and backchannel.
    pub fn hello(&mut self, nonce: [u8; 16]) -> Result<Answer> {
        self.send(&Frame::Hello(Hello {
            min_version: 1,
            max_version: 1,
            capabilities: Capabilities::DIGEST | Capabilities::BACKCHANNEL,
            nonce,
        }))?;
        self.answer(|f| matches!(f, Frame::Hello(_)).then_some(Answer::Ok))
    }

    /// Auth with `mechanism` and its initial response.
    pub fn auth(&mut self, mechanism: &str, initial_response: &[u8]) -> Result<Answer> {
        self.send(&Frame::Auth(Auth {
            mechanism,
            initial_response: Some(initial_response),
        }))?;
        self.answer(|f| match f {
            Frame::AuthResult(r) if r.status.is_ok() => Some(Answer::Ok),
            Frame::AuthResult(r) => Some(Answer::Refused(format!("{}: {}", r.status, r.reason))),
            _ => None,
        })
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

fn expect_ok(answer: Answer, step: &str) -> Result<()> {
    match answer {
        Answer::Ok => Ok(()),
        Answer::Refused(why) => bail!("{step} refused: {why}"),
        Answer::Silent => bail!("{step}: no answer"),
    }
}
