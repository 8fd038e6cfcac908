//! Spreading accepted connections over shards: `SO_REUSEPORT` per shard (the kernel hashes
//! each connection to a shard's listener) against one acceptor handing fds over the SPSC
//! mesh. Measures connection rate (connect, 1-byte echo, close) and balance.
//!
//! Run: `cargo bench -p hawser-benches --bench accept_spread`
//! Knobs: `HAWSER_ACCEPT_CONNS` (per run, default 4000), `HAWSER_ACCEPT_ROUNDS` (default 5).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use hawser_shards::demo::Echo;
use hawser_shards::{Shards, ShardsConfig};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn churn(addr: SocketAddr, conns: u64) -> f64 {
    let threads = 4;
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..conns / threads {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(b"x").unwrap();
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    conns as f64 / start.elapsed().as_secs_f64()
}

/// Connections per second, and the largest share one shard got.
fn run(handoff: bool, conns: u64) -> (f64, f64) {
    let shards = Shards::start(ShardsConfig {
        shards: 2,
        buffers: 64,
        buffer_size: 16 * 1024,
        ..Default::default()
    })
    .unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let addr = if handoff {
        shards.listen_tcp_handoff(0, any, |_| Echo::new()).unwrap()
    } else {
        shards.listen_tcp_reuseport(any, |_| Echo::new()).unwrap()
    };
    let rate = churn(addr, conns);
    let (a, b) = (shards.stats(0).accepts, shards.stats(1).accepts);
    shards.shutdown();
    (rate, a.max(b) as f64 / (a + b).max(1) as f64)
}

/// How often 4 connections land 2/2 on 2 reuseport shards (over `trials` fresh listeners).
fn reuseport_balance_of_four(trials: u32) -> f64 {
    let mut even = 0;
    for _ in 0..trials {
        let shards = Shards::start(ShardsConfig {
            shards: 2,
            buffers: 16,
            buffer_size: 4096,
            ..Default::default()
        })
        .unwrap();
        let addr = shards
            .listen_tcp_reuseport("127.0.0.1:0".parse().unwrap(), |_| Echo::new())
            .unwrap();
        let conns: Vec<_> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        while shards.stats(0).accepts + shards.stats(1).accepts < 4 {
            std::thread::yield_now();
        }
        if shards.stats(0).accepts == 2 {
            even += 1;
        }
        drop(conns);
        shards.shutdown();
    }
    f64::from(even) / f64::from(trials)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let conns = env_or("HAWSER_ACCEPT_CONNS", 4000);
    let rounds = env_or("HAWSER_ACCEPT_ROUNDS", 5);
    let (mut rp, mut ho, mut rp_share, mut ho_share) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (r, s) = run(false, conns);
        rp.push(r);
        rp_share.push(s);
        let (r, s) = run(true, conns);
        ho.push(r);
        ho_share.push(s);
    }
    let (rp, ho) = (median(&mut rp), median(&mut ho));
    println!(
        "accept spreading, 2 shards, {conns} connections per run (connect, 1-byte echo, close), {rounds} rounds"
    );
    println!(
        "  reuseport: {rp:>8.0} conn/s, busiest shard took {:.0}%",
        median(&mut rp_share) * 100.0
    );
    println!(
        "  handoff:   {ho:>8.0} conn/s, busiest shard took {:.0}%",
        median(&mut ho_share) * 100.0
    );
    println!("  handoff / reuseport = {:.2}x", ho / rp);
    println!(
        "  4 connections split 2/2 by reuseport in {:.0}% of 40 fresh listeners",
        reuseport_balance_of_four(40) * 100.0
    );
}
