//! Brings the real link emulator up (needs root, `ip`, `/dev/net/tun`) and checks the
//! round-trip time a TCP connect sees through it, then that teardown removes the
//! namespaces. Run with `cargo test -p hawser-perf -- --ignored`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hawser_perf::linkem::netns::existing_namespaces;
use hawser_perf::sys;

// Names of its own so the test never touches a linkem someone else is running.
const NS_A: &str = "hawser-test-a";
const NS_B: &str = "hawser-test-b";
const ADDR_B: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const RTT: Duration = Duration::from_millis(20);

/// Stops linkem with SIGTERM (as a user would) if the test fails midway.
struct LinkemProcess(Option<Child>);

impl LinkemProcess {
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("linkem running");
        sys::terminate(child.id()).expect("SIGTERM to linkem");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("waiting for linkem") {
                return status;
            }
            assert!(Instant::now() < deadline, "linkem did not exit on SIGTERM");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LinkemProcess {
    fn drop(&mut self) {
        if self.0.is_some() {
            self.stop();
        }
    }
}

fn connect_times(count: usize) -> Vec<Duration> {
    let (port_sender, port_receiver) = mpsc::channel();
    let listener = thread::spawn(move || {
        sys::enter_netns(NS_B).expect("entering side b");
        let listener = TcpListener::bind((ADDR_B, 0)).expect("listening in side b");
        port_sender
            .send(listener.local_addr().expect("local addr").port())
            .expect("sending port");
        for _ in 0..count {
            let _ = listener.accept().expect("accepting");
        }
    });
    let port = port_receiver.recv().expect("listener port");
    let connector = thread::spawn(move || {
        sys::enter_netns(NS_A).expect("entering side a");
        (0..count)
            .map(|_| {
                let started = Instant::now();
                let stream = TcpStream::connect_timeout(
                    &SocketAddr::from((ADDR_B, port)),
                    Duration::from_secs(5),
                )
                .expect("connecting through linkem");
                let elapsed = started.elapsed();
                drop(stream);
                elapsed
            })
            .collect::<Vec<_>>()
    });
    let times = connector.join().expect("connector thread");
    listener.join().expect("listener thread");
    times
}

#[test]
#[ignore = "needs root, iproute2 and /dev/net/tun; creates network namespaces"]
fn connect_through_linkem_sees_the_configured_rtt_and_teardown_removes_namespaces() {
    let ready_file = PathBuf::from(format!(
        "/tmp/hawser-linkem-test-{}.ready",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&ready_file);
    let child = Command::new(env!("CARGO_BIN_EXE_hawser-perf"))
        .args(["linkem", "--ns-a", NS_A, "--ns-b", NS_B])
        .args(["--addr-a", "198.18.1.1/30", "--addr-b", "198.18.1.2/30"])
        .args(["--rtt", "20ms", "--rate", "1gbit", "--report-interval", "0"])
        .arg("--ready-file")
        .arg(&ready_file)
        .spawn()
        .expect("starting hawser-perf linkem");
    let mut linkem = LinkemProcess(Some(child));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready_file.exists() {
        assert!(Instant::now() < deadline, "linkem did not come up");
        thread::sleep(Duration::from_millis(20));
    }

    let mut times = connect_times(7);
    times.sort();
    let median = times[times.len() / 2];
    eprintln!("connect times through a {RTT:?} link: {times:?}");
    // A connect takes one round trip (SYN, SYN-ACK); never less than the emulated RTT,
    // and a busy 2-core machine may add a few milliseconds of scheduling.
    assert!(
        times[0] >= RTT - Duration::from_micros(500),
        "faster than the link: {times:?}"
    );
    assert!(
        median <= RTT + Duration::from_millis(8),
        "median {median:?} too far above {RTT:?}"
    );

    let status = linkem.stop();
    assert!(status.success(), "linkem exited with {status}");
    let left = existing_namespaces().expect("ip netns list");
    assert!(
        !left.iter().any(|n| n == NS_A || n == NS_B),
        "namespaces left behind: {left:?}"
    );
    assert!(!ready_file.exists(), "ready file left behind");
}
