//! UDP: connection-less, unreliable datagrams over the network (the shards' batched
//! `sendmsg`/multishot `recvmsg` path, GSO and GRO). It carries DTP's data; a layer that
//! needs a stream or connections cannot sit on it, which [`ProtocolStack::compose`] says
//! before anything is bound.
//!
//! [`ProtocolStack::compose`]: super::ProtocolStack::compose

use std::io;
use std::net::SocketAddr;

use hawser_shards::{ConnId, Protocol, ShardCtx, Shards};

use super::{AcceptFactory, Capabilities, Transport};
use crate::ApiError;
use crate::address::Address;

/// UDP at one socket address.
#[derive(Debug, Clone)]
pub struct UdpTransport {
    address: Address,
}

impl UdpTransport {
    /// UDP at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        UdpTransport {
            address: Address::Udp(addr),
        }
    }

    fn connection_less(&self) -> String {
        format!(
            "{} is connection-less: it is bound, not listened on or connected to",
            self.address
        )
    }
}

impl Transport for UdpTransport {
    fn address(&self) -> &Address {
        &self.address
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::DATAGRAM
    }

    fn listen(
        &self,
        _shards: &Shards,
        _shard: usize,
        _accept: AcceptFactory,
    ) -> Result<Address, ApiError> {
        Err(ApiError::Transport {
            address: self.address.clone(),
            source: io::Error::new(io::ErrorKind::Unsupported, self.connection_less()),
        })
    }

    fn connect(&self, _ctx: &mut ShardCtx<'_>, _proto: Box<dyn Protocol>) -> io::Result<ConnId> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            self.connection_less(),
        ))
    }
}
