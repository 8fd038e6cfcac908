//! Shards shared by the servers and clients of one process.

use std::sync::Arc;
use std::time::Duration;

use hawser_shards::Shards;

use crate::ApiError;
use crate::driver::shards_config;

/// Shards shared by several servers and clients of one process (for example a loopback
/// benchmark placing the server on shard 1 and the client on shard 0). Without one, every
/// [`Server`](crate::Server) and [`Client`](crate::Client) starts a shard of its own.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub(crate) shards: Arc<Shards>,
}

/// How to start a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Shard threads (at least 1).
    pub shards: usize,
    /// TCP congestion control of every connection of these shards (e.g. `cubic`; check
    /// it first with `hawser_shards::check_congestion_control`); `None`: the system's.
    pub tcp_congestion: Option<String>,
    /// Shards look for work this long before sleeping in the kernel (see
    /// `hawser_shards::ShardsConfig::busy_poll`): lower request/response latency for a
    /// busier core. `None`: sleep at once.
    pub busy_poll: Option<Duration>,
    /// Pin shard `i` to CPU `i` (see `hawser_shards::ShardsConfig::pin`). Off by
    /// default: every hawser process would pin its first shard to CPU 0, so several on
    /// one host (a server and its pushes, or parallel pushes) would share one core; turn
    /// it on for a process that has its host's cores to itself. The shards a lone
    /// server or client starts for itself are never pinned.
    pub pin: bool,
}

impl Runtime {
    /// Starts `shards` shard threads (unpinned: see `hawser_shards::ShardsConfig::pin`).
    pub fn new(shards: usize) -> Result<Runtime, ApiError> {
        Self::start(RuntimeConfig {
            shards,
            ..RuntimeConfig::default()
        })
    }

    /// [`new`](Self::new), with every connection of these shards using TCP congestion
    /// control `name` (e.g. `cubic`; check it first with
    /// `hawser_shards::check_congestion_control`).
    pub fn with_tcp_congestion(shards: usize, name: Option<&str>) -> Result<Runtime, ApiError> {
        Self::start(RuntimeConfig {
            shards,
            tcp_congestion: name.map(str::to_owned),
            ..RuntimeConfig::default()
        })
    }

    /// Starts the shards `config` describes.
    pub fn start(config: RuntimeConfig) -> Result<Runtime, ApiError> {
        let mut shards = shards_config(config.shards.max(1), config.tcp_congestion);
        shards.busy_poll = config.busy_poll;
        shards.pin = config.pin;
        Ok(Runtime {
            shards: Arc::new(Shards::start(shards)?),
        })
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }
}
