//! A publishing direct connection: envelopes batched into large writes, a monitor
//! thread that hears the server (heartbeats, a refusal, silence) and keeps the
//! connection alive while the application is idle.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use hawser_runtime::Address;
use hawser_wire::dmp::{Envelope, Message, Properties, Response, ShortStr};

use super::DmpError;
use super::dialog::{self, DirectOptions};
use super::stream::Stream;
use crate::direct::NULL_MESSAGE;

/// Messages are written once this much is batched (as OpenAMQ batches).
const BATCH: usize = 32 << 10;

/// Microseconds since the Unix epoch: the timestamp property hawser's publishers set.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

struct Shared {
    writer: Mutex<Stream>,
    started: Instant,
    /// Nanoseconds after `started` of the last write.
    last_write: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<DmpError>>,
    done: AtomicBool,
}

impl Shared {
    fn fail(&self, e: DmpError) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn take_failure(&self) -> DmpError {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| DmpError::Protocol("the direct connection failed".into()))
    }

    fn stamp(&self) {
        let nanos = self.started.elapsed().as_nanos() as u64;
        self.last_write.store(nanos, Ordering::Relaxed);
    }
}

/// Writes messages to one sink.
pub struct Publisher {
    shared: Arc<Shared>,
    monitor: Option<JoinHandle<()>>,
    sink: String,
    batch: Vec<u8>,
    published: u64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("sink", &self.sink)
            .field("published", &self.published)
            .finish()
    }
}

impl Publisher {
    /// Opens a publishing connection to `address` with a lease for `sink`.
    pub fn open(
        address: &Address,
        lease: &str,
        sink: &str,
        options: DirectOptions,
    ) -> Result<Self, DmpError> {
        let opened = dialog::open(address, lease, &options)?;
        let options = opened.options;
        let reader = opened.stream.try_clone()?;
        let shared = Arc::new(Shared {
            writer: Mutex::new(opened.stream),
            started: Instant::now(),
            last_write: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            done: AtomicBool::new(false),
        });
        let watch = Arc::clone(&shared);
        let monitor = std::thread::Builder::new()
            .name("dmp-publisher".into())
            .spawn(move || monitor(reader, opened.leftover, &watch, options))?;
        Ok(Publisher {
            shared,
            monitor: Some(monitor),
            sink: sink.to_owned(),
            batch: Vec::with_capacity(BATCH + 1024),
            published: 0,
        })
    }

    /// Publishes `body` with `routing_key`, stamped with the time (the timestamp
    /// property, in microseconds since the Unix epoch).
    pub fn publish(&mut self, routing_key: &[u8], body: &[u8]) -> Result<(), DmpError> {
        let properties = Properties {
            timestamp: Some(now_micros()),
            ..Properties::default()
        };
        let key = ShortStr::new(routing_key).ok_or_else(|| DmpError::Refused {
            code: hawser_wire::dmp::ResponseCode::SyntaxError,
            text: "a routing key has at most 255 bytes".into(),
        })?;
        self.publish_envelope(&Envelope {
            routing_key: key,
            properties,
            body,
            ..Envelope::default()
        })
    }

    /// Publishes an envelope as given (its exchange must be empty or the sink's name).
    pub fn publish_envelope(&mut self, envelope: &Envelope<'_>) -> Result<(), DmpError> {
        Message::Envelope(*envelope)
            .encode(&mut self.batch)
            .map_err(|e| DmpError::Protocol(e.to_string()))?;
        self.published += 1;
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is batched.
    pub fn flush(&mut self) -> Result<(), DmpError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.shared.take_failure());
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        let result = {
            let mut w = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
            w.write_all(&self.batch)
        };
        self.batch.clear();
        self.shared.stamp();
        if let Err(e) = result {
            // The monitor may know why (a refusal the server sent before closing).
            std::thread::sleep(Duration::from_millis(20));
            if self.shared.failed.load(Ordering::Acquire) {
                return Err(self.shared.take_failure());
            }
            return Err(DmpError::Io(e));
        }
        Ok(())
    }

    /// Messages published.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Flushes, ends the stream and waits for the server to close it, which it does once
    /// it has read every message: as long as the server is heard (a feed with the block
    /// policy holds its publishers while its consumer stalls), or until it is silent for
    /// `dead_after` ([`DmpError::Dead`]). A refusal the server sent meanwhile (some
    /// messages were then not taken) is the error.
    ///
    /// Closing earlier could lose messages: a socket closed with unread bytes (the
    /// server's null messages) is reset, and a reset discards what the server had not
    /// read yet.
    pub fn close(mut self) -> Result<(), DmpError> {
        let flushed = self.flush();
        self.finish();
        flushed?;
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.shared.take_failure());
        }
        Ok(())
    }

    fn finish(&mut self) {
        self.shared.done.store(true, Ordering::Release);
        self.shared
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shutdown_write();
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.monitor.is_some() {
            let _ = self.flush();
            self.finish();
        }
    }
}

/// Reads what the server sends a publisher (null messages, or a refusal before it
/// closes), writes null messages while the application is idle, and gives up on a
/// silent server.
fn monitor(mut reader: Stream, mut buf: Vec<u8>, shared: &Shared, options: DirectOptions) {
    let tick = (options.heartbeat / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let _ = reader.set_read_timeout(Some(tick));
    let mut last_heard = Instant::now();
    let mut chunk = [0u8; 512];
    loop {
        // Nulls are skipped; anything else is the server's last word.
        while buf.len() >= 4 && buf[..4] == NULL_MESSAGE {
            buf.drain(..4);
        }
        if !buf.is_empty()
            && let Ok(Some((r, _))) = Response::decode(&buf)
        {
            shared.fail(DmpError::Refused {
                code: r.code(),
                text: String::from_utf8_lossy(r.explanation().unwrap_or_default()).into_owned(),
            });
            return;
        }
        match reader.read(&mut chunk) {
            Ok(0) => {
                if !shared.done.load(Ordering::Acquire) {
                    shared.fail(DmpError::Protocol(
                        "the server closed the connection".into(),
                    ));
                }
                return;
            }
            Ok(n) => {
                last_heard = Instant::now();
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                if !shared.done.load(Ordering::Acquire) {
                    shared.fail(DmpError::Io(e));
                }
                return;
            }
        }
        let silent = last_heard.elapsed();
        if silent >= options.dead_after {
            shared.fail(DmpError::Dead(silent));
            reader.shutdown();
            return;
        }
        if shared.done.load(Ordering::Acquire) {
            // The server closes once it has read the end; until then this side keeps
            // reading, so that the socket is never closed with unread bytes.
            continue;
        }
        let idle_since = Duration::from_nanos(shared.last_write.load(Ordering::Relaxed));
        if shared.started.elapsed().saturating_sub(idle_since) >= options.heartbeat {
            // A write in progress (perhaps held by back-pressure) is not idleness.
            let Ok(mut w) = shared.writer.try_lock() else {
                continue;
            };
            if w.write_all(&NULL_MESSAGE).is_err() {
                // The read side says why (a refusal) on the next turns.
                continue;
            }
            drop(w);
            shared.stamp();
        }
    }
}
