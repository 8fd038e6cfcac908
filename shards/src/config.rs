//! [`ShardsConfig`]: how many shards run and how each is set up (with [`ShmOptions`] for
//! shared-memory links), and a check that a TCP congestion control can be used before a
//! configuration names it.

use std::time::Duration;

use crate::error::{Result, ShardError};
use crate::shard::HandlerFactory;

/// How to run the shards.
#[derive(Clone)]
pub struct ShardsConfig {
    /// Number of shards; 0 means one per online core.
    pub shards: usize,
    /// Pin shard `i` to core `i % n` of the `n` cores this process may run on. Default
    /// `false`. Pinning keeps a shard's caches warm on a host given over to hawser; on a
    /// shared one it hurts: a shard pinned to a core that another process keeps busy cannot
    /// move away, the connections spanning shards wait for it, and two pinned processes
    /// stack their shards on the same cores. Turn it on for a dedicated host.
    pub pin: bool,
    /// Submission queue entries per ring (completion queue is 8x).
    pub ring_entries: u32,
    /// Registered buffers per shard (at most 32768).
    pub buffers: u16,
    /// Size of each buffer (rounded up to a page).
    pub buffer_size: usize,
    /// How many of the buffers are offered to the kernel for receiving; 0 means 3/4.
    pub recv_buffers: u16,
    /// Slots of each SPSC ring between two shards.
    pub mesh_capacity: usize,
    /// Use `SENDMSG_ZC` for sends of at least this many bytes (`None`: never). On loopback
    /// the kernel always copies, so this only pays on a real NIC.
    pub send_zc_threshold: Option<usize>,
    /// Set `TCP_NODELAY` on connections.
    pub tcp_nodelay: bool,
    /// TCP congestion control for every connection (`TCP_CONGESTION`, e.g. `cubic`);
    /// `None`: the system's default. See [`check_congestion_control`].
    pub tcp_congestion: Option<String>,
    /// Set up rings with `DEFER_TASKRUN` (completion work runs only when the shard enters
    /// the kernel) instead of `COOP_TASKRUN`.
    pub defer_taskrun: bool,
    /// Before parking in the kernel, look for work in shared memory (completion queue,
    /// pending task work, mesh, commands) for this long. On virtual machines where a
    /// wake-up from the kernel is slow, request/response traffic saves most of that per
    /// exchange; the price is a core kept busy for up to this long after each burst of
    /// work. `None` (default): park at once.
    pub busy_poll: Option<Duration>,
    /// Shared-memory links ([`Shards::listen_shm`](crate::Shards::listen_shm),
    /// [`Shards::connect_shm`](crate::Shards::connect_shm)).
    pub shm: ShmOptions,
    /// Builds each shard's [`ShardHandler`](crate::ShardHandler) (default:
    /// [`NoHandler`](crate::NoHandler)).
    pub handler: Option<HandlerFactory>,
}

/// How shared-memory links are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmOptions {
    /// Bytes of each direction's ring: what this side asks for when it connects, and the
    /// most it grants when it accepts (the smaller of the two wins). A power of two from
    /// 64 KiB to 64 MiB; default 4 MiB. A link's memory is twice this plus a page, per
    /// connection, allocated when it opens.
    pub ring_bytes: usize,
    /// How long a handshake may take, from connect to the last hello (default 5 s).
    pub handshake_timeout: Duration,
}

impl Default for ShmOptions {
    fn default() -> Self {
        ShmOptions {
            ring_bytes: 4 << 20,
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for ShardsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardsConfig")
            .field("shards", &self.shards)
            .field("pin", &self.pin)
            .field("ring_entries", &self.ring_entries)
            .field("buffers", &self.buffers)
            .field("buffer_size", &self.buffer_size)
            .field("recv_buffers", &self.recv_buffers)
            .field("mesh_capacity", &self.mesh_capacity)
            .field("send_zc_threshold", &self.send_zc_threshold)
            .field("tcp_nodelay", &self.tcp_nodelay)
            .field("tcp_congestion", &self.tcp_congestion)
            .field("defer_taskrun", &self.defer_taskrun)
            .field("busy_poll", &self.busy_poll)
            .field("shm", &self.shm)
            .field("handler", &self.handler.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl Default for ShardsConfig {
    fn default() -> Self {
        ShardsConfig {
            shards: 0,
            pin: false,
            ring_entries: 256,
            buffers: 256,
            buffer_size: 64 * 1024,
            recv_buffers: 0,
            mesh_capacity: 1024,
            send_zc_threshold: None,
            tcp_nodelay: true,
            tcp_congestion: None,
            defer_taskrun: false,
            busy_poll: None,
            shm: ShmOptions::default(),
            handler: None,
        }
    }
}

/// Checks that TCP congestion control `name` can be used here: it must be listed in
/// `/proc/sys/net/ipv4/tcp_available_congestion_control` (a module not loaded is not).
pub fn check_congestion_control(name: &str) -> Result<()> {
    const AVAILABLE: &str = "/proc/sys/net/ipv4/tcp_available_congestion_control";
    let available = std::fs::read_to_string(AVAILABLE)
        .map_err(|e| ShardError::io("reading tcp_available_congestion_control", e))?;
    if available.split_whitespace().any(|a| a == name) {
        Ok(())
    } else {
        Err(ShardError::CongestionControlUnavailable {
            name: name.to_owned(),
            available: available.split_whitespace().map(str::to_owned).collect(),
        })
    }
}
