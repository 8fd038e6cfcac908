//! The consuming direct connection of a feed: messages read in large receives and
//! handed out in place, null messages sent while idle, a silent server detected.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hawser_runtime::Address;
use hawser_wire::dmp::{Envelope, Message};

use super::DmpError;
use super::dialog::{self, DirectOptions};
use super::publisher::now_micros;
use super::stream::Stream;
use crate::config::DEFAULT_MAX_MESSAGE_SIZE;
use crate::direct::NULL_MESSAGE;

/// Bytes asked of each receive.
const RECEIVE: usize = 1 << 20;

/// A message, in place in the consumer's buffer until the next receive.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The decoded envelope.
    pub envelope: Envelope<'a>,
    /// The message as it travelled (size field included).
    pub raw: &'a [u8],
}

impl Delivery<'_> {
    /// Microseconds since its publisher stamped it (the timestamp property), if it has one.
    pub fn age_micros(&self) -> Option<u64> {
        self.envelope
            .properties
            .timestamp
            .map(|t| now_micros().saturating_sub(t))
    }
}

/// Writes null messages at the heartbeat's interval from a thread of its own, so that a
/// consumer busy elsewhere between two `recv` calls is still heard. Only null messages are
/// ever written on a feed connection, so the two writers cannot garble each other.
#[derive(Debug)]
struct Beater {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Beater {
    fn start(mut stream: Stream, interval: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("dmp-consumer-beat".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(interval);
                    if flag.load(Ordering::Acquire) || stream.write_all(&NULL_MESSAGE).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Beater {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Beater {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Reads one feed.
#[derive(Debug)]
pub struct Consumer {
    beater: Beater,
    stream: Stream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    options: DirectOptions,
    max_message_size: u32,
    last_heard: Instant,
    ready: String,
    malformed: u64,
}

impl Consumer {
    /// Opens the consuming connection with a lease for the feed.
    pub fn open(address: &Address, lease: &str, options: DirectOptions) -> Result<Self, DmpError> {
        let opened = dialog::open(address, lease, &options)?;
        let options = opened.options;
        let tick = (options.heartbeat / 2).max(Duration::from_millis(10));
        opened.stream.set_read_timeout(Some(tick))?;
        let mut buf = vec![0u8; RECEIVE];
        let end = opened.leftover.len();
        if end > buf.len() {
            buf.resize(end, 0);
        }
        buf[..end].copy_from_slice(&opened.leftover);
        let now = Instant::now();
        let beater = Beater::start(opened.stream.try_clone()?, options.heartbeat)?;
        Ok(Consumer {
            beater,
            stream: opened.stream,
            buf,
            start: 0,
            end,
            options,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            last_heard: now,
            ready: opened.ready,
            malformed: 0,
        })
    }

    /// Messages reported as [`DmpError::Malformed`]: their envelope was malformed inside
    /// its size field (a publisher's doing: the server routes by the size, exchange and
    /// routing key only).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The server's `Ready` text.
    pub fn ready_text(&self) -> &str {
        &self.ready
    }

    /// The largest message accepted (default: the server's default limit).
    pub fn set_max_message_size(&mut self, bytes: u32) {
        self.max_message_size = bytes;
    }

    /// The next message; `None` once the server closed the feed's connection (the feed
    /// was deleted, or the consumer disconnected as too slow). Waits as long as it takes,
    /// heartbeating. A message whose envelope is malformed is [`DmpError::Malformed`]:
    /// the connection goes on, the next call returns the next message.
    pub fn recv(&mut self) -> Result<Option<Delivery<'_>>, DmpError> {
        self.recv_until(None)
    }

    /// As [`recv`](Self::recv), giving up with [`DmpError::Io`] of kind `TimedOut` once
    /// `deadline` passes.
    pub fn recv_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Delivery<'_>>, DmpError> {
        if self.start == usize::MAX {
            return Ok(None);
        }
        loop {
            let avail = self.end - self.start;
            if avail >= 4 {
                let at = self.start;
                let size = u32::from_be_bytes(self.buf[at..at + 4].try_into().expect("4 bytes"));
                if size == 0 {
                    self.start += 4;
                    continue;
                }
                if size > self.max_message_size {
                    return Err(DmpError::Protocol(format!(
                        "the server sent a message of {size} bytes, over the limit of {}",
                        self.max_message_size
                    )));
                }
                let len = 4 + size as usize;
                if avail >= len {
                    self.start += len;
                    let raw = &self.buf[at..at + len];
                    return match Message::decode(raw, self.max_message_size) {
                        Ok(Some((Message::Envelope(envelope), _))) => {
                            Ok(Some(Delivery { envelope, raw }))
                        }
                        // The server checks a message's framing and routing fields, not the
                        // rest: one a publisher malformed inside its size is reported, and
                        // the next call goes on with the next message.
                        Ok(_) | Err(_) => {
                            self.malformed += 1;
                            Err(DmpError::Malformed { size })
                        }
                    };
                }
                if len > self.buf.len() {
                    self.buf.resize(len, 0);
                }
            }
            let unread = self.end - self.start;
            self.receive(deadline)?;
            if self.start == usize::MAX {
                if unread > 0 {
                    return Err(DmpError::Protocol(format!(
                        "the connection ended inside a message ({unread} bytes of it came)"
                    )));
                }
                return Ok(None);
            }
        }
    }

    /// One receive into the buffer (moving the unread tail to its front first);
    /// `start == usize::MAX` marks the end of the stream.
    fn receive(&mut self, deadline: Option<Instant>) -> Result<(), DmpError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.start = usize::MAX;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.last_heard = Instant::now();
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    let now = Instant::now();
                    let silent = now - self.last_heard;
                    if silent >= self.options.dead_after {
                        self.stream.shutdown();
                        return Err(DmpError::Dead(silent));
                    }
                    if deadline.is_some_and(|d| now >= d) {
                        return Err(DmpError::Io(std::io::ErrorKind::TimedOut.into()));
                    }
                }
                Err(e) => return Err(DmpError::Io(e)),
            }
        }
    }

    /// Ends the connection.
    pub fn close(self) {
        drop(self.beater);
        self.stream.shutdown();
    }
}
