//! `Pipeline::wait_any`: one thread waiting on the pipelines of clients of two servers
//! wakes for whichever answers first, and not at all when nothing is outstanding.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_runtime::{Client, ClientOptions, ExchangeId, Pipeline, ServerBuilder, Service};

const HELD: ExchangeId = ExchangeId(1);

/// A server whose handler answers once `release` is set.
fn held_server(release: Arc<AtomicBool>) -> hawser_runtime::Server {
    let svc = Service::new("held").blocking_handler(HELD, "held", move |_, body| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(body)
    });
    ServerBuilder::new()
        .service(svc)
        .listen("127.0.0.1:0")
        .unwrap()
}

fn client_of(server: &hawser_runtime::Server) -> Client {
    let options = ClientOptions {
        connections: 1,
        connect_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    Client::connect(server.local_addr(), options).unwrap()
}

#[test]
fn wait_any_wakes_for_the_pipeline_that_answers() {
    let (release_a, release_b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (server_a, server_b) = (
        held_server(release_a.clone()),
        held_server(release_b.clone()),
    );
    let (client_a, client_b) = (client_of(&server_a), client_of(&server_b));
    let (mut pipe_a, mut pipe_b) = (client_a.pipeline(), client_b.pipeline());

    assert_eq!(
        Pipeline::wait_any(&[&pipe_a, &pipe_b], Duration::from_secs(5)),
        None,
        "nothing outstanding: no wait"
    );
    pipe_a.submit(HELD, Bytes::from_static(b"a"));
    pipe_b.submit(HELD, Bytes::from_static(b"b"));
    assert_eq!(
        Pipeline::wait_any(&[&pipe_a, &pipe_b], Duration::from_millis(50)),
        None,
        "neither answered yet"
    );

    release_b.store(true, Ordering::SeqCst);
    let mut ready = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready.is_none() && Instant::now() < deadline {
        ready = Pipeline::wait_any(&[&pipe_a, &pipe_b], Duration::from_secs(10))
            .filter(|&i| i == 1)
            .and_then(|_| pipe_b.try_next_completion());
    }
    let (_, answer) = ready.expect("the second server's answer woke the wait");
    assert_eq!(answer.unwrap(), Bytes::from_static(b"b"));
    assert!(pipe_a.try_next_completion().is_none());

    release_a.store(true, Ordering::SeqCst);
    let mut ready = None;
    while ready.is_none() && Instant::now() < deadline {
        ready = Pipeline::wait_any(&[&pipe_a, &pipe_b], Duration::from_secs(10))
            .and_then(|i| (i == 0).then(|| pipe_a.try_next_completion()).flatten());
    }
    let (_, answer) = ready.expect("the first server's answer woke the wait");
    assert_eq!(answer.unwrap(), Bytes::from_static(b"a"));
}
