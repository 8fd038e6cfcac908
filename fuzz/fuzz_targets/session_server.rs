//! Drives a `session::Server` as a hostile network would: connections are accepted, fed
//! frames and bytes in chunks, corrupted, lost and reopened, virtual time jumps (timers
//! fire), the application answers requests and starts backchannel calls. The server must
//! never panic, and after every step:
//!
//! - what it sends on a connection decodes as whole DSP frames (`FrameDecoder`), the first
//!   being its Hello, a GoAway or a heartbeat, nothing after a GoAway;
//! - every fore-channel request reaches the application once per (nexus, slot, sequence
//!   id), every backchannel call completes once, every connection closes once;
//! - memory stays bounded: reply caches, waiting ordered requests, connection buffers,
//!   and the receive budget within its limit;
//! - a connection the budget wakes gets its receive buffer.
//!
//! At the end every request is answered, every connection lost, and time passes the grace
//! period: no nexus, connection or budget reservation may be left.
//!
//! # Input
//!
//! A sequence of operations, one selector byte each followed by its operands (missing
//! bytes read as zero). Frames are built with `hawser_wire::dsp` (valid header checksum,
//! digest as asked) and queued on a connection; `Deliver` hands queued bytes to the
//! server in chunks of the input's choosing, so frames arrive split anywhere. Connections
//! are read either by copy (`handle_input`) or through the server's lent buffers under the
//! receive budget (`recv_buffer` / `handle_received`), as the io_uring driver does. A
//! SCRAM-SHA-256 login is run by a real `ClientEndpoint` through the whole exchange (its
//! proof needs the password and the server's random nonce), so the fuzzer gets past
//! authentication with either mechanism. See [`Op`] for the operations;
//! `engine/replicate/tests/fuzz_seeds.rs` writes seeds in this format from real client traffic.

#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hawser_session::{
    CallOptions, ChannelAttributes, ClientConfig, ClientCredentials, ClientEndpoint, Event,
    ExchangeId, IncomingRequest, LinkId, NexusId, ReceiveBudget, RemoteException, Reply, RequestId,
    ServerConfig, ServerCredentials, ServerEndpoint, ThrottleConfig,
};
use hawser_wire::dsp::{
    self, Capabilities, Compression, EncodeOptions, Frame, FrameDecoder, FrameEncoder, GoAwayCode,
    NexusFeatures, Status,
};
use libfuzzer_sys::fuzz_target;

/// The seed `ServerEndpoint::new` gets: nexus ids are then the same on every run, so recorded
/// seeds that bind a second connection name the nexus the first one created.
pub const SERVER_SEED: u64 = 7;
/// Identities with a password; any other identity may log in anonymously.
const PASSWORDS: [(&str, &[u8]); 2] = [("alice", b"alice-secret"), ("bob", b"bob-secret")];
/// The PBKDF2 iteration count of their SCRAM entries (RFC 7677's minimum, the cheapest).
const ITERATIONS: u32 = 4096;
const IDENTITIES: [&str; 4] = ["alice", "bob", "mallory", ""];
/// The receive budget: two of the largest requests fit, a third waits.
const BUDGET: usize = 768 << 10;
/// Largest request body the server accepts; bodies up to `MAX_BODY` are sent, so larger
/// ones are refused too.
const MAX_REQUEST: u32 = 320 << 10;
const MAX_BODY: usize = 384 << 10;
const FORE_SLOTS: u32 = 4;
const MAX_CACHED: u32 = 64 << 10;
const GRACE: Duration = Duration::from_secs(30);
/// Connections accepted per input: enough for trunks, held creates and rebinding.
const MAX_ACCEPTS: usize = 12;
/// Requests the application holds unanswered; beyond it the oldest is answered.
const MAX_PENDING: usize = 64;
/// The server's frames are decoded with this limit: its responses are bounded by the
/// negotiated sizes, never more than this.
const DECODE_LIMIT: u32 = 16 << 20;

#[path = "session_server/input.rs"]
mod input;
use input::{Input, OPS, Op};

/// One accepted connection, as the fuzzer's client side sees it.
struct Conn {
    id: LinkId,
    /// Read through `recv_buffer` / `handle_received` (else `handle_input`).
    lend: bool,
    /// Bytes queued for the server, not delivered yet.
    queued: Vec<u8>,
    /// What the server sent and the decoder has not consumed (a partial frame).
    received: Vec<u8>,
    decoder: FrameDecoder,
    saw_hello: bool,
    saw_go_away: bool,
    /// `ConnectionClosed` was reported; the server may still send its last words once.
    closed: bool,
    /// Gone from the server (lost, or closed and drained).
    gone: bool,
    /// Next sequence id per fore-channel slot.
    seq: [u32; FORE_SLOTS as usize + 2],
}

struct Harness {
    server: ServerEndpoint,
    budget: std::sync::Arc<ReceiveBudget>,
    now: Instant,
    conns: Vec<Conn>,
    nexuses: Vec<NexusId>,
    pending: Vec<IncomingRequest>,
    delivered: HashSet<(NexusId, u32, u32)>,
    /// Backchannel calls by (nexus, request id): ids count per nexus.
    calls: HashSet<(NexusId, RequestId)>,
    completed: HashSet<(NexusId, RequestId)>,
    next_request: u64,
    /// Scratch for encoding and transmit.
    buf: BytesMut,
    body: Vec<u8>,
}

/// The server's credentials, derived once: each SCRAM entry costs a PBKDF2.
fn credentials() -> ServerCredentials {
    static CREDENTIALS: std::sync::OnceLock<ServerCredentials> = std::sync::OnceLock::new();
    CREDENTIALS
        .get_or_init(|| {
            let passwords = PASSWORDS
                .iter()
                .map(|(identity, password)| (identity.to_string(), password.to_vec()));
            let mut credentials = ServerCredentials::passwords(passwords, ITERATIONS);
            credentials.allow_anonymous = true;
            credentials
        })
        .clone()
}

fn server_config(budget: &std::sync::Arc<ReceiveBudget>) -> ServerConfig {
    let mut config = ServerConfig::new(credentials());
    config.fore_limits = ChannelAttributes {
        slots: FORE_SLOTS,
        max_request_size: MAX_REQUEST,
        max_response_size: 256 << 10,
        max_cached_response_size: MAX_CACHED,
    };
    config.back_limits = ChannelAttributes {
        slots: 2,
        max_request_size: 64 << 10,
        max_response_size: 64 << 10,
        max_cached_response_size: 16 << 10,
    };
    config.grace_period = GRACE;
    config.throttle = Some(ThrottleConfig {
        bytes_per_second: 64 << 10,
        burst_bytes: 16 << 10,
    });
    // Exercises the page-aligned receive of large request bodies (>= 256 KiB).
    config.align_request_bodies_at = Some(21);
    config.receive_budget = Some(budget.clone());
    config
}

fn attrs(byte_a: u8, byte_b: u8) -> dsp::ChannelAttrs {
    const SIZES: [u32; 8] = [0, 1, 100, 4096, 64 << 10, 320 << 10, 4 << 20, u32::MAX];
    dsp::ChannelAttrs {
        slots: u32::from(byte_a & 0x0f),
        max_request_size: SIZES[usize::from(byte_a >> 4) & 7],
        max_response_size: SIZES[usize::from(byte_b) & 7],
        max_cached_response_size: SIZES[usize::from(byte_b >> 3) & 7],
    }
}

fn identity(byte: u8) -> &'static str {
    IDENTITIES[usize::from(byte) % IDENTITIES.len()]
}

impl Harness {
    fn new() -> Self {
        let budget = ReceiveBudget::new(BUDGET);
        Harness {
            server: ServerEndpoint::new(server_config(&budget), SERVER_SEED),
            budget,
            now: Instant::now(),
            conns: Vec::new(),
            nexuses: Vec::new(),
            pending: Vec::new(),
            delivered: HashSet::new(),
            calls: HashSet::new(),
            completed: HashSet::new(),
            next_request: 1,
            buf: BytesMut::new(),
            body: Vec::new(),
        }
    }

    /// The connection an operand byte names (any, live or not: the server must cope).
    fn conn(&self, byte: u8) -> Option<usize> {
        (!self.conns.is_empty()).then(|| usize::from(byte) % self.conns.len())
    }

    fn nexus(&self, byte: u8) -> NexusId {
        match self.nexuses.len() {
            // Unknown ids: zero and a guess.
            _ if byte >= 0xf0 => NexusId(u128::from(byte & 1) * 0x1234_5678),
            0 => NexusId(0),
            n => self.nexuses[usize::from(byte) % n],
        }
    }

    /// Encodes `frame` with the options of `encoding` and queues it on `conn`.
    fn queue(&mut self, conn: usize, frame: &Frame<'_>, encoding: u8) {
        let options = EncodeOptions {
            digest: encoding & 1 == 0,
            compression: if encoding & 2 != 0 {
                Compression::Lz4
            } else {
                Compression::Off
            },
        };
        let mut out = Vec::new();
        // An unencodable frame (a field out of range) is simply not sent.
        if FrameEncoder::new(options).encode(frame, &mut out).is_ok() {
            self.conns[conn].queued.extend_from_slice(&out);
        }
    }

    /// A body of `spec` bytes from the input, or for `spec` 0xf0 and up a large one.
    fn make_body(&mut self, spec: u8, input: &mut Input<'_>) -> usize {
        self.body.clear();
        if spec < 0xf0 {
            self.body.extend_from_slice(input.bytes(usize::from(spec)));
        } else {
            // Large ones are few (they cost the most time): up to past the limit, where
            // frames need the receive budget, are received page-aligned or refused.
            let len = usize::from(spec & 0x0f) * (MAX_BODY / 15);
            // Compressible, so lz4 frames carry large bodies small.
            self.body.resize(len, spec);
        }
        self.body.len()
    }

    fn step(&mut self, op: Op, input: &mut Input<'_>) {
        match op {
            Op::Accept => {
                let (fill, flags) = (input.u8(), input.u8());
                if self.conns.len() < MAX_ACCEPTS {
                    let peer = (flags & 2 != 0).then(|| [10, 0, 0, flags >> 2].into());
                    let id = self.server.accept_from(self.now, [fill; 16], peer);
                    self.conns.push(Conn {
                        id,
                        lend: flags & 1 != 0,
                        queued: Vec::new(),
                        received: Vec::new(),
                        decoder: FrameDecoder::new(DECODE_LIMIT),
                        saw_hello: false,
                        saw_go_away: false,
                        closed: false,
                        gone: false,
                        seq: [1; FORE_SLOTS as usize + 2],
                    });
                }
            }
            Op::Hello => {
                let (c, caps, versions, fill, enc) =
                    (input.u8(), input.u8(), input.u8(), input.u8(), input.u8());
                let Some(c) = self.conn(c) else { return };
                // Mostly the one version; sometimes anything.
                let (min_version, max_version) = if versions < 0xe0 {
                    (1, 1 + (versions & 1))
                } else {
                    (versions & 3, versions >> 2 & 3)
                };
                let frame = Frame::Hello(dsp::Hello {
                    min_version,
                    max_version,
                    capabilities: Capabilities(u32::from(caps)),
                    nonce: [fill; 16],
                });
                self.queue(c, &frame, enc);
            }
            Op::AuthAnonymous => {
                let (c, id, enc) = (input.u8(), input.u8(), input.u8());
                let Some(c) = self.conn(c) else { return };
                let name = identity(id);
                // A SCRAM client-first the server answers with its challenge; the retired
                // HMAC-SHA256, now unknown; PLAIN, refused without TLS.
                let scram_first = format!("n,,n={name},r=fuzz-nonce");
                let (mechanism, initial) = match id >> 6 {
                    0 => ("ANONYMOUS", name.as_bytes()),
                    1 => ("SCRAM-SHA-256", scram_first.as_bytes()),
                    2 => ("HMAC-SHA256", name.as_bytes()),
                    _ => ("PLAIN", name.as_bytes()),
                };
                let frame = Frame::Auth(dsp::Auth {
                    mechanism,
                    initial_response: (id & 0x20 == 0).then_some(initial),
                });
                self.queue(c, &frame, enc);
            }
            Op::AuthScram => self.auth_scram(input),
            Op::NexusCreate => {
                let (c, id) = (input.u8(), input.u8());
                let (fore, back) = (attrs(input.u8(), input.u8()), attrs(input.u8(), input.u8()));
                let (features, enc) = (input.u8(), input.u8());
                let Some(c) = self.conn(c) else { return };
                let frame = Frame::NexusCreate(dsp::NexusCreate {
                    fore,
                    back,
                    grace_period_ms: u32::from(features >> 4) * 1000,
                    features: NexusFeatures(u32::from(features & 0x0f)),
                    client_identity: identity(id),
                });
                self.queue(c, &frame, enc);
            }
            Op::Nexus => {
                let (c, which, n, id, enc) =
                    (input.u8(), input.u8(), input.u8(), input.u8(), input.u8());
                let Some(c) = self.conn(c) else { return };
                let nexus = dsp::NexusId::from_u128(self.nexus(n).0);
                let frame = match which % 3 {
                    0 => Frame::BindConnection(dsp::BindConnection { nexus }),
                    1 => Frame::NexusRecover(dsp::NexusRecover {
                        nexus,
                        client_identity: identity(id),
                    }),
                    _ => Frame::NexusDestroy(dsp::NexusDestroy { nexus }),
                };
                self.queue(c, &frame, enc);
            }
            Op::Request => {
                let (c, flags, slot, seq_mode, exchange, spec) = (
                    input.u8(),
                    input.u8(),
                    input.u8(),
                    input.u8(),
                    input.u8(),
                    input.u8(),
                );
                self.make_body(spec, input);
                let enc = input.u8();
                let Some(c) = self.conn(c) else { return };
                // Slots past the negotiated count are refused: a few of them too.
                let slot = u32::from(slot) % (FORE_SLOTS + 2);
                let counter = &mut self.conns[c].seq[slot as usize];
                let sequence = match seq_mode % 8 {
                    // The next one, as an honest client.
                    0..=4 => {
                        *counter += 1;
                        *counter - 1
                    }
                    // A retry of the previous one.
                    5 => counter.saturating_sub(1),
                    6 => 0,
                    _ => u32::from(seq_mode),
                };
                let request_id = self.next_request;
                self.next_request += 1;
                let body = std::mem::take(&mut self.body);
                let frame = Frame::Request(dsp::Request {
                    channel: if flags & 1 == 0 {
                        dsp::Channel::Fore
                    } else {
                        dsp::Channel::Back
                    },
                    slot,
                    sequence,
                    // Mostly fresh ids; sometimes one already used.
                    request_id: if flags & 2 == 0 {
                        request_id
                    } else {
                        u64::from(flags >> 4)
                    },
                    exchange: u32::from(exchange),
                    order: match flags >> 2 & 3 {
                        0 | 1 => None,
                        2 => Some(u64::from(flags >> 4)),
                        _ => Some(request_id),
                    },
                    body: &body,
                });
                self.queue(c, &frame, enc);
                self.body = body;
            }
            Op::Answer => {
                let (c, kind, slot, seq, request) =
                    (input.u8(), input.u8(), input.u8(), input.u8(), input.u8());
                let spec = input.u8();
                self.make_body(spec & 0x7f, input);
                let enc = input.u8();
                let Some(c) = self.conn(c) else { return };
                let channel = if kind & 0x10 == 0 {
                    dsp::Channel::Back
                } else {
                    dsp::Channel::Fore
                };
                let (slot, sequence) = (u32::from(slot % 4), u32::from(seq % 4));
                // Backchannel request ids count from 1 on the server.
                let request_id = u64::from(request % 8);
                let body = std::mem::take(&mut self.body);
                let frame = match kind % 3 {
                    0 => Frame::Response(dsp::Response {
                        channel,
                        slot,
                        sequence,
                        request_id,
                        body: &body,
                    }),
                    1 => Frame::ResponseError(dsp::ResponseError {
                        channel,
                        slot,
                        sequence,
                        request_id,
                        exception: &body,
                    }),
                    _ => Frame::Cancel(dsp::Cancel {
                        channel,
                        slot,
                        sequence,
                        request_id,
                    }),
                };
                self.queue(c, &frame, enc);
                self.body = body;
            }
            Op::Other => self.other(input),
            Op::Raw => {
                let (c, len) = (input.u8(), input.u16());
                let bytes = input.bytes(usize::from(len));
                let Some(c) = self.conn(c) else { return };
                self.conns[c].queued.extend_from_slice(bytes);
            }
            Op::Corrupt => {
                let (c, at, bit) = (input.u8(), input.u16(), input.u8());
                let Some(c) = self.conn(c) else { return };
                let queued = &mut self.conns[c].queued;
                if !queued.is_empty() {
                    let at = usize::from(at) % queued.len();
                    queued[at] ^= 1 << (bit % 8);
                }
            }
            Op::Deliver => {
                let (c, len) = (input.u8(), input.u16());
                let Some(c) = self.conn(c) else { return };
                let len = if len == 0 {
                    usize::MAX
                } else {
                    usize::from(len)
                };
                self.deliver(c, len);
            }
            Op::Advance => {
                let exponent = input.u8();
                self.advance(exponent);
            }
            Op::Respond => {
                let (which, kind, len) = (input.u8(), input.u8(), input.u8());
                if !self.pending.is_empty() {
                    let request = self
                        .pending
                        .swap_remove(usize::from(which) % self.pending.len());
                    self.respond(&request, kind, len);
                }
            }
            Op::Lost => {
                let c = input.u8();
                let Some(c) = self.conn(c) else { return };
                self.lose(c);
            }
            Op::Call => {
                let (n, len, flags) = (input.u8(), input.u8(), input.u8());
                let nexus = self.nexus(n);
                let mut options = CallOptions {
                    ordered: flags & 1 != 0,
                    uncompressed: flags & 2 != 0,
                    precompressed: false,
                };
                let mut body = Bytes::from(vec![len; usize::from(len) * 64]);
                // A body the caller compressed itself, as a replication job does.
                if flags & 4 != 0
                    && let Some(compressed) = hawser_wire::dsp::compress_body(&body)
                {
                    body = Bytes::from(compressed);
                    options.precompressed = true;
                }
                if let Ok(request) =
                    self.server
                        .call(self.now, nexus, ExchangeId(u32::from(flags)), body, options)
                {
                    assert!(
                        self.calls.insert((nexus, request)),
                        "request id {request:?} reused"
                    );
                    if flags & 4 != 0 {
                        self.server.cancel(self.now, nexus, request);
                    }
                }
            }
            Op::Credit => {
                let (n, slots) = (input.u8(), input.u8());
                let nexus = self.nexus(n);
                self.server.set_credit(nexus, u32::from(slots));
            }
        }
    }

    /// Every other frame kind: what a confused or malicious client might send.
    fn other(&mut self, input: &mut Input<'_>) {
        let (c, kind, a, b, enc) = (input.u8(), input.u8(), input.u8(), input.u8(), input.u8());
        let Some(c) = self.conn(c) else { return };
        let nexus = dsp::NexusId::from_u128(self.nexus(a).0);
        let text = identity(b);
        let data = [a, b, a, b];
        let frame = match kind % 12 {
            0 => Frame::Ping(dsp::Ping {
                token: u64::from(a),
            }),
            1 => Frame::Pong(dsp::Pong {
                token: u64::from(a),
            }),
            2 => Frame::GoAway(dsp::GoAway {
                code: GoAwayCode(u16::from(a)),
                reason: text,
            }),
            3 => Frame::Credit(dsp::Credit {
                channel: if b & 1 == 0 {
                    dsp::Channel::Fore
                } else {
                    dsp::Channel::Back
                },
                slots: u32::from(a),
            }),
            4 => Frame::AuthChallenge(dsp::AuthChallenge { data: &data }),
            5 => Frame::AuthResponse(dsp::AuthResponse { data: &data }),
            6 => Frame::AuthResult(dsp::AuthResult {
                status: Status(b),
                additional_data: &data,
                reason: text,
            }),
            7 => Frame::NexusCreated(dsp::NexusCreated {
                status: Status(b),
                nexus,
                fore: attrs(a, b),
                back: attrs(b, a),
                grace_period_ms: 0,
                features: NexusFeatures(0),
                reason: text,
            }),
            8 => Frame::BindAck(dsp::BindAck {
                status: Status(b),
                nexus,
                reason: text,
            }),
            9 => Frame::NexusRecovered(dsp::NexusRecovered {
                status: Status(b),
                nexus,
                reason: text,
            }),
            10 => Frame::NexusDestroyed(dsp::NexusDestroyed {
                status: Status(b),
                nexus,
                reason: text,
            }),
            _ => Frame::Hello(dsp::Hello {
                min_version: 1,
                max_version: 1,
                capabilities: Capabilities::KNOWN,
                nonce: [a; 16],
            }),
        };
        self.queue(c, &frame, enc);
    }

    /// A real client logs in with SCRAM-SHA-256 on connection `c`: its Hello, Auth
    /// (client-first) and AuthResponse (client-final, with the proof the fuzzer cannot
    /// make) go out, each after the server's answer to the one before came back to it.
    /// The client is then dropped before it sees the result; the fuzzer carries on.
    fn auth_scram(&mut self, input: &mut Input<'_>) {
        let (c, id, flags, fill) = (input.u8(), input.u8(), input.u8(), input.u8());
        let Some(c) = self.conn(c) else { return };
        let name = identity(id);
        let password = PASSWORDS
            .iter()
            .find(|(i, _)| *i == name)
            .map_or(&b"no-password"[..], |(_, p)| *p);
        let password = if flags & 1 != 0 {
            b"wrong".to_vec()
        } else {
            password.to_vec()
        };
        let mut config = ClientConfig::new(name, ClientCredentials::password(password));
        config.digest = flags & 2 != 0;
        config.compress = flags & 4 != 0;
        config.connections = 1;
        let mut client = ClientEndpoint::new(config, self.now);
        let cc = client.add_connection(self.now, [fill; 16]);
        let mut out = BytesMut::new();
        // Hello, Auth, AuthResponse: three rounds (fewer if the server refuses or the
        // throttle holds the attempt).
        for _ in 0..3 {
            out.clear();
            client.poll_transmit(self.now, cc, &mut out);
            if out.is_empty() {
                break;
            }
            self.conns[c].queued.extend_from_slice(&out);
            self.deliver(c, usize::MAX);
            if self.conns[c].gone {
                break;
            }
            self.transmit(c);
            client.handle_input(self.now, cc, &self.buf);
        }
    }

    /// Hands up to `len` queued bytes of `c` to the server.
    fn deliver(&mut self, c: usize, len: usize) {
        let conn = &mut self.conns[c];
        if conn.gone {
            // The fuzzer's side knows the socket is closed; the server must ignore it.
            self.server.handle_input(self.now, conn.id, &conn.queued);
            conn.queued.clear();
            return;
        }
        let mut left = len.min(conn.queued.len());
        if !conn.lend {
            self.server
                .handle_input(self.now, conn.id, &conn.queued[..left]);
            conn.queued.drain(..left);
            return;
        }
        let mut at = 0;
        while left > 0 {
            // `None`: closed, or waiting for the receive budget (a driver then waits for
            // `next_budget_wakeup`).
            let Some(mut rx) = self.server.recv_buffer(self.now, conn.id) else {
                break;
            };
            let room = rx.capacity() - rx.len();
            assert!(room > 0, "a lent receive buffer without room");
            let n = room.min(left);
            rx.extend_from_slice(&conn.queued[at..at + n]);
            self.server.handle_received(self.now, conn.id, rx, n);
            at += n;
            left -= n;
        }
        conn.queued.drain(..at);
    }

    /// Drains what the server sends on `c` into `self.buf` and checks it.
    fn transmit(&mut self, c: usize) {
        self.buf.clear();
        let conn = &mut self.conns[c];
        let n = self.server.poll_transmit(self.now, conn.id, &mut self.buf);
        assert_eq!(n, self.buf.len(), "poll_transmit counts what it adds");
        if n > 0 {
            assert!(!conn.gone, "bytes for a connection after it was gone");
        }
        conn.received.extend_from_slice(&self.buf);
        let mut at = 0;
        while at < conn.received.len() {
            let (frame, used) = match conn.decoder.decode(&conn.received[at..]) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(e) => panic!("the server sent an undecodable frame: {e:?}"),
            };
            assert!(!conn.saw_go_away, "a frame after GoAway: {frame:?}");
            // Heartbeats run from the start; anything else waits for the server's Hello.
            assert!(
                conn.saw_hello
                    || matches!(
                        frame,
                        Frame::Hello(_) | Frame::GoAway(_) | Frame::Ping(_) | Frame::Pong(_)
                    ),
                "{frame:?} before Hello"
            );
            conn.saw_hello |= matches!(frame, Frame::Hello(_));
            if matches!(frame, Frame::Request(ref r) if r.channel == dsp::Channel::Fore) {
                panic!("the server sent a fore-channel request");
            }
            conn.saw_go_away |= matches!(frame, Frame::GoAway(_));
            at += used;
        }
        conn.received.drain(..at);
        // poll_transmit hands over whole frames only.
        assert!(
            conn.received.is_empty(),
            "a partial frame of {} bytes",
            conn.received.len()
        );
        if conn.closed {
            // After ConnectionClosed the last bytes come out once and it is forgotten.
            conn.gone = true;
        }
    }

    fn respond(&mut self, request: &IncomingRequest, kind: u8, len: u8) {
        let reply = match kind % 4 {
            0 | 1 => {
                // Sometimes beyond the cache or the negotiated response size.
                let len = if kind >= 0xf0 {
                    usize::from(len) << 11
                } else {
                    usize::from(len)
                };
                Reply::Ok(Bytes::from(vec![kind; len]))
            }
            2 => Reply::Err(RemoteException::new("fuzz.Error", "refused")),
            _ => Reply::Cancelled,
        };
        self.server.respond(self.now, request, reply);
    }

    fn lose(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        self.server.connection_lost(self.now, conn.id);
        conn.gone = true;
        conn.closed = true;
        conn.queued.clear();
    }

    fn advance(&mut self, exponent: u8) {
        let step = if exponent == 0xff {
            // To the next deadline exactly.
            self.server
                .poll_timeout()
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(self.now))
        } else {
            Duration::from_millis(1 << (exponent % 18))
        };
        self.now += step;
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
            assert!(
                self.server.poll_timeout().is_none_or(|t| t > self.now),
                "timers due after handle_timeout: {:#?}",
                self.server
            );
        }
    }

    /// Drains events, output and budget wakeups; checks the invariants.
    fn settle(&mut self) {
        while let Some(event) = self.server.poll_event() {
            if trace() {
                eprintln!("event: {event:?}");
            }
            match event {
                Event::Request { request, body } => {
                    assert!(
                        self.delivered
                            .insert((request.nexus, request.slot, request.seq)),
                        "request delivered twice: {request:?}"
                    );
                    assert!(body.len() <= MAX_REQUEST as usize, "{} bytes", body.len());
                    self.pending.push(request);
                    if self.pending.len() > MAX_PENDING {
                        let oldest = self.pending.remove(0);
                        self.respond(&oldest, 0, 1);
                    }
                }
                Event::NexusEstablished { nexus } => {
                    if !self.nexuses.contains(&nexus) && self.nexuses.len() < 16 {
                        self.nexuses.push(nexus);
                    }
                }
                Event::ConnectionClosed { conn, .. } => {
                    let c = self
                        .conns
                        .iter_mut()
                        .find(|c| c.id == conn)
                        .expect("a connection the server accepted");
                    assert!(!c.closed || c.gone, "{conn:?} closed twice");
                    c.closed = true;
                }
                Event::Completed { nexus, request, .. } => {
                    let call = (nexus, request);
                    assert!(self.calls.contains(&call), "{call:?} never called");
                    assert!(self.completed.insert(call), "{call:?} completed twice");
                }
                Event::WantConnection => panic!("a server never asks for connections"),
                Event::NexusHeld { .. } => panic!("a server never holds its own creates"),
                Event::ConnectionBound { .. }
                | Event::CancelRequested { .. }
                | Event::NexusLost { .. }
                | Event::NexusDestroyed { .. } => {}
            }
        }
        while let Some(conn) = self.server.next_budget_wakeup() {
            // The driver asks again at once: the budget must have room now.
            let rx = self
                .server
                .recv_buffer(self.now, conn)
                .expect("a woken connection gets its receive buffer");
            self.server.handle_received(self.now, conn, rx, 0);
        }
        for c in 0..self.conns.len() {
            if !self.conns[c].gone {
                self.transmit(c);
            }
        }
        assert!(
            self.budget.used() <= BUDGET,
            "receive budget overrun: {}",
            self.budget.used()
        );
        let open = self.conns.iter().filter(|c| !c.gone).count();
        assert!(self.server.connections() <= open.max(self.conns.len()));
        for &nexus in &self.nexuses {
            if let Some(f) = self.server.footprint(nexus) {
                assert!(
                    f.cached_bytes <= (FORE_SLOTS * MAX_CACHED) as usize,
                    "{f:?}"
                );
                assert!(f.waiting_ordered <= FORE_SLOTS as usize, "{f:?}");
                assert!(f.in_flight <= 2, "{f:?}");
                // Receive buffers hold at most a frame in progress and what came with it;
                // transmit buffers were just drained.
                assert!(f.link_buffers <= 1 << 20, "{f:?}");
            }
        }
    }

    /// Answers everything, loses every connection, lets the grace period pass: nothing
    /// may remain.
    fn finish(&mut self) {
        for c in 0..self.conns.len() {
            self.deliver(c, usize::MAX);
        }
        self.settle();
        while let Some(request) = self.pending.pop() {
            self.server
                .respond(self.now, &request, Reply::Ok(Bytes::new()));
            self.settle();
        }
        for c in 0..self.conns.len() {
            self.lose(c);
        }
        self.settle();
        self.now += GRACE + Duration::from_secs(1);
        self.server.handle_timeout(self.now);
        self.settle();
        assert_eq!(self.server.connections(), 0, "connections left");
        assert_eq!(self.server.nexuses().count(), 0, "nexuses left");
        assert_eq!(self.budget.used(), 0, "receive budget still reserved");
        assert_eq!(self.server.poll_timeout(), None, "timers left");
    }
}

/// `HAWSER_FUZZ_TRACE=1` prints operations and events (to read a crash or a seed).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("HAWSER_FUZZ_TRACE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut harness = Harness::new();
    while !input.0.is_empty() {
        let op = OPS[usize::from(input.u8()) % OPS.len()];
        if trace() {
            eprintln!("op: {op:?}");
        }
        harness.step(op, &mut input);
        if op.reaches_server() {
            harness.settle();
        }
    }
    harness.finish();
});
