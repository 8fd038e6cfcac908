//! Errors of the shards layer. Each message is one line that says what to do.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong starting shards, opening endpoints on them, or checking
/// their configuration.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The kernel has no io_uring, or a sysctl forbids it.
    #[error(
        "io_uring is unavailable ({source}); use Linux >= 6.1 and set /proc/sys/kernel/io_uring_disabled to 0 (currently {disabled_setting})"
    )]
    IoUringUnavailable {
        /// What `io_uring_setup` answered.
        source: io::Error,
        /// The content of `/proc/sys/kernel/io_uring_disabled`, or `unknown`.
        disabled_setting: String,
    },
    /// The locked-memory limit is smaller than the registered buffer pool.
    #[error(
        "RLIMIT_MEMLOCK is {limit_bytes} bytes but the buffer pool needs {needed_bytes}; raise it (`ulimit -l unlimited`, LimitMEMLOCK= in systemd) or lower buffers/buffer_size"
    )]
    MemlockTooSmall {
        /// Current soft limit in bytes.
        limit_bytes: u64,
        /// Bytes the pool wants to pin.
        needed_bytes: u64,
    },
    /// Some other process (or another hawser) already listens on the address.
    #[error("address {addr} is already in use; stop the other listener or choose another port")]
    AddressInUse {
        /// The address we tried to bind.
        addr: SocketAddr,
    },
    /// A Unix socket path is taken.
    #[error(
        "unix socket path {path} is already in use; remove the stale file or choose another path"
    )]
    UnixPathInUse {
        /// The path we tried to bind.
        path: PathBuf,
    },
    /// More shards than a shard id can name.
    #[error("{shards} shards are too many; use at most 65535")]
    TooManyShards {
        /// The number asked for.
        shards: usize,
    },
    /// The buffer pool's size is out of range.
    #[error(
        "a pool of {buffers} buffers of {buffer_size} bytes cannot work; use 1 to 32768 buffers of at least 1 byte"
    )]
    InvalidBufferPool {
        /// Buffers per shard asked for.
        buffers: u16,
        /// Bytes per buffer asked for.
        buffer_size: usize,
    },
    /// The shared-memory ring size or handshake timeout is out of range.
    #[error(
        "shared-memory rings of {ring_bytes} bytes with a {handshake_timeout:?} handshake cannot work; use a power of two from 64 KiB to 64 MiB and a timeout above zero"
    )]
    InvalidShmOptions {
        /// Ring bytes asked for.
        ring_bytes: usize,
        /// Handshake timeout asked for.
        handshake_timeout: std::time::Duration,
    },
    /// The TCP congestion control named is not available on this host.
    #[error(
        "TCP congestion control {name:?} is not available here (available: {}); others need their kernel module loaded",
        available.join(" ")
    )]
    CongestionControlUnavailable {
        /// The algorithm asked for.
        name: String,
        /// The algorithms the kernel offers.
        available: Vec<String>,
    },
    /// A shard thread is gone (it panicked or was shut down).
    #[error("shard {0} is not running; it was shut down or panicked (see its log)")]
    ShardGone(usize),
    /// Any other system call failure, with the step that failed.
    #[error("{what} failed: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The error from the kernel.
        source: io::Error,
    },
}

impl ShardError {
    pub(crate) fn io(what: &'static str, source: io::Error) -> Self {
        ShardError::Io { what, source }
    }
}

/// Result alias of this crate.
pub type Result<T, E = ShardError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_one_line_saying_what_to_do() {
        let errors = [
            ShardError::IoUringUnavailable {
                source: io::Error::from_raw_os_error(libc::EPERM),
                disabled_setting: "2".into(),
            },
            ShardError::MemlockTooSmall {
                limit_bytes: 8 << 20,
                needed_bytes: 32 << 20,
            },
            ShardError::AddressInUse {
                addr: "127.0.0.1:8415".parse().unwrap(),
            },
            ShardError::UnixPathInUse {
                path: "/run/hawser.sock".into(),
            },
            ShardError::TooManyShards { shards: 70_000 },
            ShardError::InvalidBufferPool {
                buffers: 0,
                buffer_size: 4096,
            },
            ShardError::CongestionControlUnavailable {
                name: "vegas".into(),
                available: vec!["reno".into(), "cubic".into()],
            },
            ShardError::InvalidShmOptions {
                ring_bytes: 1000,
                handshake_timeout: std::time::Duration::from_secs(5),
            },
        ];
        let hints = [
            "io_uring_disabled to 0",
            "ulimit -l",
            "choose another port",
            "remove the stale file",
            "at most 65535",
            "1 to 32768 buffers",
            "kernel module loaded",
            "power of two from 64 KiB to 64 MiB",
        ];
        for (e, hint) in errors.iter().zip(hints) {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains(hint), "{msg}");
        }
    }
}
