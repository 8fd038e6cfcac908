//! Unix stream sockets: a reliable byte stream between processes of this host, through
//! the shards' io_uring loop. The kernel tells the server who connected (`SO_PEERCRED`),
//! which `EXTERNAL` authentication can take as proof.

use std::io;
use std::path::{Path, PathBuf};

use hawser_shards::{ConnId, Protocol, ShardCtx, Shards};

use super::{AcceptFactory, Capabilities, Transport};
use crate::ApiError;
use crate::address::Address;

/// A Unix stream socket at one path.
#[derive(Debug, Clone)]
pub struct UnixTransport {
    address: Address,
}

impl UnixTransport {
    /// The Unix socket at `path`.
    pub fn new(path: PathBuf) -> Self {
        UnixTransport {
            address: Address::Unix(path),
        }
    }

    fn path(&self) -> &Path {
        self.address.path().expect("a unix address has a path")
    }
}

/// Removes a socket file at `path` that nothing listens on any more (a server that did
/// not stop cleanly left it): binding would fail "in use" although nobody uses it. A
/// socket someone still accepts on, or a file that is not a socket, is left alone.
pub(super) fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !meta.file_type().is_socket() {
        return;
    }
    if let Err(e) = std::os::unix::net::UnixStream::connect(path)
        && e.kind() == io::ErrorKind::ConnectionRefused
    {
        let _ = std::fs::remove_file(path);
    }
}

impl Transport for UnixTransport {
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
        shards.listen_unix_with(shard, self.path(), accept)?;
        Ok(self.address.clone())
    }

    fn listen_routed(
        &self,
        shards: &Shards,
        acceptor: usize,
        accept: AcceptFactory,
        router: hawser_shards::Router,
    ) -> Result<Address, ApiError> {
        remove_stale_socket(self.path());
        shards.listen_unix_routed(acceptor, self.path(), accept, router)?;
        Ok(self.address.clone())
    }

    fn connect(&self, ctx: &mut ShardCtx<'_>, proto: Box<dyn Protocol>) -> io::Result<ConnId> {
        ctx.connect_unix(self.path(), proto)
    }
}
