//! Loopback bulk throughput, all variants in one run, alternating, as medians and ratios:
//!
//! - `shards`: hawser shards, 2 shards, 4 connections (each shard opens 2), `BulkSource`
//!   (one shared 1 MiB body, zero-copy) into `BulkSink`;
//! - `plain`: blocking std sockets, one sender and one receiver thread, 1 MiB writes (the
//!   plain-socket ceiling of ARCHITECTURE.md);
//! - `tokio-uring` and `glommio`: 2 threads/executors, 4 connections, 1 MiB writes;
//! - `iperf3 -P 4` when `iperf3` is installed;
//! - scaling: shards with xxh3 over every received byte, 1 shard vs 2 shards.
//!
//! Run: `cargo bench -p hawser-benches --bench loopback_bulk`
//! Knobs: `HAWSER_BULK_BYTES` (per run, default 2 GiB), `HAWSER_BULK_ROUNDS` (default 5),
//! `HAWSER_BULK_ONLY` (comma-separated variant names), `HAWSER_BULK_BUF_KIB` and
//! `HAWSER_BULK_BUFFERS` (the shards' registered buffer size and count per shard),
//! `HAWSER_BULK_NOPIN` (do not pin shards to cores), `HAWSER_BULK_DEFER` (DEFER_TASKRUN).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_shards::ShardsConfig;
use hawser_shards::demo::{LoopbackBulk, loopback_bulk};

const MIB: usize = 1 << 20;
const CONNS: usize = 4;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn body() -> Bytes {
    Bytes::from((0..MIB).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

/// Bytes per second moved by `shards_n` shards over 4 connections
/// ([`hawser_shards::demo::loopback_bulk`]). Placement is explicit: each shard listens on its
/// own port and opens 2 of the connections, to the next shard (`local == false`: every
/// byte crosses cores, as the kernel's loopback copy goes from the sender's core to the
/// receiver's) or to itself (`local == true`: both ends of a connection on one shard, the
/// shared-nothing ideal, which on a real network is what each host sees).
fn run_shards(shards_n: usize, total: u64, digest: bool, local: bool) -> f64 {
    let config = ShardsConfig {
        shards: shards_n,
        buffers: env_or("HAWSER_BULK_BUFFERS", 256) as u16,
        buffer_size: env_or("HAWSER_BULK_BUF_KIB", 64) as usize * 1024,
        defer_taskrun: std::env::var_os("HAWSER_BULK_DEFER").is_some(),
        pin: std::env::var_os("HAWSER_BULK_NOPIN").is_none(),
        ..ShardsConfig::default()
    };
    let run = LoopbackBulk {
        connections: CONNS,
        bytes: total,
        digest,
        local,
        answers: false,
    };
    loopback_bulk(config, &run).expect("shards bulk run")
}

fn run_plain(total: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; MIB];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        got
    });
    let body = body();
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    let mut left = total;
    while left > 0 {
        let n = left.min(MIB as u64) as usize;
        s.write_all(&body[..n]).unwrap();
        left -= n as u64;
    }
    drop(s);
    let got = receiver.join().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(got, total);
    got as f64 / elapsed.as_secs_f64()
}

/// Two threads, each accepting 2 connections from and opening 2 to the other.
fn run_tokio_uring(total: u64) -> f64 {
    let per_conn = total / CONNS as u64;
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let start = Instant::now();
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, std_listener)| {
            let peer = addrs[1 - i];
            std::thread::spawn(move || {
                tokio_uring::start(async move {
                    let listener = tokio_uring::net::TcpListener::from_std(std_listener);
                    let mut tasks = Vec::new();
                    for _ in 0..2 {
                        tasks.push(tokio_uring::spawn(async move {
                            let stream = tokio_uring::net::TcpStream::connect(peer).await.unwrap();
                            let mut buf = body().to_vec();
                            let mut left = per_conn;
                            while left > 0 {
                                let n = left.min(MIB as u64) as usize;
                                buf.truncate(n);
                                let (res, b) = stream.write_all(buf).await;
                                res.unwrap();
                                buf = b;
                                left -= n as u64;
                            }
                            0u64
                        }));
                    }
                    for _ in 0..2 {
                        let (stream, _) = listener.accept().await.unwrap();
                        tasks.push(tokio_uring::spawn(async move {
                            let mut buf = vec![0u8; 64 * 1024];
                            let mut got = 0u64;
                            loop {
                                let (res, b) = stream.read(buf).await;
                                buf = b;
                                let n = res.unwrap();
                                if n == 0 {
                                    break;
                                }
                                got += n as u64;
                            }
                            got
                        }));
                    }
                    let mut got = 0;
                    for t in tasks {
                        got += t.await.unwrap();
                    }
                    got
                })
            })
        })
        .collect();
    let got: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let elapsed = start.elapsed();
    assert_eq!(got, per_conn * CONNS as u64);
    got as f64 / elapsed.as_secs_f64()
}

fn run_glommio(total: u64) -> f64 {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use glommio::{LocalExecutorBuilder, Placement};
    let per_conn = total / CONNS as u64;
    let (port_tx, port_rx) = crossbeam::channel::unbounded::<(usize, SocketAddr)>();
    let (peer_txs, peer_rxs): (Vec<_>, Vec<_>) = (0..2)
        .map(|_| crossbeam::channel::bounded::<SocketAddr>(1))
        .unzip();
    let start = Instant::now();
    let mut handles = Vec::new();
    for (i, peer_rx) in peer_rxs.into_iter().enumerate() {
        let port_tx = port_tx.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(i))
            .spawn(move || async move {
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                port_tx.send((i, listener.local_addr().unwrap())).unwrap();
                let peer = peer_rx.recv().unwrap();
                let mut tasks = Vec::new();
                for _ in 0..2 {
                    tasks.push(glommio::spawn_local(async move {
                        let mut stream = glommio::net::TcpStream::connect(peer).await.unwrap();
                        let buf = body();
                        let mut left = per_conn;
                        while left > 0 {
                            let n = left.min(MIB as u64) as usize;
                            stream.write_all(&buf[..n]).await.unwrap();
                            left -= n as u64;
                        }
                        stream.close().await.unwrap();
                        0u64
                    }));
                }
                for _ in 0..2 {
                    let mut stream = listener.accept().await.unwrap();
                    tasks.push(glommio::spawn_local(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        let mut got = 0u64;
                        loop {
                            let n = stream.read(&mut buf).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            got += n as u64;
                        }
                        got
                    }));
                }
                let mut got = 0;
                for t in tasks {
                    got += t.await;
                }
                got
            })
            .expect("glommio executor");
        handles.push(handle);
    }
    let mut addrs = [None, None];
    for _ in 0..2 {
        let (i, a) = port_rx.recv().unwrap();
        addrs[i] = Some(a);
    }
    for (i, tx) in peer_txs.iter().enumerate() {
        tx.send(addrs[1 - i].unwrap()).unwrap();
    }
    let got: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = start.elapsed();
    assert_eq!(got, per_conn * CONNS as u64);
    got as f64 / elapsed.as_secs_f64()
}

/// `iperf3 -P 4` over loopback for 3 s; `None` when iperf3 is missing or fails.
fn run_iperf3() -> Option<f64> {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").ok()?;
        l.local_addr().ok()?.port()
    };
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("iperf3")
        .args([
            "-c",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            "4",
            "-t",
            "3",
            "-J",
        ])
        .output()
        .ok();
    let _ = server.wait();
    let json: serde_json::Value = serde_json::from_slice(&out?.stdout).ok()?;
    let bps = json["end"]["sum_received"]["bits_per_second"].as_f64()?;
    Some(bps / 8.0)
}

/// CPU seconds (user + system) used by this process so far, all threads included.
fn process_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid initial value.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: only run
    // the full measurement when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        println!("loopback_bulk: run with `cargo bench -p hawser-benches --bench loopback_bulk`");
        return;
    }
    let total = env_or("HAWSER_BULK_BYTES", 2 << 30);
    let rounds = env_or("HAWSER_BULK_ROUNDS", 5);
    let only = std::env::var("HAWSER_BULK_ONLY").ok();
    let enabled = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|v| v == name))
    };
    let iperf_available = Command::new("iperf3").arg("--version").output().is_ok();

    type Variant = (&'static str, Box<dyn Fn() -> Option<f64>>);
    let variants: Vec<Variant> = vec![
        (
            "shards",
            Box::new(move || Some(run_shards(2, total, false, false))),
        ),
        (
            "shards-local",
            Box::new(move || Some(run_shards(2, total, false, true))),
        ),
        ("plain", Box::new(move || Some(run_plain(total)))),
        (
            "tokio-uring",
            Box::new(move || Some(run_tokio_uring(total))),
        ),
        ("glommio", Box::new(move || Some(run_glommio(total)))),
        (
            "iperf3",
            Box::new(move || if iperf_available { run_iperf3() } else { None }),
        ),
        (
            "shards-xxh3-1",
            Box::new(move || Some(run_shards(1, total / 2, true, true))),
        ),
        (
            "shards-xxh3-2",
            Box::new(move || Some(run_shards(2, total / 2, true, false))),
        ),
        (
            "shards-xxh3-2-local",
            Box::new(move || Some(run_shards(2, total / 2, true, true))),
        ),
    ];
    let variants: Vec<Variant> = variants.into_iter().filter(|(n, _)| enabled(n)).collect();
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut cores_used: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    println!(
        "loopback bulk: {} MiB per run, {rounds} rounds, variants alternate",
        total >> 20
    );
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for (i, (name, run)) in variants.iter().enumerate() {
            let (cpu0, wall0) = (process_cpu_seconds(), Instant::now());
            if let Some(bps) = run() {
                let cores = (process_cpu_seconds() - cpu0) / wall0.elapsed().as_secs_f64();
                results[i].push(bps);
                cores_used[i].push(cores);
                line += &format!(" {name}={:.2}GB/s", bps / 1e9);
            }
        }
        println!("{line}");
    }
    let mut med = std::collections::HashMap::new();
    println!("\nmedians:");
    for (i, (name, _)) in variants.iter().enumerate() {
        let m = median(&mut results[i]);
        let cores = median(&mut cores_used[i]);
        println!(
            "  {name:<20} {:>7.2} GB/s  ({:>5.1} Gbit/s)  cores busy in this process: {cores:.2}",
            m / 1e9,
            m * 8.0 / 1e9
        );
        med.insert(*name, m);
    }
    let ratio = |a: &str, b: &str| match (med.get(a), med.get(b)) {
        (Some(x), Some(y)) if y.is_finite() && *y > 0.0 && x.is_finite() => Some(x / y),
        _ => None,
    };
    println!("\nratios (targets from issue 3):");
    for (a, b, target) in [
        ("shards", "plain", Some(1.0)),
        ("shards", "iperf3", Some(1.2)),
        ("shards", "tokio-uring", None),
        ("shards", "glommio", None),
        ("shards-local", "plain", None),
        ("shards-local", "iperf3", None),
        ("shards-xxh3-2", "shards-xxh3-1", Some(1.6)),
        ("shards-xxh3-2-local", "shards-xxh3-1", Some(1.6)),
    ] {
        if let Some(r) = ratio(a, b) {
            let verdict = match target {
                Some(t) if r >= t => format!("target >= {t:.1}: met"),
                Some(t) => format!("target >= {t:.1}: NOT met"),
                None => String::new(),
            };
            println!("  {a} / {b} = {r:.2}x  {verdict}");
        }
    }
}
