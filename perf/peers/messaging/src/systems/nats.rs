//! Core NATS publish/subscribe (no JetStream) through a `nats-server`: the consumer
//! subscribes to a subject of its own, each publisher publishes to it on its own
//! connection. Core NATS has no flow control: a consumer that falls behind loses messages
//! (the client drops them once its subscription buffer, 65,536 messages by default, is
//! full), so the consumer's rate is what it received.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use async_nats::{Client, Subject, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::runtime::Handle;

use super::{Connected, Consumer, Publisher, unique_name};
use crate::measure::{Feed, Recorder};

/// How long a publisher waits for its client to write out what it buffers at the end.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

struct NatsPublisher {
    runtime: Handle,
    client: Client,
    subject: Subject,
}

struct NatsConsumer {
    runtime: Handle,
    // Kept so the connection outlives the subscription.
    _client: Client,
    subscriber: Subscriber,
}

/// Subscribes the consumer, then connects `publishers` clients (`url`: `nats://HOST:PORT`).
pub fn connect(runtime: &Handle, url: &str, publishers: usize) -> Result<Connected> {
    let subject = Subject::from(unique_name("hawser-perf").replace('-', "."));
    runtime.block_on(async {
        let consumer = async_nats::connect(url)
            .await
            .with_context(|| format!("connecting the consumer to {url}"))?;
        let subscriber = consumer.subscribe(subject.clone()).await?;
        consumer.flush().await?;
        let mut clients: Vec<Box<dyn Publisher>> = Vec::with_capacity(publishers);
        for _ in 0..publishers {
            let client = async_nats::connect(url)
                .await
                .with_context(|| format!("connecting a publisher to {url}"))?;
            clients.push(Box::new(NatsPublisher {
                runtime: runtime.clone(),
                client,
                subject: subject.clone(),
            }));
        }
        Ok(Connected {
            consumer: Box::new(NatsConsumer {
                runtime: runtime.clone(),
                _client: consumer,
                subscriber,
            }),
            publishers: clients,
        })
    })
}

impl Publisher for NatsPublisher {
    fn run(&mut self, feed: &mut Feed, size: usize) -> Result<()> {
        let Self {
            runtime,
            client,
            subject,
        } = self;
        runtime.block_on(async {
            let mut body = vec![0u8; size];
            while feed.next(&mut body) {
                client
                    .publish(subject.clone(), Bytes::copy_from_slice(&body))
                    .await
                    .context("nats publish")?;
            }
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, client.flush()).await;
            Ok(())
        })
    }
}

impl Consumer for NatsConsumer {
    fn run(&mut self, recorder: &mut Recorder) -> Result<()> {
        let Self {
            runtime,
            subscriber,
            ..
        } = self;
        runtime.block_on(async {
            let end = tokio::time::sleep(recorder.remaining());
            tokio::pin!(end);
            loop {
                tokio::select! {
                    biased;
                    message = subscriber.next() => match message {
                        Some(message) => {
                            if !recorder.on_message(&message.payload) {
                                return Ok(());
                            }
                        }
                        None => bail!("the NATS subscription ended"),
                    },
                    () = &mut end => return Ok(()),
                }
            }
        })
    }
}
