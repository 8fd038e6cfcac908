//! Shared memory: a ring per direction in a sealed memfd, set up over a Unix socket (the
//! rendezvous, which also carries the peer's credentials and tells when it is gone), with
//! an eventfd doorbell per side rung only when that side is parked. A reliable byte
//! stream between processes of this host that bypasses the kernel's socket buffers.
//! The rings and their safety against a hostile peer live in `hawser-shards`.

use std::io;
use std::path::{Path, PathBuf};

use hawser_shards::{ConnId, Protocol, ShardCtx, Shards};

use super::unix::remove_stale_socket;
use super::{AcceptFactory, Capabilities, Transport};
use crate::ApiError;
use crate::address::Address;

/// Shared-memory connections set up at one rendezvous path.
#[derive(Debug, Clone)]
pub struct ShmTransport {
    address: Address,
}

impl ShmTransport {
    /// Shared memory whose rendezvous socket is at `path`.
    pub fn new(path: PathBuf) -> Self {
        ShmTransport {
            address: Address::Shm(path),
        }
    }

    fn path(&self) -> &Path {
        self.address.path().expect("an shm address has a path")
    }
}

impl Transport for ShmTransport {
    fn address(&self) -> &Address {
        &self.address
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LOCAL_STREAM
    }

    fn listen(
        &self,
        shards: &Shards,
        shard: usize,
        accept: AcceptFactory,
    ) -> Result<Address, ApiError> {
        remove_stale_socket(self.path());
        shards.listen_shm_with(shard, self.path(), accept)?;
        Ok(self.address.clone())
    }

    fn connect(&self, ctx: &mut ShardCtx<'_>, proto: Box<dyn Protocol>) -> io::Result<ConnId> {
        ctx.connect_shm(self.path(), proto)
    }
}
