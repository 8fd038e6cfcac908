//! Writes seed corpora of the fuzz targets (`fuzz/fuzz_targets/`). Run them when the
//! messages or the targets' input formats change:
//! `cargo test -p hawser-replicate --test fuzz_seeds -- --ignored`.
//!
//! - `replicate_message`: one real message of each kind, recorded from a replication of a
//!   small tree (with delete, so Delete and its list travel too), plus a Pull request.
//! - `session_server`: real clients' bytes, written as the target's operations: an
//!   ANONYMOUS client on a trunk of two connections and a SCRAM-SHA-256 one without digest,
//!   both with lz4 (which keeps the seeds small); requests small and large (100 KiB of
//!   text), ordered, a backchannel call, a destroy. SCRAM's nonces are random, so a
//!   recorded login would fail at the proof when replayed: the SCRAM client's handshake
//!   is written as the target's `AuthScram` (a live client logs in), its traffic after it
//!   as bytes.
//! - `sasl_messages`: whole exchanges of each mechanism (SCRAM-SHA-256, -PLUS, through a
//!   relay, with a wrong password, PLAIN over TLS, ANONYMOUS, EXTERNAL), messages made by
//!   the target's templates, lists of mechanisms and unknown mechanisms, as the target's
//!   operations.
//! - `replicate_target`: whole jobs (directories, files in blocks, an inline file, delete,
//!   finish) and jobs aimed at the canary through planted symlinks, as the target's
//!   operations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use hawser_replicate::proto::{Begin, JobOptions, PROTOCOL_VERSION, PullRequest};
use hawser_replicate::testing::{TempDir, build_tree};
use hawser_replicate::{
    Completion, MemoryTransport, Request, Source, SourceConfig, Target, Transport, TransportError,
    run,
};
use hawser_session::{
    CallOptions, ChannelAttributes, ClientConfig, ClientCredentials, ClientEndpoint, Event,
    ExchangeId, Reply, ServerConfig, ServerCredentials, ServerEndpoint,
};

/// Records the first body of each message tag that passes through.
struct Recording<T> {
    inner: T,
    seen: BTreeMap<u8, Vec<u8>>,
}

impl<T> Recording<T> {
    fn keep(&mut self, body: &[u8]) {
        if let Some(&tag) = body.first() {
            self.seen.entry(tag).or_insert_with(|| body.to_vec());
        }
    }
}

impl<T: Transport> Transport for Recording<T> {
    fn send(&mut self, request: Request) -> Result<(), TransportError> {
        self.keep(&request.body);
        self.inner.send(request)
    }

    fn recv(&mut self) -> Result<Completion, TransportError> {
        let completion = self.inner.recv()?;
        if let Ok(body) = &completion.result {
            self.keep(body);
        }
        Ok(completion)
    }
}

fn corpus() -> PathBuf {
    corpus_of("replicate_message")
}

/// The seed corpus of `target`: the workspace's `fuzz/`, or this crate's own `fuzz/` for
/// the replication target.
fn corpus_of(target: &str) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fuzz = if target == "replicate_target" {
        crate_dir.join("fuzz")
    } else {
        crate_dir.join("../../fuzz")
    };
    fuzz.join("corpus").join(target)
}

#[test]
#[ignore = "writes fuzz/corpus/replicate_message; run by hand when the messages change"]
fn write_replicate_fuzz_seeds() {
    let src = TempDir::new("seeds-src");
    let dst = TempDir::new("seeds-dst");
    build_tree(src.path(), 64 * 1024);
    // Something on the target the source does not have, for Delete.
    std::fs::create_dir_all(dst.path().join("replica")).unwrap();
    std::fs::write(dst.path().join("replica/stale.txt"), b"stale").unwrap();
    let mut config = SourceConfig::default();
    config.options.block_size = 64 * 1024;
    config.options.delete = true;
    config.dest = "replica".into();
    let source = Source::new(
        config,
        &[PathBuf::from(format!("{}/", src.path().display()))],
    )
    .unwrap();
    let mut transport = Recording {
        inner: MemoryTransport::new(Target::new(dst.path()).unwrap()),
        seen: BTreeMap::new(),
    };
    run(source, &mut transport).unwrap();

    let dir = corpus();
    std::fs::create_dir_all(&dir).unwrap();
    for (tag, body) in &transport.seen {
        std::fs::write(dir.join(format!("seed-tag-{tag:02x}")), body).unwrap();
    }
    let mut pull = Vec::new();
    PullRequest {
        begin: Begin {
            version: PROTOCOL_VERSION,
            job_id: 7,
            options: JobOptions::default(),
            dest: b"local",
        },
        window_blocks: 16,
        stall_timeout: Duration::from_secs(30),
        rate_bytes_per_sec: 0,
        sources: vec![b"data/", b"more"],
        excludes: vec![b"*.tmp"],
    }
    .encode(&mut pull)
    .unwrap();
    std::fs::write(dir.join("seed-pull-request"), pull).unwrap();
    assert!(
        transport.seen.len() >= 12,
        "tags seen: {:x?}",
        transport.seen.keys()
    );
}

/// The operations of the `session_server` target (see its module docs): their selector
/// bytes and operands.
#[derive(Default)]
struct SessionScript(Vec<u8>);

impl SessionScript {
    const ACCEPT: u8 = 0;
    const AUTH_SCRAM: u8 = 3;
    const RAW: u8 = 9;
    const DELIVER: u8 = 11;
    const ADVANCE: u8 = 12;
    const RESPOND: u8 = 13;
    const CALL: u8 = 15;

    fn accept(&mut self, fill: u8, lend: bool) {
        self.0
            .extend_from_slice(&[Self::ACCEPT, fill, u8::from(lend)]);
    }

    /// Queues `bytes` on connection `conn` and delivers them.
    fn send(&mut self, conn: u8, bytes: &[u8]) {
        for chunk in bytes.chunks(usize::from(u16::MAX)) {
            self.0.extend_from_slice(&[Self::RAW, conn]);
            self.0
                .extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
            self.0.extend_from_slice(chunk);
        }
        self.0.extend_from_slice(&[Self::DELIVER, conn, 0, 0]);
    }

    /// A live SCRAM-SHA-256 client logs in on `conn` as the target's first identity
    /// (alice) with her password, `digest` and `lz4` as asked.
    fn auth_scram(&mut self, conn: u8, digest: bool, lz4: bool) {
        let flags = u8::from(digest) << 1 | u8::from(lz4) << 2;
        self.0
            .extend_from_slice(&[Self::AUTH_SCRAM, conn, 0, flags, 0x30]);
    }

    fn respond(&mut self, len: u8) {
        self.0.extend_from_slice(&[Self::RESPOND, 0, 0, len]);
    }

    /// A backchannel call on the first nexus with a body of `len * 64` bytes of `len`.
    fn call(&mut self, len: u8, flags: u8) {
        self.0.extend_from_slice(&[Self::CALL, 0, len, flags]);
    }

    fn advance(&mut self, exponent: u8) {
        self.0.extend_from_slice(&[Self::ADVANCE, exponent]);
    }
}

/// What the `session_server` target configures (its `SERVER_SEED`, secrets and fore
/// channel limits), so that recorded clients behave there as here.
fn fuzz_server() -> ServerEndpoint {
    let mut credentials = ServerCredentials::passwords(
        [
            ("alice".to_string(), b"alice-secret".to_vec()),
            ("bob".to_string(), b"bob-secret".to_vec()),
        ],
        4096,
    );
    credentials.allow_anonymous = true;
    let mut config = ServerConfig::new(credentials);
    config.fore_limits = ChannelAttributes {
        slots: 4,
        max_request_size: 320 << 10,
        max_response_size: 256 << 10,
        max_cached_response_size: 64 << 10,
    };
    config.back_limits = ChannelAttributes {
        slots: 2,
        max_request_size: 64 << 10,
        max_response_size: 64 << 10,
        max_cached_response_size: 16 << 10,
    };
    ServerEndpoint::new(config, 7)
}

/// Runs `client` against a server configured as the fuzz target's until `calls` requests
/// completed (and `destroy` went through, if asked), recording what the client sends as
/// the target's operations. With `scram` (digest, lz4), the client logs in with SCRAM on
/// one connection: its three handshake messages are written as `AuthScram`.
fn record_session(
    mut client: ClientEndpoint,
    bodies: &[(Bytes, bool)],
    backchannel: bool,
    scram: Option<(bool, bool)>,
) -> Vec<u8> {
    let now = Instant::now();
    let mut server = fuzz_server();
    let mut script = SessionScript::default();
    let mut conns = Vec::new();
    let mut calls = Vec::new();
    for (i, (body, ordered)) in bodies.iter().enumerate() {
        let options = CallOptions {
            ordered: *ordered,
            uncompressed: false,
            precompressed: false,
        };
        let id = client
            .call(now, ExchangeId(0x10 + i as u32), body.clone(), options)
            .unwrap();
        calls.push(id);
    }
    let (mut completed, mut called_back, mut destroyed) = (0, !backchannel, false);
    // Client messages still to be replaced by `AuthScram`: Hello, Auth, AuthResponse.
    let mut handshake = if scram.is_some() { 3 } else { 0 };
    let mut buf = BytesMut::new();
    for _ in 0..1000 {
        while let Some(event) = client.poll_event() {
            match event {
                Event::WantConnection => {
                    let i = conns.len() as u8;
                    let c = client.add_connection(now, [0x20 + i; 16]);
                    let s = server.accept(now, [0x10 + i; 16]);
                    script.accept(0x10 + i, i % 2 == 1);
                    conns.push((c, s));
                }
                Event::Completed { request, .. } if calls.contains(&request) => completed += 1,
                Event::Request { request, body } => {
                    client.respond(now, &request, Reply::Ok(body));
                }
                Event::NexusDestroyed { .. } => destroyed = true,
                _ => {}
            }
        }
        while let Some(event) = server.poll_event() {
            match event {
                Event::Request { request, .. } => {
                    server.respond(now, &request, Reply::Ok(Bytes::from(vec![0; 9])));
                    script.respond(9);
                }
                Event::NexusEstablished { nexus } if !called_back => {
                    // The target's Call builds the same body and exchange.
                    let body = Bytes::from(vec![3; 3 * 64]);
                    server
                        .call(now, nexus, ExchangeId(0), body, CallOptions::default())
                        .unwrap();
                    script.call(3, 0);
                    called_back = true;
                }
                _ => {}
            }
        }
        for (i, &(c, s)) in conns.iter().enumerate() {
            buf.clear();
            client.poll_transmit(now, c, &mut buf);
            if !buf.is_empty() {
                match scram {
                    // One round trip each: the client waits for the server in between.
                    Some((digest, lz4)) if handshake > 0 => {
                        assert_eq!(i, 0, "a SCRAM recording runs one connection");
                        if handshake == 3 {
                            script.auth_scram(0, digest, lz4);
                        }
                        handshake -= 1;
                    }
                    _ => script.send(i as u8, &buf),
                }
                server.handle_input(now, s, &buf);
            }
            buf.clear();
            server.poll_transmit(now, s, &mut buf);
            client.handle_input(now, c, &buf);
        }
        if completed == calls.len() && !destroyed && client.nexus().is_some() {
            client.destroy(now);
        }
        if destroyed {
            // Past the heartbeat: the server pings, time moves on.
            script.advance(13);
            return script.0;
        }
    }
    panic!(
        "the recorded session did not finish: {completed} of {} calls",
        calls.len()
    );
}

#[test]
#[ignore = "writes fuzz/corpus/session_server; run by hand when the session or the target changes"]
fn write_session_fuzz_seeds() {
    let now = Instant::now();
    let text = Bytes::from(b"all work and no play ".repeat(5000));
    let bodies = [
        (Bytes::from_static(b"hello"), false),
        (text.clone(), false),
        (Bytes::from_static(b"first"), true),
        (Bytes::from_static(b"second"), true),
    ];

    let mut config = ClientConfig::new("mallory", ClientCredentials::Anonymous);
    config.connections = 2;
    config.fore.slots = 4;
    // lz4 keeps the seed small (the text shrinks ~50 times).
    config.compress = true;
    let anonymous = record_session(ClientEndpoint::new(config, now), &bodies, false, None);

    let mut config = ClientConfig::new(
        "alice",
        ClientCredentials::password(b"alice-secret".to_vec()),
    );
    config.connections = 1;
    config.fore.slots = 4;
    config.digest = false;
    config.compress = true;
    let scram = record_session(
        ClientEndpoint::new(config, now),
        &bodies[..2],
        true,
        Some((false, true)),
    );

    let dir = corpus_of("session_server");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("seed-anonymous-trunk"), anonymous).unwrap();
    std::fs::write(dir.join("seed-scram-lz4-backchannel"), scram).unwrap();
}

/// Seeds of the `sasl_messages` target, as its operations (see its module docs and
/// `sasl_messages/input.rs`): a setup byte (bit 0 anonymous allowed, bit 1 the server runs
/// TLS, bits 2-3 the client's TLS: 1 the same session, 2 a relay's; bits 4-5 the peer: 2
/// the local uid EXTERNAL maps), then `selector, operands...`: Auth 0 `mechanism,
/// source`, Response 1 `source`, Start 2 `list source, credentials (0 anonymous, 1
/// external, 2 password), identity (0 alice, 2 carol, 3 mallory), password (0 her own, 5
/// a near miss), insist (0xc0 PLAIN)`, Challenge 3 `source`, Result 4 `source`. Sources:
/// 0 the other real side's last message, 2 `length u16, bytes`, 3 made by the target.
const SASL_MESSAGES_SEEDS: [(&str, &[u8]); 11] = [
    (
        // Alice with her password in clear text: SCRAM-SHA-256, granted, server proven.
        "seed-scram",
        &[0x01, 2, 0, 2, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 4, 0],
    ),
    // The same over TLS: SCRAM-SHA-256-PLUS bound to the session.
    (
        "seed-scram-plus",
        &[0x06, 2, 0, 2, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 4, 0],
    ),
    // Through a relay (two TLS sessions): refused at the channel binding.
    (
        "seed-scram-relay",
        &[0x0a, 2, 0, 2, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0],
    ),
    // A near-miss password: refused at the proof.
    (
        "seed-wrong-password",
        &[0x01, 2, 0, 2, 0, 5, 0, 0, 0, 0, 3, 0, 1, 0],
    ),
    // PLAIN insisted on over TLS: granted at once.
    (
        "seed-plain-tls",
        &[0x06, 2, 0, 2, 0, 0, 0xc0, 0, 0, 0, 4, 0],
    ),
    // ANONYMOUS as mallory, allowed.
    ("seed-anonymous", &[0x01, 2, 0, 0, 3, 0, 0, 0, 0, 0, 4, 0]),
    // EXTERNAL as carol from the uid mapped to her.
    ("seed-external", &[0x21, 2, 0, 1, 2, 0, 0, 0, 0, 0, 4, 0]),
    (
        // To the server, made messages: a client-first for alice (nonce "abcd"), a
        // client-final echoing the server's nonce with a proof of bytes 0..32.
        "seed-made-client-messages",
        &[
            0x01, 0, 2, 3, 0, 0, 0, 0, 0, 4, b'a', b'b', b'c', b'd', 0, 1, 3, 0, 0, 0, 0, 0, 0, 0,
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
            25, 26, 27, 28, 29, 30, 31,
        ],
    ),
    (
        // To alice's client, made messages: a server-first echoing her nonce (salt 0..16,
        // 4096 iterations), a verifier of bytes 0..32 (refused).
        "seed-made-server-messages",
        &[
            0x01, 2, 0, 2, 0, 0, 0, 3, 3, 0, 0, 16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
            14, 15, 0, 0, 4, 3, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
            18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        ],
    ),
    (
        // Lists over TLS: every name, "PLAIN\tGSSAPI ", and EXTERNAL insisted on where
        // it is not offered.
        "seed-lists",
        &[
            0x07, 2, 3, 0xff, 0, 2, 0, 0, 0, 2, 2, 0, 13, b'P', b'L', b'A', b'I', b'N', b'\t',
            b'G', b'S', b'S', b'A', b'P', b'I', b' ', 2, 0, 0, 0, 2, 3, 0x12, 1, 2, 0, 0, 0xc1,
        ],
    ),
    (
        // Unknown mechanisms: the retired HMAC-SHA256 and LOGIN.
        "seed-unknown-mechanisms",
        &[
            0x01, 0, 7, 2, 0, 5, b'a', b'l', b'i', b'c', b'e', 0, 10, 5, b'L', b'O', b'G', b'I',
            b'N', 2, 0, 5, b'a', b'l', b'i', b'c', b'e',
        ],
    ),
];

#[test]
#[ignore = "writes fuzz/corpus/sasl_messages; run by hand when the target changes"]
fn write_sasl_fuzz_seeds() {
    let dir = corpus_of("sasl_messages");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, seed) in SASL_MESSAGES_SEEDS {
        std::fs::write(dir.join(name), seed).unwrap();
    }
}

/// Seeds of the `replicate_target` target, as its operations (see its module docs): a
/// setup byte, then `selector, operands...`. Paths are 3-byte picks from its dictionary
/// (`count | first << 2, second | third << 4, flags`): `a` = 0, `sub` = 2, `rel-link` = 7,
/// `file` = 11. A manifest entry is `file id, path (3), kind (0 file, 1 dir, 2 symlink),
/// flags (1 hash, 2 inline, 4 sparse), mode/mtime, fill, size index, pointer, extents`.
const REPLICATE_TARGET_SEEDS: [(&str, &[u8]); 3] = [
    (
        // A job: directory, a 5000-byte file in two blocks, an inline file, delete, finish.
        "seed-job",
        &[
            1, // buffered writes
            0, 4, 0, 0, 1, 0, // Begin: delete, compress off, 4 KiB blocks, "replica"
            1, 3, // Manifest of 3:
            1, 9, 0, 0, 1, 0, 8, 0, 0, 0, 0, // "sub", a directory
            2, 10, 11, 0, 0, 0, 8, 0, 5, 0, 0, // "sub/file", 5000 bytes
            3, 1, 0, 0, 0, 2, 8, 0x41, 2, 0, 0, // "a", 100 bytes inline
            2, 0, 0, 0, 0x61, // Block: file 2, piece 0
            2, 0, 1, 0, 0x62, // Block: file 2, piece 1
            3, 0, 0, 0, 1, // Commit file 2
            4, 16, // Delete
            5,  // Finish
        ],
    ),
    (
        // Into the planted symlink: a destination through it, a symlink to the canary,
        // files beneath both.
        "seed-through-links",
        &[
            0, // direct writes
            0, 0, 2, 0, 4, 0, // Begin: 4 KiB blocks, destination "rel-link"
            0, 0, 2, 0, 1, 0, // Begin again: destination "replica"
            1, 3, // Manifest of 3:
            1, 1, 0, 0, 2, 0, 8, 0, 0, 0, 0, // "a" -> "../canary"
            2, 2, 11, 0, 0, 2, 8, 0x42, 2, 0, 0, // "a/file", 100 bytes inline
            3, 30, 11, 0, 0, 0, 8, 0, 4, 0, 0, // "rel-link/file", 4096 bytes
            2, 0, 0, 0, 0x63, // Block
            3, 0, 0, 0, 0, // Commit
            4, 0, // Delete
            5, // Finish
        ],
    ),
    (
        // The destination is the canary by absolute path; a resumed job after a restart.
        "seed-abs-dest-resume",
        &[
            0,
            0,
            16,
            0,
            22,
            0, // Begin: resume, destination = the canary's absolute path
            0,
            16,
            1,
            0,
            1,
            0, // Begin: resume, "replica"
            1,
            1,
            2,
            10,
            11,
            0,
            0,
            4,
            8,
            0,
            7,
            0,
            0b0100_0101, // "sub/file" sparse
            2,
            0,
            0,
            0,
            0x64, // Block
            7,    // Restart
            0,
            16,
            1,
            0,
            1,
            0, // Begin: resume, "replica"
            1,
            1,
            2,
            10,
            11,
            0,
            0,
            4,
            8,
            0,
            7,
            0,
            0b0100_0101, // the same manifest
            2,
            0,
            1,
            0,
            0x64, // Block
            3,
            0,
            0,
            0,
            0, // Commit
            5, // Finish
        ],
    ),
];

#[test]
#[ignore = "writes engine/replicate/fuzz/corpus/replicate_target; run by hand when the target changes"]
fn write_replicate_target_fuzz_seeds() {
    let dir = corpus_of("replicate_target");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, seed) in REPLICATE_TARGET_SEEDS {
        std::fs::write(dir.join(name), seed).unwrap();
    }
}
