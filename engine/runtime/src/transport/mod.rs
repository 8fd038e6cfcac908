//! Transports and the layers composed on them (the dsock pipeline model): each transport
//! declares its capabilities — connection-based or not, byte stream or datagrams,
//! reliable or not, local or network — and each layer what it needs from the one below
//! and what it offers the one above. [`ProtocolStack::compose`] checks a stack bottom-up and
//! refuses a mismatch in words ("DSP needs a reliable stream; udp:// is a datagram
//! transport").
//!
//! A transport establishes (listen / accept, connect) and closes; sending and receiving
//! are the shards' [`Protocol`] interface, the same for every connection-based
//! transport, so the sans-IO session never learns which one carries it. One file per
//! transport: `tcp`, `unix`, `shm`, `udp`.

mod shm;
mod tcp;
mod udp;
mod unix;

use std::fmt;
use std::io;
use std::sync::Arc;

use hawser_shards::{ConnId, Protocol, ShardCtx, Shards};

use crate::ApiError;
use crate::address::Address;

pub use shm::ShmTransport;
pub use tcp::TcpTransport;
pub use udp::UdpTransport;
pub use unix::UnixTransport;

/// Builds the protocol of each accepted connection (argument: its shard).
pub type AcceptFactory = hawser_shards::ProtocolFactory;

/// What a transport offers, or what a layer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Connections are established and closed (otherwise: bound sockets, connection-less).
    pub connection: bool,
    /// An ordered byte stream (otherwise: datagrams, each whole or lost).
    pub stream: bool,
    /// Nothing is lost, duplicated or reordered.
    pub reliable: bool,
    /// Only processes on this host reach it (IPC rather than the network).
    pub local: bool,
}

impl Capabilities {
    /// A reliable, connection-based byte stream over the network (TCP).
    pub const NETWORK_STREAM: Capabilities = Capabilities {
        connection: true,
        stream: true,
        reliable: true,
        local: false,
    };
    /// A reliable, connection-based byte stream between processes of this host.
    pub const LOCAL_STREAM: Capabilities = Capabilities {
        local: true,
        ..Capabilities::NETWORK_STREAM
    };
    /// Connection-less, unreliable datagrams over the network (UDP).
    pub const DATAGRAM: Capabilities = Capabilities {
        connection: false,
        stream: false,
        reliable: false,
        local: false,
    };

    /// Whether these capabilities provide everything `needed` asks for (`local` is a
    /// property, never a need).
    pub fn provide(self, needed: Capabilities) -> bool {
        (!needed.connection || self.connection)
            && (!needed.stream || self.stream)
            && (!needed.reliable || self.reliable)
    }

    /// What these capabilities are, as a phrase: "a reliable stream", "a datagram".
    pub fn describe(self) -> &'static str {
        match (self.stream, self.reliable) {
            (true, true) => "a reliable stream",
            (true, false) => "an unreliable stream",
            (false, true) => "a reliable message",
            (false, false) => "a datagram",
        }
    }
}

/// A connection-based or connection-less transport at one address.
pub trait Transport: fmt::Debug + Send + Sync {
    /// Where it is.
    fn address(&self) -> &Address;

    /// What it offers the layer above.
    fn capabilities(&self) -> Capabilities;

    /// Listens, accepting connections on shard `shard` (each driven by a protocol from
    /// `accept`); returns the bound address (a TCP port 0 is chosen here).
    fn listen(
        &self,
        shards: &Shards,
        shard: usize,
        accept: AcceptFactory,
    ) -> Result<Address, ApiError>;

    /// Listens with shard `acceptor` accepting, each connection opening on the shard
    /// `router` names from its first bytes. A transport that cannot peek at them (shared
    /// memory) keeps every connection on `acceptor`.
    fn listen_routed(
        &self,
        shards: &Shards,
        acceptor: usize,
        accept: AcceptFactory,
        router: hawser_shards::Router,
    ) -> Result<Address, ApiError> {
        let _ = router;
        self.listen(shards, acceptor, accept)
    }

    /// Opens a connection from the shard `ctx` runs, driven by `proto` (which sees
    /// `on_open` once established, or `on_close` if it fails). Never blocks the shard.
    fn connect(&self, ctx: &mut ShardCtx<'_>, proto: Box<dyn Protocol>) -> io::Result<ConnId>;
}

/// The transport of `address`.
pub fn transport_for(address: &Address) -> Arc<dyn Transport> {
    match address {
        Address::Tcp(a) => Arc::new(TcpTransport::new(*a)),
        Address::Unix(p) => Arc::new(UnixTransport::new(p.clone())),
        Address::Shm(p) => Arc::new(ShmTransport::new(p.clone())),
        Address::Udp(a) => Arc::new(UdpTransport::new(*a)),
    }
}

/// A layer of a pipeline: what it needs below, what it offers above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// Its name in messages ("DSP", "TLS").
    pub name: &'static str,
    /// What the layer below must provide.
    pub needs: Capabilities,
    /// What it provides to the layer above.
    pub offers: Capabilities,
}

impl Layer {
    /// DSP framing and the session above it: frames over a reliable, connection-based
    /// stream; offers exchanges (a reliable, connection-based message service).
    pub const DSP: Layer = Layer {
        name: "DSP",
        needs: Capabilities::NETWORK_STREAM,
        offers: Capabilities {
            stream: false,
            ..Capabilities::NETWORK_STREAM
        },
    };
}

impl Layer {
    /// TLS 1.3: needs a reliable stream and offers one (encrypted, the server proven).
    /// Its records are processed inside the session's links (sans-IO rustls), switched on
    /// by the Hello exchange; see `hawser_session::tls`.
    pub const TLS: Layer = Layer {
        name: "TLS",
        needs: Capabilities::NETWORK_STREAM,
        offers: Capabilities::NETWORK_STREAM,
    };
}

/// A layer composed on something that lacks what it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{layer} needs {needs}; {below} is {offers}")]
pub struct CompositionError {
    /// The layer that cannot sit there.
    pub layer: &'static str,
    /// What it needs, in words.
    pub needs: String,
    /// What is below it: a transport (`udp://`) or a layer.
    pub below: String,
    /// What that offers, in words.
    pub offers: String,
}

/// A transport and the layers on it, checked bottom-up.
#[derive(Debug, Clone)]
pub struct ProtocolStack {
    transport: Arc<dyn Transport>,
    layers: Vec<Layer>,
}

impl ProtocolStack {
    /// Stacks `layers` (bottom first) on `transport`, or says which layer cannot sit on
    /// what is below it.
    pub fn compose(
        transport: Arc<dyn Transport>,
        layers: &[Layer],
    ) -> Result<ProtocolStack, CompositionError> {
        let mut offered = transport.capabilities();
        let mut below = format!("{}://", transport.address().scheme());
        let mut below_is_transport = true;
        for layer in layers {
            if !offered.provide(layer.needs) {
                let what = if below_is_transport {
                    " transport"
                } else {
                    " layer"
                };
                return Err(CompositionError {
                    layer: layer.name,
                    needs: describe_need(layer.needs),
                    below,
                    offers: format!("{}{what}", offered.describe()),
                });
            }
            offered = Capabilities {
                local: offered.local,
                ..layer.offers
            };
            below = layer.name.to_owned();
            below_is_transport = false;
        }
        Ok(ProtocolStack {
            transport,
            layers: layers.to_vec(),
        })
    }

    /// DSP on the transport of `address`: what a client or server of the session layer
    /// runs on.
    pub fn dsp(address: &Address) -> Result<ProtocolStack, CompositionError> {
        ProtocolStack::compose(transport_for(address), &[Layer::DSP])
    }

    /// DSP over TLS on the transport of `address`.
    pub fn dsp_over_tls(address: &Address) -> Result<ProtocolStack, CompositionError> {
        ProtocolStack::compose(transport_for(address), &[Layer::TLS, Layer::DSP])
    }

    /// DSP on `address`, over TLS when `tls`.
    pub fn session(address: &Address, tls: bool) -> Result<ProtocolStack, CompositionError> {
        if tls {
            ProtocolStack::dsp_over_tls(address)
        } else {
            ProtocolStack::dsp(address)
        }
    }

    /// The transport at the bottom.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// What the top of the stack offers.
    pub fn capabilities(&self) -> Capabilities {
        let local = self.transport.capabilities().local;
        self.layers
            .last()
            .map_or(self.transport.capabilities(), |l| Capabilities {
                local,
                ..l.offers
            })
    }
}

impl fmt::Display for ProtocolStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for layer in self.layers.iter().rev() {
            write!(f, "{} over ", layer.name)?;
        }
        write!(f, "{}", self.transport.address())
    }
}

/// A need as a phrase: only what is asked for ("a reliable stream").
fn describe_need(needs: Capabilities) -> String {
    let mut words = Vec::new();
    if needs.reliable {
        words.push("reliable");
    }
    words.push(if needs.stream { "stream" } else { "transport" });
    let phrase = words.join(" ");
    format!("a {phrase}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn dsp_composes_on_every_reliable_stream_and_refuses_datagrams_in_words() {
        for ok in ["127.0.0.1:1", "unix:///tmp/x.sock", "shm://x"] {
            let p = ProtocolStack::dsp(&address(ok)).unwrap();
            assert!(p.capabilities().reliable, "{ok}");
            assert!(p.to_string().starts_with("DSP over "), "{p}");
        }
        for ok in ["127.0.0.1:1", "unix:///tmp/x.sock"] {
            let p = ProtocolStack::dsp_over_tls(&address(ok)).unwrap();
            assert!(p.to_string().starts_with("DSP over TLS over "), "{p}");
        }
        let e = ProtocolStack::dsp_over_tls(&address("udp://127.0.0.1:1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TLS needs a reliable stream; udp:// is a datagram transport"
        );
        let e = ProtocolStack::dsp(&address("udp://127.0.0.1:1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DSP needs a reliable stream; udp:// is a datagram transport"
        );
    }

    #[test]
    fn layers_check_what_the_layer_below_offers() {
        // A layer that needs a stream cannot sit on DSP, which offers messages.
        let needs_stream = Layer::TLS;
        let tcp = transport_for(&address("127.0.0.1:1"));
        let e = ProtocolStack::compose(tcp.clone(), &[Layer::DSP, needs_stream]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TLS needs a reliable stream; DSP is a reliable message layer"
        );
        // Stream on stream composes, and DSP on top of it.
        let p = ProtocolStack::compose(tcp, &[needs_stream, Layer::DSP]).unwrap();
        assert_eq!(p.to_string(), "DSP over TLS over tcp://127.0.0.1:1");
        // Locality is the transport's and passes up.
        let local = ProtocolStack::dsp(&address("unix:///x")).unwrap();
        assert!(local.capabilities().local);
    }

    #[test]
    fn capabilities_describe_themselves() {
        assert_eq!(Capabilities::NETWORK_STREAM.describe(), "a reliable stream");
        assert_eq!(Capabilities::DATAGRAM.describe(), "a datagram");
        assert!(Capabilities::LOCAL_STREAM.provide(Capabilities::NETWORK_STREAM));
        assert!(!Capabilities::DATAGRAM.provide(Capabilities::NETWORK_STREAM));
    }
}
