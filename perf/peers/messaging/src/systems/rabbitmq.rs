//! RabbitMQ over AMQP 0-9-1: a direct exchange bound to one queue. The consumer declares
//! the exchange and a transient auto-delete queue of its own, binds them and consumes
//! without acknowledgements (auto-ack, prefetch at its maximum, which RabbitMQ ignores for
//! auto-ack consumers anyway); each publisher publishes to the exchange on its own
//! connection and channel, transient messages, no publisher confirms. RabbitMQ's credit
//! flow control slows publishers that outrun the queue.

use amqprs::BasicProperties;
use amqprs::channel::{
    BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel, ConsumerMessage,
    ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use anyhow::{Context as _, Result, anyhow, bail};
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Connected, Consumer, Publisher, unique_name};
use crate::measure::{Feed, Recorder};

struct RabbitPublisher {
    runtime: Handle,
    // Kept open for the run.
    _connection: Connection,
    channel: Channel,
    exchange: String,
    routing_key: String,
}

struct RabbitConsumer {
    runtime: Handle,
    _connection: Connection,
    _channel: Channel,
    deliveries: UnboundedReceiver<ConsumerMessage>,
}

/// The parts of `amqp://USER:PASSWORD@HOST:PORT/VHOST` (`guest:guest`, port 5672 and
/// vhost `/` when left out; `%2f` is `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Virtual host.
    pub vhost: String,
}

/// Parses an `amqp://` URL.
pub fn parse_url(url: &str) -> Result<AmqpUrl> {
    let rest = url
        .strip_prefix("amqp://")
        .ok_or_else(|| anyhow!("{url}: an AMQP URL starts with amqp://"))?;
    let (authority, vhost) = match rest.split_once('/') {
        Some((authority, vhost)) if !vhost.is_empty() => {
            (authority, vhost.replace("%2f", "/").replace("%2F", "/"))
        }
        Some((authority, _)) => (authority, "/".to_owned()),
        None => (rest, "/".to_owned()),
    };
    let (credentials, address) = match authority.rsplit_once('@') {
        Some((credentials, address)) => (Some(credentials), address),
        None => (None, authority),
    };
    let (user, password) = match credentials {
        Some(credentials) => match credentials.split_once(':') {
            Some((user, password)) => (user.to_owned(), password.to_owned()),
            None => (credentials.to_owned(), String::new()),
        },
        None => ("guest".to_owned(), "guest".to_owned()),
    };
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (
            host.to_owned(),
            port.parse()
                .with_context(|| format!("{url}: bad port {port}"))?,
        ),
        None => (address.to_owned(), 5672),
    };
    if host.is_empty() {
        bail!("{url}: no host");
    }
    Ok(AmqpUrl {
        host,
        port,
        user,
        password,
        vhost,
    })
}

async fn open(url: &AmqpUrl, name: &str) -> Result<(Connection, Channel)> {
    let arguments = OpenConnectionArguments::new(&url.host, url.port, &url.user, &url.password)
        .virtual_host(&url.vhost)
        .connection_name(name)
        .finish();
    let connection = Connection::open(&arguments)
        .await
        .with_context(|| format!("connecting to amqp://{}:{}", url.host, url.port))?;
    let channel = connection.open_channel(None).await?;
    Ok((connection, channel))
}

/// Declares and binds the consumer's queue and starts consuming, then connects
/// `publishers` publishers.
pub fn connect(runtime: &Handle, url: &str, publishers: usize) -> Result<Connected> {
    let url = parse_url(url)?;
    let exchange = "hawser-perf".to_owned();
    let queue = unique_name("hawser-perf");
    let routing_key = queue.clone();
    runtime.block_on(async {
        let (connection, channel) = open(&url, "hawser-perf consumer").await?;
        channel
            .exchange_declare(ExchangeDeclareArguments::new(&exchange, "direct"))
            .await
            .context("declaring the exchange")?;
        channel
            .queue_declare(QueueDeclareArguments::transient_autodelete(&queue))
            .await
            .context("declaring the queue")?;
        channel
            .queue_bind(QueueBindArguments::new(&queue, &exchange, &routing_key))
            .await
            .context("binding the queue")?;
        channel
            .basic_qos(BasicQosArguments::new(0, u16::MAX, false))
            .await
            .context("setting the prefetch")?;
        let (_tag, deliveries) = channel
            .basic_consume_rx(
                BasicConsumeArguments::new(&queue, "hawser-perf")
                    .manual_ack(false)
                    .finish(),
            )
            .await
            .context("starting the consumer")?;
        let mut clients: Vec<Box<dyn Publisher>> = Vec::with_capacity(publishers);
        for index in 0..publishers {
            let (connection, channel) =
                open(&url, &format!("hawser-perf publisher {index}")).await?;
            clients.push(Box::new(RabbitPublisher {
                runtime: runtime.clone(),
                _connection: connection,
                channel,
                exchange: exchange.clone(),
                routing_key: routing_key.clone(),
            }));
        }
        Ok(Connected {
            consumer: Box::new(RabbitConsumer {
                runtime: runtime.clone(),
                _connection: connection,
                _channel: channel,
                deliveries,
            }),
            publishers: clients,
        })
    })
}

impl Publisher for RabbitPublisher {
    fn run(&mut self, feed: &mut Feed, size: usize) -> Result<()> {
        let arguments = BasicPublishArguments::new(&self.exchange, &self.routing_key);
        let Self {
            runtime, channel, ..
        } = self;
        runtime.block_on(async {
            let mut body = vec![0u8; size];
            while feed.next(&mut body) {
                channel
                    .basic_publish(BasicProperties::default(), body.clone(), arguments.clone())
                    .await
                    .context("amqp basic.publish")?;
            }
            Ok(())
        })
    }
}

impl Consumer for RabbitConsumer {
    fn run(&mut self, recorder: &mut Recorder) -> Result<()> {
        let Self {
            runtime,
            deliveries,
            ..
        } = self;
        runtime.block_on(async {
            let end = tokio::time::sleep(recorder.remaining());
            tokio::pin!(end);
            loop {
                tokio::select! {
                    biased;
                    delivery = deliveries.recv() => match delivery {
                        Some(delivery) => {
                            let body = delivery.content.as_deref().unwrap_or_default();
                            if !recorder.on_message(body) {
                                return Ok(());
                            }
                        }
                        None => bail!("the AMQP consumer was cancelled or its connection closed"),
                    },
                    () = &mut end => return Ok(()),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("amqp://guest:secret@127.0.0.1:5673/%2f").unwrap(),
            AmqpUrl {
                host: "127.0.0.1".into(),
                port: 5673,
                user: "guest".into(),
                password: "secret".into(),
                vhost: "/".into(),
            }
        );
        let plain = parse_url("amqp://localhost").unwrap();
        assert_eq!(
            (plain.port, plain.user.as_str(), plain.vhost.as_str()),
            (5672, "guest", "/")
        );
        assert_eq!(parse_url("amqp://h:1/v").unwrap().vhost, "v");
        assert!(parse_url("http://h").is_err());
        assert!(parse_url("amqp://h:x").is_err());
    }
}
