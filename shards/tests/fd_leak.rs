//! Clean shutdown: after listeners, inbound and outbound connections, Unix sockets,
//! shared-memory links (finished, open, and mid-handshake) and a shutdown, the process has
//! exactly the file descriptors it had before.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use crossbeam::channel;
use hawser_shards::demo::{BulkSink, BulkSource, Echo};
use hawser_shards::{Shards, ShardsConfig, open_fd_count};

#[test]
fn shutdown_leaks_no_file_descriptors() {
    let before = open_fd_count();
    let shards = Shards::start(ShardsConfig {
        shards: 2,
        buffers: 32,
        buffer_size: 16 * 1024,
        ..Default::default()
    })
    .unwrap();
    let addr = shards
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_| Echo::new())
        .unwrap();
    let unix = std::env::temp_dir().join(format!("hawser-fdleak-{}", std::process::id()));
    let _ = std::fs::remove_file(&unix);
    shards.listen_unix(0, &unix, |_| Echo::new()).unwrap();
    let (tx, rx) = channel::unbounded();
    let sink_addr = shards
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_| {
            BulkSink::new(false, Some(tx.clone()))
        })
        .unwrap();
    for i in 0..4 {
        shards
            .connect_tcp(
                i % 2,
                sink_addr,
                BulkSource::new(Bytes::from(vec![7u8; 100_000]), 1_000_000),
            )
            .unwrap();
    }
    for _ in 0..4 {
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    // UDP sockets on both shards (one with GRO) are closed by shutdown too.
    for shard in 0..2 {
        shards
            .call_on(shard, move |ctx| {
                let opts = hawser_shards::UdpOptions {
                    gro: shard == 1,
                    recv_buffer: None,
                    send_buffer: None,
                };
                ctx.bind_udp("127.0.0.1:0".parse().unwrap(), opts).unwrap()
            })
            .unwrap();
    }
    // Clients still connected at shutdown must be closed by it too.
    let mut open_clients = Vec::new();
    for _ in 0..8 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        open_clients.push(s);
    }
    let mut u = std::os::unix::net::UnixStream::connect(&unix).unwrap();
    u.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    u.read_exact(&mut b).unwrap();
    // Shared memory: links that finish, links still open at shutdown (both ends on the
    // shards, across shards), and a client stuck in its handshake.
    let shm = std::env::temp_dir().join(format!("hawser-fdleak-shm-{}", std::process::id()));
    let _ = std::fs::remove_file(&shm);
    let (shm_tx, shm_rx) = channel::unbounded();
    shards
        .listen_shm(1, &shm, move |_| BulkSink::new(false, Some(shm_tx.clone())))
        .unwrap();
    for i in 0..3 {
        shards
            .connect_shm(
                i % 2,
                &shm,
                BulkSource::new(Bytes::from(vec![3u8; 50_000]), 500_000),
            )
            .unwrap();
    }
    for _ in 0..3 {
        rx_report(&shm_rx);
    }
    let shm_echo = std::env::temp_dir().join(format!("hawser-fdleak-shm2-{}", std::process::id()));
    let _ = std::fs::remove_file(&shm_echo);
    shards.listen_shm(0, &shm_echo, |_| Echo::new()).unwrap();
    for i in 0..4 {
        shards.connect_shm(i % 2, &shm_echo, Echo::new()).unwrap();
    }
    let silent = std::os::unix::net::UnixStream::connect(&shm_echo).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while shards.stats(0).shm_connections + shards.stats(1).shm_connections < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "shm links did not open"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    shards.shutdown();
    drop(open_clients);
    drop(u);
    drop(silent);
    let _ = std::fs::remove_file(&unix);
    let _ = std::fs::remove_file(&shm);
    let _ = std::fs::remove_file(&shm_echo);
    assert_eq!(open_fd_count(), before, "file descriptors leaked");
}

fn rx_report(rx: &channel::Receiver<hawser_shards::demo::SinkReport>) {
    let report = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(report.bytes, 500_000);
}
