//! Routed listeners: each accepted connection opens on the shard its first bytes name,
//! and reads those bytes there.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawser_shards::{
    Protocol, ProtocolFactory, Received, Route, Router, Shards, ShardsConfig, Transmit,
};

/// Answers, once the peer has finished sending, its shard's index and everything it read.
struct ShardTeller {
    shard: u8,
    read: Vec<u8>,
    eof: bool,
    answered: bool,
}

impl Protocol for ShardTeller {
    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        self.read.extend_from_slice(&input);
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
    }

    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        if self.eof && !self.answered {
            self.answered = true;
            out.write(&[self.shard]);
            out.write(&self.read);
        }
    }

    fn wants_close(&self) -> bool {
        self.answered
    }
}

/// `R` then a digit: that shard; anything else: any shard.
fn router() -> Router {
    Arc::new(|first: &[u8]| match first {
        [b'R'] => Route::NeedMore,
        [b'R', d, ..] if d.is_ascii_digit() => Route::To(usize::from(d - b'0')),
        _ => Route::Any,
    })
}

/// A routed listener of `ShardTeller`s on loopback, shard 0 accepting.
fn listen(shards: &Shards) -> std::net::SocketAddr {
    let factory: ProtocolFactory = Arc::new(|shard| {
        Box::new(ShardTeller {
            shard: shard as u8,
            read: Vec::new(),
            eof: false,
            answered: false,
        }) as Box<dyn Protocol>
    });
    shards
        .listen_tcp_routed(0, "127.0.0.1:0".parse().unwrap(), factory, router())
        .unwrap()
}

/// Sends `parts` (pausing between them), then reads the shard index and the echo.
fn ask(addr: std::net::SocketAddr, parts: &[&[u8]]) -> (u8, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
        s.write_all(part).unwrap();
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert!(!back.is_empty(), "no answer");
    (back[0], back[1..].to_vec())
}

#[test]
fn connections_open_on_the_shard_their_first_bytes_name() {
    let shards = Shards::start(ShardsConfig {
        shards: 3,
        ..ShardsConfig::default()
    })
    .unwrap();
    let addr = listen(&shards);
    for shard in 0..3u8 {
        let digit = b'0' + shard;
        let (on, read) = ask(addr, &[&[b'R', digit], b" and the rest"]);
        assert_eq!(on, shard);
        assert_eq!(
            read,
            [&[b'R', digit][..], b" and the rest"].concat(),
            "nothing is lost"
        );
        // Taken modulo the shard count.
        let (on, _) = ask(addr, &[&[b'R', digit + 3]]);
        assert_eq!(on, shard);
    }
    // A route sent in two pieces is waited for.
    let (on, read) = ask(addr, &[b"R", b"2 later"]);
    assert_eq!(on, 2);
    assert_eq!(read, b"R2 later");
    // No route: spread over the shards.
    let mut seen = [false; 3];
    for _ in 0..6 {
        let (on, read) = ask(addr, &[b"hello"]);
        assert_eq!(read, b"hello");
        seen[usize::from(on)] = true;
    }
    assert_eq!(seen, [true; 3], "round-robin reaches every shard");
    // A peer that closes at once still gets a protocol somewhere, which sees the end.
    let (_, read) = ask(addr, &[]);
    assert!(read.is_empty());
    let accepted: u64 = (0..3).map(|i| shards.stats(i).accepts).sum();
    assert_eq!(accepted, 14);
}

/// A peer that sends nothing is placed anyway once the wait is over, so silent
/// connections cannot pile up at the acceptor.
#[test]
fn a_silent_connection_is_placed_after_the_wait() {
    let shards = Shards::start(ShardsConfig {
        shards: 2,
        ..ShardsConfig::default()
    })
    .unwrap();
    let addr = listen(&shards);
    let silent = TcpStream::connect(addr).unwrap();
    let accepted = || (0..2).map(|i| shards.stats(i).accepts).sum::<u64>();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(accepted(), 0, "still waiting for its first bytes");
    let deadline = Instant::now() + Duration::from_secs(15);
    while accepted() == 0 {
        assert!(Instant::now() < deadline, "never placed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Placed with nothing read: it still answers once the peer finishes.
    let mut s = silent;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"late").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(&back[1..], b"late");
}
