//! iceoryx2's side: publish-subscribe of `[u8]` slices between two threads of this
//! process, each with its own node (as two processes would have), over the `ipc` service
//! variant (POSIX shared memory, the inter-process setup).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;

use crate::{MIB, MSG, Res, WithContext, body};

/// How long a run may spin waiting for a message before it is called stuck.
const STUCK: Duration = Duration::from_secs(60);

/// Samples a bulk subscriber may hold queued: 4 x 1 MiB, the bytes hawser's default 4 MiB
/// ring holds in flight.
const QUEUE: usize = 4;

/// What the bulk subscriber does with each 1 MiB sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consume {
    /// Copies it into its own buffer (what hawser does with its ring: one copy out).
    CopyOut,
    /// Reads it where it lies (a sum over its words), no copy: iceoryx2's best case.
    InPlace,
}

type Ipc = ipc::Service;

/// A service name no other run (or leftover of a killed one) uses.
fn service_name(what: &str) -> Res<ServiceName> {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "hawser-iceoryx2-compare/{}/{what}/{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    ServiceName::new(&name).ctx("service name")
}

fn node() -> Res<Node<Ipc>> {
    NodeBuilder::new().create::<Ipc>().ctx("creating a node")
}

/// The `[u8]` publish-subscribe service `name`: one publisher, one subscriber, no history,
/// no overflow (a full subscriber queue holds the publisher back instead of dropping the
/// oldest sample).
fn open_pubsub(
    node: &Node<Ipc>,
    name: &ServiceName,
    queue: usize,
) -> Res<PubSubFactory<Ipc, [u8], ()>> {
    node.service_builder(name)
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(false)
        .history_size(0)
        .subscriber_max_buffer_size(queue)
        .subscriber_max_borrowed_samples(1)
        .max_publishers(1)
        .max_subscribers(1)
        .open_or_create()
        .ctx("opening a publish-subscribe service")
}

fn publisher(
    service: &PubSubFactory<Ipc, [u8], ()>,
    max_len: usize,
) -> Res<Publisher<Ipc, [u8], ()>> {
    service
        .publisher_builder()
        .initial_max_slice_len(max_len)
        .max_loaned_samples(1)
        // A full subscriber queue: wait (iceoryx2 yields, then sleeps) until there is room.
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .ctx("creating a publisher")
}

fn subscriber(
    service: &PubSubFactory<Ipc, [u8], ()>,
    queue: usize,
) -> Res<Subscriber<Ipc, [u8], ()>> {
    service
        .subscriber_builder()
        .buffer_size(queue)
        .create()
        .ctx("creating a subscriber")
}

/// Sends `payload` with the counter `seq` in its first 8 bytes: one copy into the loaned
/// sample (and the counter over it).
fn send(publisher: &Publisher<Ipc, [u8], ()>, payload: &[u8], seq: u64) -> Res<()> {
    let sample = publisher
        .loan_slice_uninit(payload.len())
        .ctx("loaning a sample")?;
    let mut sample = sample.write_from_slice(payload);
    sample.payload_mut()[..8].copy_from_slice(&seq.to_le_bytes());
    let delivered = sample.send().ctx("sending a sample")?;
    if delivered != 1 {
        return Err(format!(
            "sample {seq} reached {delivered} subscribers, not 1"
        ));
    }
    Ok(())
}

/// Spins on `receive` until a sample comes, then hands it to `f`.
fn receive_spinning<T>(
    subscriber: &Subscriber<Ipc, [u8], ()>,
    deadline: &mut Deadline,
    f: impl FnOnce(&[u8]) -> T,
) -> Res<T> {
    loop {
        if let Some(sample) = subscriber.receive().ctx("receiving")? {
            deadline.reset();
            return Ok(f(&sample));
        }
        deadline.check()?;
        std::hint::spin_loop();
    }
}

/// Errors out once no message came for [`STUCK`]. While spinning
/// ([`check`](Self::check)) it reads the clock only every 4096 polls, so a message that
/// comes soon costs no clock read; between blocking waits ([`check_now`](Self::check_now))
/// it reads it each time.
struct Deadline {
    polls: u64,
    since: Instant,
}

impl Deadline {
    fn new() -> Self {
        Deadline {
            polls: 0,
            since: Instant::now(),
        }
    }
    /// A message came.
    fn reset(&mut self) {
        self.polls = 0;
    }
    fn check(&mut self) -> Res<()> {
        self.polls += 1;
        if self.polls == 4096 {
            self.since = Instant::now();
        } else if self.polls.is_multiple_of(4096) {
            return self.expired();
        }
        Ok(())
    }
    fn check_now(&mut self) -> Res<()> {
        if self.polls == 0 {
            self.polls = 1;
            self.since = Instant::now();
            return Ok(());
        }
        self.expired()
    }
    fn expired(&self) -> Res<()> {
        if self.since.elapsed() > STUCK {
            return Err(format!("no message for {STUCK:?}"));
        }
        Ok(())
    }
}

fn counter(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// Bytes per second of `messages` 1 MiB samples from a publisher thread to a subscriber
/// thread, from the first loan to the last sample consumed. The subscriber checks that
/// every sample arrives, in order.
pub(crate) fn bulk(consume: Consume, messages: u64) -> Res<f64> {
    let name = service_name("bulk")?;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let sub_name = name;
    let sub = thread::spawn(move || -> Res<(Instant, u64)> {
        let node = node()?;
        let service = open_pubsub(&node, &sub_name, QUEUE)?;
        let subscriber = subscriber(&service, QUEUE)?;
        ready_tx.send(()).ctx("ready")?;
        let mut own = vec![0u8; MIB];
        let mut sum = 0u64;
        let mut deadline = Deadline::new();
        for seq in 0..messages {
            let got = receive_spinning(&subscriber, &mut deadline, |sample| {
                let got = counter(sample);
                match consume {
                    Consume::CopyOut => {
                        own.copy_from_slice(sample);
                        std::hint::black_box(&mut own);
                    }
                    Consume::InPlace => sum = sum.wrapping_add(word_sum(sample)),
                }
                (got, sample.len())
            })?;
            if got != (seq, MIB) {
                return Err(format!("expected sample {seq} of {MIB} bytes, got {got:?}"));
            }
        }
        let end = Instant::now();
        let _ = done_tx.send(());
        Ok((end, sum))
    });
    let publ = thread::spawn(move || -> Res<Instant> {
        ready_rx.recv().ctx("the subscriber never got ready")?;
        let node = node()?;
        let service = open_pubsub(&node, &name, QUEUE)?;
        let publisher = publisher(&service, MIB)?;
        let body = body(MIB);
        let start = Instant::now();
        for seq in 0..messages {
            send(&publisher, &body, seq)?;
        }
        // Keep the publisher (and its data segment) until the subscriber has read all.
        let _ = done_rx.recv_timeout(STUCK);
        Ok(start)
    });
    let start = publ.join().map_err(|_| "publisher panicked")??;
    let (end, sum) = sub.join().map_err(|_| "subscriber panicked")??;
    std::hint::black_box(sum);
    Ok((messages * MIB as u64) as f64 / (end - start).as_secs_f64())
}

/// A sum over the sample's 8-byte words: every byte read in place, vectorised.
fn word_sum(bytes: &[u8]) -> u64 {
    bytes
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
        .fold(0u64, u64::wrapping_add)
}

/// How a ping-pong side waits for the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Spins on `receive`.
    Spin,
    /// Blocks on an event [`Listener`] that the sender's [`Notifier`] rings after each
    /// sample (iceoryx2's event-driven path; its Linux implementation is a Unix datagram
    /// socket).
    Event,
}

/// One direction of a ping-pong: samples, and with [`Wait::Event`] a doorbell beside them.
#[derive(Clone, Copy)]
struct Names {
    data: ServiceName,
    event: ServiceName,
}

impl Names {
    fn new(what: &str) -> Res<Self> {
        Ok(Names {
            data: service_name(&format!("{what}-data"))?,
            event: service_name(&format!("{what}-event"))?,
        })
    }
}

/// The receiving end of one direction.
struct Rx {
    subscriber: Subscriber<Ipc, [u8], ()>,
    listener: Option<Listener<Ipc>>,
    deadline: Deadline,
}

impl Rx {
    fn open(node: &Node<Ipc>, names: &Names, wait: Wait) -> Res<Self> {
        let service = open_pubsub(node, &names.data, 1)?;
        let listener = match wait {
            Wait::Spin => None,
            Wait::Event => Some(
                event_service(node, &names.event)?
                    .listener_builder()
                    .create()
                    .ctx("creating a listener")?,
            ),
        };
        Ok(Rx {
            subscriber: subscriber(&service, 1)?,
            listener,
            deadline: Deadline::new(),
        })
    }

    /// The next message, copied into `into` (the echo's answer, or the client's check).
    fn next(&mut self, into: &mut [u8; MSG]) -> Res<()> {
        let Some(listener) = &self.listener else {
            return receive_spinning(&self.subscriber, &mut self.deadline, |s| {
                into.copy_from_slice(s)
            });
        };
        loop {
            if let Some(sample) = self.subscriber.receive().ctx("receiving")? {
                into.copy_from_slice(&sample);
                self.deadline.reset();
                return Ok(());
            }
            // A notification sent between the receive and this wait is still pending: the
            // wait returns at once, no wake-up is lost. (It may also return having
            // collected nothing new, when an earlier wait already took this sample's
            // event: then the loop looks again.)
            listener
                .timed_wait(|_| {}, STUCK)
                .ctx("waiting on the listener")?;
            self.deadline.check_now()?;
        }
    }
}

/// The sending end of one direction.
struct Tx {
    publisher: Publisher<Ipc, [u8], ()>,
    notifier: Option<Notifier<Ipc>>,
}

impl Tx {
    fn open(node: &Node<Ipc>, names: &Names, wait: Wait) -> Res<Self> {
        let service = open_pubsub(node, &names.data, 1)?;
        let notifier = match wait {
            Wait::Spin => None,
            Wait::Event => Some(
                event_service(node, &names.event)?
                    .notifier_builder()
                    .create()
                    .ctx("creating a notifier")?,
            ),
        };
        Ok(Tx {
            publisher: publisher(&service, MSG)?,
            notifier,
        })
    }

    fn send(&self, msg: &[u8; MSG]) -> Res<()> {
        send(&self.publisher, msg, counter(msg))?;
        if let Some(notifier) = &self.notifier {
            let woken = notifier.notify().ctx("notifying")?;
            if woken != 1 {
                return Err(format!("a notification reached {woken} listeners, not 1"));
            }
        }
        Ok(())
    }
}

fn event_service(
    node: &Node<Ipc>,
    name: &ServiceName,
) -> Res<iceoryx2::service::port_factory::event::PortFactory<Ipc>> {
    node.service_builder(name)
        .event()
        .max_notifiers(1)
        .max_listeners(1)
        .open_or_create()
        .ctx("opening an event service")
}

/// Mean round trip of a 64-byte message from a client thread to an echo thread and back,
/// over `rounds` exchanges after `warmup` untimed ones. Each side copies the message into
/// a loaned sample and out of the received one.
pub(crate) fn ping_pong(wait: Wait, warmup: u64, rounds: u64) -> Res<Duration> {
    let (ping, pong) = (Names::new("ping")?, Names::new("pong")?);
    let total = warmup + rounds;
    // Every receiving end exists before the sending end that feeds it, so each publisher
    // and notifier is connected from its creation on.
    let (echo_rx_ready, echo_rx_ready_wait) = mpsc::channel::<()>();
    let (client_ready, client_ready_wait) = mpsc::channel::<()>();
    let (ping_names, pong_names) = (ping, pong);
    let echo = thread::spawn(move || -> Res<()> {
        let node = node()?;
        let mut rx = Rx::open(&node, &ping_names, wait)?;
        echo_rx_ready.send(()).ctx("ready")?;
        client_ready_wait.recv().ctx("the client never got ready")?;
        let tx = Tx::open(&node, &pong_names, wait)?;
        let mut msg = [0u8; MSG];
        for _ in 0..total {
            rx.next(&mut msg)?;
            tx.send(&msg)?;
        }
        Ok(())
    });
    let client = thread::spawn(move || -> Res<Duration> {
        echo_rx_ready_wait.recv().ctx("the echo never got ready")?;
        let node = node()?;
        let mut rx = Rx::open(&node, &pong, wait)?;
        let tx = Tx::open(&node, &ping, wait)?;
        client_ready.send(()).ctx("ready")?;
        let mut msg = [0u8; MSG];
        let mut back = [0u8; MSG];
        let mut start = Instant::now();
        for seq in 0..total {
            if seq == warmup {
                start = Instant::now();
            }
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            tx.send(&msg)?;
            rx.next(&mut back)?;
            if counter(&back) != seq {
                return Err(format!("echo {} came back, expected {seq}", counter(&back)));
            }
        }
        Ok(start.elapsed())
    });
    let elapsed = client.join().map_err(|_| "client panicked")??;
    echo.join().map_err(|_| "echo panicked")??;
    Ok(elapsed / rounds as u32)
}
