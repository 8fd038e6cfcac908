//! The replication task over the real DSP session state machines (client and server
//! wired back to back through memory, a trunk of several connections): each request is
//! the body of one exchange, manifests are ordered exchanges, blocks travel as 8 MiB
//! request bodies. This is the shape of the session binding, minus sockets.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use bytes::BytesMut;
use hawser_replicate::proto::BLOCK_HEADER_LEN;
use hawser_replicate::testing::{TempDir, assert_same_tree, build_tree, random_bytes};
use hawser_replicate::{
    Completion, RemoteError, Request, Source, SourceConfig, Target, Transport, TransportError, run,
};
use hawser_session::{
    CallError, CallOptions, ClientConfig, ClientCredentials, ClientEndpoint, Event, ExchangeId,
    LinkId, RemoteException, Reply, RequestId, ServerConfig, ServerCredentials, ServerEndpoint,
};

/// A [`Transport`] over a session client, with the server and its replication handler
/// (a [`Target`]) in the same thread.
struct SessionLoopback {
    client: ClientEndpoint,
    server: ServerEndpoint,
    target: Target,
    connections: Vec<(LinkId, LinkId)>,
    tokens: HashMap<RequestId, u64>,
    done: VecDeque<Completion>,
    buf: BytesMut,
    now: Instant,
    exchanges_served: u64,
}

impl SessionLoopback {
    fn new(target: Target, block_size: u32, connections: usize) -> Self {
        let now = Instant::now();
        // A block request is the block plus its header; leave room for it.
        let max_request = block_size + BLOCK_HEADER_LEN as u32 + 4096;
        let mut server_config = ServerConfig::new(ServerCredentials::anonymous());
        server_config.fore_limits.max_request_size = max_request;
        let mut config = ClientConfig::new("replicate-test", ClientCredentials::Anonymous);
        config.connections = connections;
        config.fore.max_request_size = max_request;
        SessionLoopback {
            client: ClientEndpoint::new(config, now),
            server: ServerEndpoint::new(server_config, 11),
            target,
            connections: Vec::new(),
            tokens: HashMap::new(),
            done: VecDeque::new(),
            buf: BytesMut::new(),
            now,
            exchanges_served: 0,
        }
    }

    /// One round of the driver loop: events, then bytes both ways on every connection.
    fn pump(&mut self) {
        let now = self.now;
        while let Some(event) = self.client.poll_event() {
            match event {
                Event::WantConnection => {
                    let c = self.client.add_connection(now, [1; 16]);
                    let s = self.server.accept(now, [2; 16]);
                    self.connections.push((c, s));
                }
                Event::Completed {
                    request, result, ..
                } => {
                    if let Some(token) = self.tokens.remove(&request) {
                        let result = result.map_err(|e| match e {
                            CallError::Remote(exception) => RemoteError {
                                type_name: exception.type_name,
                                message: exception.message,
                            },
                            other => RemoteError {
                                type_name: "hawser.session.CallError".into(),
                                message: other.to_string(),
                            },
                        });
                        self.done.push_back(Completion { token, result });
                    }
                }
                _ => {}
            }
        }
        while let Some(event) = self.server.poll_event() {
            if let Event::Request { request, body } = event {
                assert_eq!(
                    Some(request.exchange.0),
                    body.first().map(|&tag| 0x5245_5000 | u32::from(tag))
                );
                self.exchanges_served += 1;
                let reply = match self.target.handle(&body) {
                    Ok(response) => Reply::Ok(response),
                    Err(e) => Reply::Err(RemoteException::new(e.type_name(), e.to_string())),
                };
                self.server.respond(now, &request, reply);
            }
        }
        for &(c, s) in &self.connections {
            self.buf.clear();
            self.client.poll_transmit(now, c, &mut self.buf);
            self.server.handle_input(now, s, &self.buf);
            self.buf.clear();
            self.server.poll_transmit(now, s, &mut self.buf);
            self.client.handle_input(now, c, &self.buf);
        }
    }
}

impl Transport for SessionLoopback {
    fn send(&mut self, request: Request) -> Result<(), TransportError> {
        let id = self
            .client
            .call(
                self.now,
                ExchangeId(request.kind.exchange_id()),
                request.body,
                CallOptions {
                    ordered: request.ordered,
                    uncompressed: !request.compress,
                    precompressed: false,
                },
            )
            .map_err(|e| TransportError::Other(e.to_string()))?;
        self.tokens.insert(id, request.token);
        Ok(())
    }

    fn recv(&mut self) -> Result<Completion, TransportError> {
        for _ in 0..100_000 {
            if let Some(completion) = self.done.pop_front() {
                return Ok(completion);
            }
            if self.tokens.is_empty() {
                return Err(TransportError::Idle);
            }
            self.pump();
        }
        Err(TransportError::Other("no progress".into()))
    }
}

#[test]
fn a_tree_replicates_over_a_trunked_dsp_nexus() {
    let src = TempDir::new("session-src");
    let dst = TempDir::new("session-dst");
    let block = 256 * 1024;
    build_tree(src.path(), block as usize);
    let mut config = SourceConfig::default();
    config.options.block_size = block;
    // Manifest batches must fit the session's request size limit too.
    config.batch_bytes = block as usize;
    config.dest = "replica".into();
    let source = Source::new(
        config,
        &[PathBuf::from(format!("{}/", src.path().display()))],
    )
    .unwrap();
    let mut transport = SessionLoopback::new(Target::new(dst.path()).unwrap(), block, 4);
    let report = run(source, &mut transport).unwrap();
    assert_same_tree(src.path(), &dst.path().join("replica"));
    assert!(transport.connections.len() >= 2, "trunked");
    assert_eq!(report.target.unwrap().files_written, 307);
}

#[test]
fn default_8_mib_blocks_travel_as_single_exchanges() {
    let src = TempDir::new("session-src");
    let dst = TempDir::new("session-dst");
    std::fs::write(src.path().join("big"), random_bytes(77, (20 << 20) + 12345)).unwrap();
    let config = SourceConfig {
        dest: "d".into(),
        ..SourceConfig::default()
    };
    let block = config.options.block_size;
    assert_eq!(block, 8 << 20);
    let source = Source::new(
        config,
        &[PathBuf::from(format!("{}/", src.path().display()))],
    )
    .unwrap();
    let mut transport = SessionLoopback::new(Target::new(dst.path()).unwrap(), block, 2);
    let report = run(source, &mut transport).unwrap();
    assert_same_tree(src.path(), &dst.path().join("d"));
    assert_eq!(report.blocks_sent, 3);
    // Begin, one manifest batch, three blocks, one commit, finish.
    assert_eq!(transport.exchanges_served, 7);
}
