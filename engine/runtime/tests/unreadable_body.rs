//! A request body the kernel cannot read (a mapped file range whose file shrank under it)
//! neither hangs the call nor costs the connection: the shard turns the vanished pages
//! into zeros and sends again, so the handler sees zeros (which a message's own digest
//! refuses) and later requests are answered.

use std::os::fd::AsFd;
use std::time::Duration;

use bytes::Bytes;
use hawser_runtime::{Client, ClientOptions, ExchangeId, ServerBuilder, Service};
use hawser_shards::MappedRange;

const ECHO: ExchangeId = ExchangeId(1);

#[test]
fn an_unreadable_body_goes_out_as_zeros_and_the_connection_lives_on() {
    let svc = Service::new("echo").blocking_handler(ECHO, "echo", |_, body| Ok(body));
    let server = ServerBuilder::new()
        .service(svc)
        .listen("127.0.0.1:0")
        .unwrap();
    let options = ClientOptions {
        connections: 2,
        digest: false,
        connect_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    let client = Client::connect(server.local_addr(), options).unwrap();
    let path = std::env::temp_dir().join(format!("hawser-unreadable-{}", std::process::id()));
    std::fs::write(&path, vec![5u8; 4 << 20]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let range = MappedRange::map(file.as_fd(), 0, 4 << 20, 0).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let answer = client.call(ECHO, Bytes::from_owner(range)).unwrap();
    assert_eq!(answer.len(), 4 << 20);
    assert!(
        answer.iter().all(|&b| b == 0),
        "vanished pages travel as zeros"
    );
    let again = client.call(ECHO, Bytes::from_static(b"after")).unwrap();
    assert_eq!(again, Bytes::from_static(b"after"));
    let stats = client.stats();
    let lost: u64 = stats.nexuses.iter().map(|(_, n)| n.connections_lost).sum();
    let retries: u64 = stats.nexuses.iter().map(|(_, n)| n.retries).sum();
    assert_eq!(
        (lost, retries),
        (0, 0),
        "no connection was lost, nothing retried"
    );
    std::fs::remove_file(&path).unwrap();
}
