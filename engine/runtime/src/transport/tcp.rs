//! TCP: a reliable byte stream over the network, through the shards' io_uring loop.

use std::io;
use std::net::SocketAddr;

use hawser_shards::{ConnId, Protocol, ShardCtx, Shards};

use super::{AcceptFactory, Capabilities, Transport};
use crate::ApiError;
use crate::address::Address;

/// TCP to or at one socket address.
#[derive(Debug, Clone)]
pub struct TcpTransport {
    address: Address,
    addr: SocketAddr,
}

impl TcpTransport {
    /// TCP at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        TcpTransport {
            address: Address::Tcp(addr),
            addr,
        }
    }
}

impl Transport for TcpTransport {
    fn address(&self) -> &Address {
        &self.address
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NETWORK_STREAM
    }

    fn listen(
        &self,
        shards: &Shards,
        shard: usize,
        accept: AcceptFactory,
    ) -> Result<Address, ApiError> {
        let bound = shards.listen_tcp_on_with(shard, self.addr, accept)?;
        Ok(Address::Tcp(bound))
    }

    fn listen_routed(
        &self,
        shards: &Shards,
        acceptor: usize,
        accept: AcceptFactory,
        router: hawser_shards::Router,
    ) -> Result<Address, ApiError> {
        let bound = shards.listen_tcp_routed(acceptor, self.addr, accept, router)?;
        Ok(Address::Tcp(bound))
    }

    fn connect(&self, ctx: &mut ShardCtx<'_>, proto: Box<dyn Protocol>) -> io::Result<ConnId> {
        ctx.connect_tcp(self.addr, proto)
    }
}
