//! UDP through the ring: batched datagram sends, multishot recvmsg into provided buffers,
//! GSO (one send split by the kernel) and GRO (coalesced receive) behind options.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel;
use hawser_shards::{
    BufHandle, GatherPiece, ShardCtx, ShardHandler, Shards, ShardsConfig, UdpId, UdpOptions,
};

/// A received payload, its GRO segment size and its sender.
type Arrival = (Vec<u8>, Option<u16>, Option<SocketAddr>);

struct Collector(channel::Sender<Arrival>);

impl ShardHandler for Collector {
    fn on_datagram(
        &mut self,
        _ctx: &mut ShardCtx<'_>,
        _socket: UdpId,
        from: Option<SocketAddr>,
        payload: BufHandle,
        segment_size: Option<u16>,
    ) {
        let _ = self
            .0
            .send((payload.as_slice().to_vec(), segment_size, from));
    }
}

fn datagram(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 7 + k) as u8).collect()
}

/// Splits a (possibly GRO-coalesced) payload into its datagrams.
fn split(payload: &[u8], segment: Option<u16>) -> Vec<Vec<u8>> {
    match segment {
        Some(s) => payload.chunks(usize::from(s)).map(<[u8]>::to_vec).collect(),
        None => vec![payload.to_vec()],
    }
}

fn start() -> (Shards, channel::Receiver<Arrival>) {
    let (tx, rx) = channel::unbounded();
    let cfg = ShardsConfig {
        shards: 2,
        buffers: 512,
        buffer_size: 16 * 1024,
        handler: Some(Arc::new(move |_| {
            Box::new(Collector(tx.clone())) as Box<dyn ShardHandler>
        })),
        ..ShardsConfig::default()
    };
    (Shards::start(cfg).unwrap(), rx)
}

#[test]
fn batched_datagrams_arrive_intact() {
    let (shards, rx) = start();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (_, to) = shards
        .call_on(1, move |ctx| {
            let opts = UdpOptions {
                recv_buffer: Some(4 << 20),
                send_buffer: None,
                ..UdpOptions::default()
            };
            ctx.bind_udp(any, opts).unwrap()
        })
        .unwrap();
    let (from_id, from_addr) = shards
        .call_on(0, move |ctx| {
            ctx.bind_udp(any, UdpOptions::default()).unwrap()
        })
        .unwrap();
    shards
        .run_on(0, move |ctx| {
            for i in 0..100 {
                let mut buf = ctx.alloc_buffer().unwrap();
                let d = datagram(i, 1000 + i);
                buf.as_mut_full()[..d.len()].copy_from_slice(&d);
                buf.set_len(d.len());
                ctx.send_datagram(from_id, to, buf, None);
            }
        })
        .unwrap();
    let mut got: Vec<Vec<u8>> = (0..100)
        .map(|_| {
            let (payload, segment, from) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(segment, None);
            assert_eq!(from, Some(from_addr));
            payload
        })
        .collect();
    got.sort_by_key(Vec::len);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(*d, datagram(i, 1000 + i));
    }
    assert!(shards.stats(1).recv_ops >= 100);
    shards.shutdown();
}

#[test]
fn gso_send_and_gro_receive() {
    let (shards, rx) = start();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (_, to) = shards
        .call_on(1, move |ctx| {
            ctx.bind_udp(
                any,
                UdpOptions {
                    gro: true,
                    recv_buffer: Some(4 << 20),
                    send_buffer: None,
                },
            )
            .unwrap()
        })
        .unwrap();
    let (from_id, _) = shards
        .call_on(0, move |ctx| {
            ctx.bind_udp(any, UdpOptions::default()).unwrap()
        })
        .unwrap();
    let whole: Vec<u8> = (0..8 * 1200).map(|k| (k % 241) as u8).collect();
    let sent = whole.clone();
    shards
        .run_on(0, move |ctx| {
            let mut buf = ctx.alloc_buffer().unwrap();
            buf.as_mut_full()[..sent.len()].copy_from_slice(&sent);
            buf.set_len(sent.len());
            ctx.send_datagram(from_id, to, buf, Some(1200));
        })
        .unwrap();
    let mut datagrams = Vec::new();
    while datagrams.len() < 8 {
        let (payload, segment, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        datagrams.extend(split(&payload, segment));
    }
    assert_eq!(datagrams.len(), 8);
    assert!(datagrams.iter().all(|d| d.len() == 1200));
    assert_eq!(datagrams.concat(), whole);
    shards.shutdown();
}

#[test]
fn gathered_send_joins_head_and_body_pieces() {
    let (shards, rx) = start();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (_, to) = shards
        .call_on(1, move |ctx| {
            let opts = UdpOptions {
                gro: true,
                recv_buffer: Some(4 << 20),
                send_buffer: None,
            };
            ctx.bind_udp(any, opts).unwrap()
        })
        .unwrap();
    let (from_id, _) = shards
        .call_on(0, move |ctx| {
            ctx.bind_udp(any, UdpOptions::default()).unwrap()
        })
        .unwrap();
    let body = bytes::Bytes::from((0..4000).map(|k| (k % 239) as u8).collect::<Vec<u8>>());
    // Each datagram: a 2-byte header, 1000 bytes of the body, a 1-byte trailer.
    let expected: Vec<Vec<u8>> = (0..4usize)
        .map(|i| {
            let mut d = vec![0xa0 + i as u8, 0xb0 + i as u8];
            d.extend_from_slice(&body[i * 1000..(i + 1) * 1000]);
            d.push(0xc0 + i as u8);
            d
        })
        .collect();
    let shared = body.clone();
    let refused = shards
        .call_on(0, move |ctx| {
            let mut head = ctx.alloc_buffer().unwrap();
            let mut pieces = Vec::new();
            for i in 0..4usize {
                head.as_mut_full()[i * 3..i * 3 + 3].copy_from_slice(&[
                    0xa0 + i as u8,
                    0xb0 + i as u8,
                    0xc0 + i as u8,
                ]);
                pieces.push(GatherPiece::Head {
                    start: i * 3,
                    len: 2,
                });
                pieces.push(GatherPiece::Body {
                    start: i * 1000,
                    len: 1000,
                });
                pieces.push(GatherPiece::Head {
                    start: i * 3 + 2,
                    len: 1,
                });
            }
            head.set_len(12);
            let outside = ctx.alloc_buffer().unwrap();
            let refused = ctx.send_datagram_gathered(
                from_id,
                to,
                outside,
                shared.clone(),
                &[GatherPiece::Body {
                    start: 3500,
                    len: 501,
                }],
                None,
            );
            ctx.send_datagram_gathered(from_id, to, head, shared, &pieces, Some(1003))
                .unwrap();
            refused
        })
        .unwrap();
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput,
        "a piece past its buffer is refused"
    );
    let mut datagrams = Vec::new();
    while datagrams.len() < 4 {
        let (payload, segment, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        datagrams.extend(split(&payload, segment));
    }
    assert_eq!(datagrams, expected);
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "nothing else arrives"
    );
    shards.shutdown();
}
