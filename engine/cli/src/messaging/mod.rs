//! `hawser publish` and `hawser consume`: messages through a server's DMP sinks and
//! feeds, from stdin and to stdout, with a report of rates and end-to-end latency.

pub mod consume;
pub mod publish;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use hawser_runtime::{Address, Client, ClientOptions};

use crate::error::CliError;
use crate::security::{client_password, tls_host};

/// Where the server is and who connects.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The server: HOST[:PORT] (port 8415 by default), tcp://HOST:PORT or unix:///PATH.
    #[arg(value_name = "HOST[:PORT]")]
    pub server: String,
    /// Identity to authenticate as, with a password from --secret-file, else the
    /// HAWSER_PASSWORD environment variable, else asked on the terminal (without
    /// --identity the client is anonymous).
    #[arg(long)]
    pub identity: Option<String>,
    /// File holding the password of --identity (its first line).
    ///
    /// The login is SCRAM, which never sends the password; the connection itself runs in
    /// clear text.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

impl ServerArgs {
    /// The server's address.
    pub fn address(&self) -> Result<Address, CliError> {
        Address::parse(&self.server).map_err(|e| CliError::Usage(format!("{:?}: {e}", self.server)))
    }

    /// Connects the nexus that wires and asks for leases.
    pub fn connect(&self) -> Result<Client, CliError> {
        let address = self.address()?;
        if matches!(address, Address::Shm(_) | Address::Udp(_)) {
            return Err(CliError::Usage(format!(
                "{}: direct message connections run over TCP or a Unix socket",
                self.server
            )));
        }
        let host = tls_host(&self.server, &address);
        let login = self.identity.as_ref().map(|i| format!("{i}@{host}"));
        let mut options = ClientOptions {
            connections: 1,
            password: client_password(self.secret_file.as_deref(), login.as_deref())?,
            connect_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        };
        if let Some(identity) = &self.identity {
            options.identity = identity.clone();
        }
        Client::connect_to(&address, options).map_err(CliError::from)
    }
}

/// A `--rate` in messages per second: positive and finite.
pub fn parse_message_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of messages per second"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err("a rate is a positive number of messages per second".into())
    }
}

/// Keeps a loop at `rate` iterations per second: sleeps when ahead.
#[derive(Debug)]
pub struct Pacer {
    interval: Option<Duration>,
    started: std::time::Instant,
    done: u64,
}

impl Pacer {
    /// A pacer for `rate` per second (`None`: as fast as possible).
    pub fn new(rate: Option<f64>) -> Self {
        Pacer {
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            started: std::time::Instant::now(),
            done: 0,
        }
    }

    /// Whether the next iteration is due now; when it is not, the caller flushes and
    /// calls [`wait`](Self::wait).
    pub fn due(&self) -> bool {
        self.interval
            .is_none_or(|i| self.started + i.mul_f64(self.done as f64) <= std::time::Instant::now())
    }

    /// Sleeps until the next iteration is due.
    pub fn wait(&self) {
        if let Some(i) = self.interval {
            let at = self.started + i.mul_f64(self.done as f64);
            let now = std::time::Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
        }
    }

    /// One iteration done.
    pub fn tick(&mut self) {
        self.done += 1;
    }
}
