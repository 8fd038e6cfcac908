//! What the loopback tests share: a server with DMP, clients, raw direct connections.

#![allow(dead_code, unreachable_pub, reason = "each test file uses a part")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hawser_dmp::{DmpConfig, DmpService, Wiring};
use hawser_runtime::{Client, ClientOptions, Server, ServerBuilder};

pub fn serve(config: DmpConfig) -> Server {
    serve_with(ServerBuilder::new(), config)
}

pub fn serve_with(builder: ServerBuilder, config: DmpConfig) -> Server {
    let dmp = DmpService::new(config);
    builder
        .service(dmp.service())
        .listen("127.0.0.1:0")
        .expect("listen on loopback")
}

pub fn client(server: &Server) -> Client {
    Client::connect(
        server.local_addr(),
        ClientOptions {
            connections: 1,
            connect_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        },
    )
    .expect("connect")
}

/// A sink `s` and a feed `f` bound with `#`, declared by `client`.
pub fn wire_s_to_f(w: &Wiring<'_>) {
    w.declare_sink("s", false).unwrap();
    w.declare_feed("f", false, hawser_dmp::FlowPolicy::Block, 0, 0)
        .unwrap();
    w.bind("f", "s", "#").unwrap();
}

/// A raw direct connection.
pub fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one response short string (length octet, then the text).
pub fn read_response(s: &mut TcpStream) -> String {
    let mut len = [0u8; 1];
    s.read_exact(&mut len).unwrap();
    let mut text = vec![0u8; usize::from(len[0])];
    s.read_exact(&mut text).unwrap();
    String::from_utf8(text).unwrap()
}

/// Sends the DMP header and `lease`; returns the two responses.
pub fn dialog(s: &mut TcpStream, lease: &[u8]) -> (String, String) {
    s.write_all(b"AMQP\x0a\x01\x00\x01").unwrap();
    let mut cmd = vec![lease.len() as u8];
    cmd.extend_from_slice(lease);
    s.write_all(&cmd).unwrap();
    let greeting = read_response(s);
    if !greeting.starts_with("200") {
        return (greeting, String::new());
    }
    (greeting, read_response(s))
}

/// Reads until the server closes (or 10 s pass); returns what came.
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    all
}

/// A message as a publisher writes it: `key` and `body`, no properties.
pub fn message(exchange: &str, key: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    hawser_wire::dmp::Message::Envelope(hawser_wire::dmp::Envelope {
        exchange: hawser_wire::dmp::ShortStr::text(exchange).unwrap(),
        routing_key: hawser_wire::dmp::ShortStr::text(key).unwrap(),
        body,
        ..Default::default()
    })
    .encode(&mut out)
    .unwrap();
    out
}
