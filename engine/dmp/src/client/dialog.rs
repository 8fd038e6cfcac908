//! The client's half of the seed's dialog: protocol header and lease out, greeting and
//! verdict in.

use std::io::{Read, Write};
use std::time::Duration;

use hawser_runtime::Address;
use hawser_wire::dmp::{Command, Preamble, Response, ShortStr};

use super::DmpError;
use super::stream::Stream;

/// Timers of a direct connection's client.
#[derive(Debug, Clone, Copy)]
pub struct DirectOptions {
    /// How long connecting and the dialog may take.
    pub connect_timeout: Duration,
    /// A null message after this long without writing.
    pub heartbeat: Duration,
    /// The server is dead after this long without a byte from it.
    pub dead_after: Duration,
}

impl Default for DirectOptions {
    fn default() -> Self {
        DirectOptions {
            connect_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
        }
    }
}

/// A direct connection after `200 OK Ready`: the socket, the verdict's text, the
/// bytes read past it, and the timers to keep (the server's heartbeat, when it says).
pub(crate) struct Opened {
    pub(crate) stream: Stream,
    pub(crate) ready: String,
    pub(crate) leftover: Vec<u8>,
    pub(crate) options: DirectOptions,
}

impl DirectOptions {
    /// These timers kept to a server that heartbeats every `server`: beat at least as
    /// often, and wait for at least three of its beats before calling it dead.
    pub fn kept_to(self, server: Duration) -> Self {
        DirectOptions {
            heartbeat: self.heartbeat.min(server),
            dead_after: self.dead_after.max(server * 3),
            ..self
        }
    }
}

/// The heartbeat a `Ready` text announces (`…; heartbeat 5000 ms`).
fn announced_heartbeat(ready: &str) -> Option<Duration> {
    let (_, tail) = ready.rsplit_once("; heartbeat ")?;
    let ms: u64 = tail.strip_suffix(" ms")?.parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// Reads one response short string, keeping what follows it.
fn read_response(stream: &mut Stream, buf: &mut Vec<u8>) -> Result<(u16, String), DmpError> {
    loop {
        match Response::decode(buf) {
            Ok(Some((r, n))) => {
                let code = r.code();
                let text =
                    String::from_utf8_lossy(r.explanation().unwrap_or_default()).into_owned();
                buf.drain(..n);
                if !code.is_success() {
                    return Err(DmpError::Refused { code, text });
                }
                return Ok((code.code(), text));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(DmpError::Protocol(format!(
                    "the server's answer is not a DMP response ({e}): is this a hawser \
                     server with DMP?"
                )));
            }
        }
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                DmpError::Protocol("the server did not answer the dialog in time".into())
            } else {
                DmpError::Io(e)
            }
        })?;
        if n == 0 {
            return Err(DmpError::Protocol(
                "the server closed the connection during the dialog".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Connects to `address` and runs the dialog with `lease`.
pub(crate) fn open(
    address: &Address,
    lease: &str,
    options: &DirectOptions,
) -> Result<Opened, DmpError> {
    let mut stream = Stream::connect(address, options.connect_timeout)?;
    stream.set_read_timeout(Some(options.connect_timeout))?;
    let lease = ShortStr::text(lease)
        .ok_or_else(|| DmpError::Protocol("a lease has at most 255 bytes".into()))?;
    let mut hello = Vec::with_capacity(Preamble::LEN + 1 + lease.as_bytes().len());
    Preamble::DMP.encode(&mut hello);
    Command { text: lease }.encode(&mut hello);
    stream.write_all(&hello)?;
    let mut buf = Vec::new();
    read_response(&mut stream, &mut buf)?;
    let (_, ready) = read_response(&mut stream, &mut buf)?;
    stream.set_read_timeout(None)?;
    let options = match announced_heartbeat(&ready) {
        Some(server) => options.kept_to(server),
        None => *options,
    };
    Ok(Opened {
        stream,
        ready,
        leftover: buf,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_heartbeat_is_read_from_its_ready_text() {
        let ready = "Ready to read from \"f\"; heartbeat 1000 ms";
        assert_eq!(announced_heartbeat(ready), Some(Duration::from_secs(1)));
        assert_eq!(announced_heartbeat("Ready to write to \"s\""), None);
        let kept = DirectOptions::default().kept_to(Duration::from_secs(1));
        assert_eq!(kept.heartbeat, Duration::from_secs(1));
        assert_eq!(kept.dead_after, Duration::from_secs(15));
        let slow = DirectOptions::default().kept_to(Duration::from_secs(10));
        assert_eq!(
            (slow.heartbeat, slow.dead_after),
            (Duration::from_secs(5), Duration::from_secs(30))
        );
    }
}
