//! The metrics endpoint's HTTP/1.1 responder: an accepting thread and a thread per
//! connection, at most [`MAX_CONNECTIONS`] at once; `GET /metrics` is answered with the
//! text exposition and anything else with 400, 404 or 405. The port is as exposed as the
//! server's: a request is read for at most [`READ_TIMEOUT`] and [`MAX_REQUEST`] bytes,
//! connections past the cap are closed unanswered, and every connection is closed after
//! one answer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::metrics::{CONTENT_TYPE, Metrics};

/// The longest request head read (a scraper's is a few hundred bytes).
const MAX_REQUEST: usize = 8 * 1024;

/// How long a client has to send its request head, in all.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long writing the answer may stall.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections answered at once; a few slow clients cannot keep a scraper out.
const MAX_CONNECTIONS: usize = 8;

/// Counts a connection being answered; the count goes down however the answer ends.
struct Answering(Arc<AtomicUsize>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Binds `addr` and answers scrapes on a thread of its own for the life of the process.
/// Returns the bound address (port 0 picks one).
pub(crate) fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("hawser-metrics".into())
        .spawn(move || {
            let answering = Arc::new(AtomicUsize::new(0));
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if answering.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                            answering.fetch_sub(1, Ordering::AcqRel);
                            continue;
                        }
                        let slot = Answering(Arc::clone(&answering));
                        let metrics = Arc::clone(&metrics);
                        let spawned = std::thread::Builder::new()
                            .name("hawser-metrics-answer".into())
                            .spawn(move || {
                                let _slot = slot;
                                if let Err(e) = answer(stream, &metrics) {
                                    tracing::debug!("metrics request: {e}");
                                }
                            });
                        if let Err(e) = spawned {
                            tracing::warn!("metrics endpoint {bound}: no thread to answer: {e}");
                        }
                    }
                    // Out of descriptors or an aborted connection: wait a moment and go on.
                    Err(e) => {
                        tracing::warn!("metrics endpoint {bound}: accepting: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok(bound)
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Reads one request head and answers it.
fn answer(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let (status, content_type, body) = match parse(&head) {
        Asked::Metrics => ("200 OK", CONTENT_TYPE, metrics.render()),
        Asked::NotFound => (
            "404 Not Found",
            "text/plain",
            "not found: GET /metrics\n".into(),
        ),
        Asked::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics\n".into(),
        ),
        Asked::BadRequest => ("400 Bad Request", "text/plain", "bad request\n".into()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        response.push_str("Allow: GET\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&body);
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// The request head: bytes up to the blank line, at most [`MAX_REQUEST`], within
/// [`READ_TIMEOUT`] of the first read.
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head too slow",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= MAX_REQUEST {
            head.truncate(MAX_REQUEST);
            return Ok(head);
        }
    }
}

/// What the request line of `head` asks for.
fn parse(head: &[u8]) -> Asked {
    let line_end = head.windows(2).position(|w| w == b"\r\n");
    let Some(line) = line_end.map(|end| &head[..end]) else {
        return Asked::BadRequest;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Asked::BadRequest;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::BadRequest;
    }
    // A query string (Prometheus adds none, some tools do) does not change the answer.
    let path = target.split('?').next().unwrap_or(target);
    match (method, path) {
        ("GET", "/metrics") => Asked::Metrics,
        (_, "/metrics") => Asked::MethodNotAllowed,
        _ => Asked::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        let cases: [(&[u8], Asked); 8] = [
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", Asked::Metrics),
            (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", Asked::Metrics),
            (b"GET / HTTP/1.1\r\n\r\n", Asked::NotFound),
            (b"GET /metrics/../etc HTTP/1.1\r\n\r\n", Asked::NotFound),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Asked::MethodNotAllowed),
            (b"GET /metrics\r\n\r\n", Asked::BadRequest),
            (b"GET /metrics SPDY/3\r\n\r\n", Asked::BadRequest),
            (b"\xff\xfe /metrics HTTP/1.1\r\n\r\n", Asked::BadRequest),
        ];
        for (head, asked) in cases {
            assert_eq!(parse(head), asked, "{:?}", String::from_utf8_lossy(head));
        }
        assert_eq!(parse(&[b'G'; MAX_REQUEST]), Asked::BadRequest);
    }
}
