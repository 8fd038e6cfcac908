//! The server's receive budget and frame timeout over real sockets: many connections
//! holding most of a large request each cannot make the server hold more than its budget
//! (its RSS is measured), a connection that trickles a frame is closed, and the server
//! keeps serving throughout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_runtime::{Client, ClientOptions, ExchangeId, ServerBuilder, Service};
use hawser_wire::dsp::{
    Auth, Capabilities, Channel, ChannelAttrs, Compression, EncodeOptions, Frame, FrameDecoder,
    FrameEncoder, Hello, NexusCreate, NexusFeatures, Request,
};

const ECHO: ExchangeId = ExchangeId(9);

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// A bare DSP client: Hello, ANONYMOUS, NexusCreate, read up to each answer.
fn bound_connection(addr: SocketAddr, identity: &str, max_request: u32) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Handshake frames carry a digest; the Hello offers none for after the bind, so the
    // request's head below goes as it is.
    let mut encoder = FrameEncoder::new(EncodeOptions {
        digest: true,
        compression: Compression::Off,
    });
    let attrs = ChannelAttrs {
        slots: 4,
        max_request_size: max_request,
        max_response_size: 1 << 20,
        max_cached_response_size: 1 << 20,
    };
    let frames = [
        Frame::Hello(Hello {
            min_version: 1,
            max_version: 1,
            capabilities: Capabilities::BACKCHANNEL,
            nonce: [1; 16],
        }),
        Frame::Auth(Auth {
            mechanism: "ANONYMOUS",
            initial_response: Some(identity.as_bytes()),
        }),
        Frame::NexusCreate(NexusCreate {
            fore: attrs,
            back: attrs,
            grace_period_ms: 10_000,
            features: NexusFeatures::BACKCHANNEL,
            client_identity: identity,
        }),
    ];
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut rx = Vec::new();
    for frame in &frames {
        let mut out = Vec::new();
        encoder.encode(frame, &mut out).unwrap();
        stream.write_all(&out).unwrap();
        // One answer per step (Hello, AuthResult, NexusCreated); the server's list of
        // mechanisms after its Hello is read past.
        loop {
            if let Some((answer, used)) = decoder.decode(&rx).unwrap() {
                if matches!(answer, Frame::AuthChallenge(_)) {
                    rx.drain(..used);
                    continue;
                }
                let ok = match answer {
                    Frame::Hello(_) => true,
                    Frame::AuthResult(r) => r.status.is_ok(),
                    Frame::NexusCreated(c) => c.status.is_ok(),
                    other => panic!("unexpected answer {:?}", other.kind()),
                };
                assert!(ok, "handshake step refused");
                rx.drain(..used);
                break;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "server closed during the handshake");
            rx.extend_from_slice(&chunk[..n]);
        }
    }
    stream
}

/// The head (header and exchange id) of a fore-channel request of `body_len` bytes.
fn request_head(body_len: usize) -> Vec<u8> {
    let body = vec![0u8; body_len];
    let frame = Frame::Request(Request {
        channel: Channel::Fore,
        slot: 0,
        sequence: 1,
        request_id: 1,
        exchange: ECHO.0,
        order: None,
        body: &body,
    });
    frame.split(false).unwrap().unwrap().head().to_vec()
}

/// Whether the server closed `stream` (EOF or reset) within `within`; a GoAway may come
/// first.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut sink = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    false
}

fn echo_server(budget: usize, frame_timeout: Duration) -> hawser_runtime::Server {
    let echo = Service::new("echo").handler(ECHO, "echo", |_ctx, body| Ok(body));
    ServerBuilder::new()
        .service(echo)
        .max_request_size(24 << 20)
        .receive_budget(budget)
        .frame_timeout(frame_timeout)
        .listen("127.0.0.1:0")
        .unwrap()
}

/// 24 connections each announce a 16 MiB request and send 15 MiB of it (384 MiB asked
/// for, never completed) against a 64 MiB budget: the server's memory grows by about the
/// budget, not by what was sent, and a well-behaved client is still answered.
#[test]
fn held_partial_frames_stay_within_the_receive_budget() {
    const BUDGET: usize = 64 << 20;
    const FRAME: usize = 16 << 20;
    const SENT: usize = 15 << 20;
    let server = echo_server(BUDGET, Duration::from_secs(60));
    let addr = server.local_addr();
    let head = request_head(FRAME);
    let body = std::sync::Arc::new(vec![0x5a_u8; SENT]);
    let baseline = resident_bytes();
    let holders: Vec<_> = (0..24)
        .map(|i| {
            let (head, body) = (head.clone(), std::sync::Arc::clone(&body));
            std::thread::spawn(move || {
                let mut stream = bound_connection(addr, &format!("holder-{i}"), 24 << 20);
                stream
                    .set_write_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                stream.write_all(&head).unwrap();
                let mut sent = 0;
                for chunk in body.chunks(1 << 20) {
                    match stream.write(chunk) {
                        Ok(n) => sent += n,
                        Err(_) => break,
                    }
                }
                (stream, sent)
            })
        })
        .collect();
    let holders: Vec<(TcpStream, usize)> = holders.into_iter().map(|h| h.join().unwrap()).collect();
    // The server read what its budget allowed (the rest waits in socket buffers).
    std::thread::sleep(Duration::from_millis(500));
    let grown = resident_bytes().saturating_sub(baseline);
    // The clients share one body: what grew is the server's budget plus its
    // per-connection buffers.
    assert!(
        grown < (BUDGET + (48 << 20)) as u64,
        "the process grew by {} MiB holding 24 partial 16 MiB frames under a 64 MiB budget",
        grown >> 20
    );
    let total_sent: usize = holders.iter().map(|(_, n)| n).sum();
    assert!(
        total_sent > BUDGET,
        "the probe did not push past the budget"
    );
    // A small request needs no budget: a client is served while the budget is full.
    let client = Client::connect(addr, ClientOptions::default()).unwrap();
    let answer = client
        .call(ECHO, Bytes::from_static(b"still here"))
        .unwrap();
    assert_eq!(&answer[..], b"still here");
    // The holders go away: the budget comes back and a large request is served.
    drop(holders);
    let large = Bytes::from(vec![7u8; 3 << 20]);
    let client = Client::connect(
        addr,
        ClientOptions {
            max_request_size: 24 << 20,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    assert_eq!(client.call(ECHO, large.clone()).unwrap(), large);
}

/// A connection that sends a frame's start and then nothing more is closed once the
/// frame timeout passes (heartbeats alone do not keep it), while a patient large
/// request on another connection completes.
#[test]
fn a_trickled_frame_is_closed_after_the_frame_timeout() {
    let server = echo_server(64 << 20, Duration::from_secs(1));
    let addr = server.local_addr();
    let mut stalled = bound_connection(addr, "stalled", 24 << 20);
    stalled.write_all(&request_head(1 << 20)).unwrap();
    stalled.write_all(&[0u8; 1000]).unwrap();
    let started = Instant::now();
    assert!(
        closed_by_server(&mut stalled, Duration::from_secs(5)),
        "a stalled frame kept its connection open"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800),
        "closed after {took:?}, before the frame timeout"
    );
}
