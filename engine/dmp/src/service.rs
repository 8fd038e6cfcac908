//! The DMP service of a server: the wiring exchanges over a nexus (declare, delete,
//! bind, unbind, and the Direct class's Put and Get), run inline on the server's shard,
//! and the direct-connection protocol on the server's own listening addresses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use hawser_runtime::{DirectFactory, HandlerError, Peer, RemoteException, RequestContext, Service};
use hawser_wire::dmp::ShortStr;
use hawser_wire::dmp::wiring::{
    Bind, DeclareFeed, DeclareSink, Declared, Delete, Done, Get, GetOk, Put, PutOk, Unbind,
    WiringKind,
};

use crate::broker::{Broker, BrokerStats, Refusal, Requester};
use crate::config::DmpConfig;
use crate::direct::DirectConn;
use crate::registry;

/// The exchange ids of the wiring requests: `0x444D_5000` ("DMP") with the request's tag.
pub mod exchange {
    use hawser_runtime::ExchangeId;
    use hawser_wire::dmp::wiring::WiringKind;

    /// The base of DMP's exchange ids.
    pub const BASE: u32 = 0x444D_5000;

    /// The exchange of a wiring request kind.
    pub const fn of(kind: WiringKind) -> ExchangeId {
        ExchangeId(BASE | kind as u32)
    }

    /// The broker's figures: an empty request, answered by JSON (hawser's addition to
    /// the wiring; see `docs/PROTOCOL.md`).
    pub const STATS: ExchangeId = ExchangeId(BASE | 0x7F);
}

static NEXT_SERVICE: AtomicU64 = AtomicU64::new(1);

/// The DMP service of one server.
#[derive(Debug, Clone)]
pub struct DmpService {
    id: u64,
    config: Arc<DmpConfig>,
}

/// A refusal as the remote exception the client sees: type `dmp.<INDICATOR>`, and the
/// code in the message.
pub fn refusal_exception(r: &Refusal) -> HandlerError {
    HandlerError::Exception(RemoteException::new(
        format!("dmp.{}", r.code.indicator()),
        r.text.clone(),
    ))
}

fn malformed(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        hawser_wire::dmp::ResponseCode::SyntaxError,
        format!("malformed wiring request: {e}"),
    )
}

fn requester(ctx: &RequestContext) -> Requester {
    let (identity, anonymous, peer) = ctx.owner().map_or(("".into(), true, Peer::Unknown), |o| {
        (Arc::clone(&o.identity), o.anonymous, o.peer)
    });
    Requester {
        app: ctx.request.nexus.0,
        identity,
        anonymous,
        peer,
    }
}

fn lease_reply(kind: WiringKind, lease: &str) -> Bytes {
    let lease = ShortStr::text(lease).expect("a lease fits a short string");
    let mut out = BytesMut::with_capacity(2 + lease.as_bytes().len());
    if kind == WiringKind::PutOk {
        PutOk { lease }.encode(&mut out);
    } else {
        GetOk { lease }.encode(&mut out);
    }
    out.freeze()
}

fn done() -> Bytes {
    let mut out = BytesMut::with_capacity(1);
    Done.encode(&mut out);
    out.freeze()
}

impl DmpService {
    /// A service with `config`'s settings and declarations.
    pub fn new(config: DmpConfig) -> Self {
        DmpService {
            id: NEXT_SERVICE.fetch_add(1, Ordering::Relaxed),
            config: Arc::new(config),
        }
    }

    /// Checks the settings and the configuration's declarations (names, patterns,
    /// limits) before a server starts with them.
    pub fn check(&self) -> Result<(), String> {
        self.config.validate()?;
        Broker::new(Arc::clone(&self.config))
            .map(drop)
            .map_err(|r| r.text)
    }

    /// The runtime service to add to a server.
    pub fn service(&self) -> Service {
        let mut service = Service::new("dmp");
        let handle = |service: Service, kind: WiringKind, name: &str, run: WiringFn| {
            let (id, config) = (self.id, Arc::clone(&self.config));
            service.handler(exchange::of(kind), name, move |ctx, body| {
                let broker = registry::broker(id, &config).map_err(|r| refusal_exception(&r))?;
                let mut broker = broker.borrow_mut();
                let answer = run(&mut broker, &requester(ctx), &body);
                let answer = answer.map_err(|r| refusal_exception(&r));
                // A delete or an unbind may free connections that wait.
                wake_all(&mut broker);
                answer
            })
        };
        service = handle(
            service,
            WiringKind::DeclareSink,
            "dmp.declare-sink",
            declare_sink,
        );
        service = handle(
            service,
            WiringKind::DeclareFeed,
            "dmp.declare-feed",
            declare_feed,
        );
        service = handle(service, WiringKind::Delete, "dmp.delete", delete);
        service = handle(service, WiringKind::Bind, "dmp.bind", bind);
        service = handle(service, WiringKind::Unbind, "dmp.unbind", unbind);
        service = handle(service, WiringKind::Put, "dmp.put", put);
        service = handle(service, WiringKind::Get, "dmp.get", get);
        let (id, config) = (self.id, Arc::clone(&self.config));
        service = service.handler(exchange::STATS, "dmp.stats", move |_, _| {
            let broker = registry::broker(id, &config).map_err(|r| refusal_exception(&r))?;
            let stats = broker.borrow().stats();
            let json = serde_json::to_vec(&stats).map_err(|e| {
                HandlerError::Exception(RemoteException::new("dmp.INTERNAL-ERROR", e.to_string()))
            })?;
            Ok(Bytes::from(json))
        });
        service = service.on_nexus_end(move |nexus| {
            if let Some(broker) = registry::existing(id) {
                let mut broker = broker.borrow_mut();
                broker.nexus_ended(nexus.0);
                wake_all(&mut broker);
            }
        });
        let config = Arc::clone(&self.config);
        let factory: DirectFactory = Arc::new(move || match registry::broker(id, &config) {
            Ok(broker) => Box::new(DirectConn::new(broker)),
            Err(refusal) => Box::new(crate::direct::Refused::new(refusal)),
        });
        service.direct_protocol(hawser_wire::dmp::Preamble::MAGIC, factory)
    }

    /// The broker's figures (run on the server's shard: call it from a handler or a
    /// task there; `None` elsewhere or before the broker's first use).
    pub fn stats_here(&self) -> Option<BrokerStats> {
        registry::existing(self.id).map(|b| b.borrow().stats())
    }
}

/// Hands the broker's wake-ups to the shard.
fn wake_all(broker: &mut Broker) {
    let mut wakes = Vec::new();
    broker.take_wakes(&mut wakes);
    for conn in wakes {
        hawser_runtime::direct::wake_connection(conn);
    }
}

type WiringFn = fn(&mut Broker, &Requester, &[u8]) -> Result<Bytes, Refusal>;

fn declared(created: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(2);
    Declared { created }.encode(&mut out);
    out.freeze()
}

fn declare_sink(b: &mut Broker, who: &Requester, body: &[u8]) -> Result<Bytes, Refusal> {
    let m = DeclareSink::decode(body).map_err(malformed)?;
    Ok(declared(b.declare_sink(
        who,
        m.name.as_bytes(),
        m.durable,
    )?))
}

fn declare_feed(b: &mut Broker, who: &Requester, body: &[u8]) -> Result<Bytes, Refusal> {
    let m = DeclareFeed::decode(body).map_err(malformed)?;
    let name = m.name.as_bytes();
    let created = b.declare_feed(who, name, m.durable, m.policy, m.high_water, m.low_water)?;
    Ok(declared(created))
}

fn delete(b: &mut Broker, who: &Requester, body: &[u8]) -> Result<Bytes, Refusal> {
    let m = Delete::decode(body).map_err(malformed)?;
    b.delete(who, m.kind, m.name.as_bytes())?;
    Ok(done())
}

fn bind(b: &mut Broker, who: &Requester, body: &[u8]) -> Result<Bytes, Refusal> {
    let m = Bind::decode(body).map_err(malformed)?;
    let (feed, sink, pattern) = (m.feed.as_bytes(), m.sink.as_bytes(), m.pattern.as_bytes());
    b.bind(who, feed, sink, pattern)?;
    Ok(done())
}

fn unbind(b: &mut Broker, who: &Requester, body: &[u8]) -> Result<Bytes, Refusal> {
    let m = Unbind::decode(body).map_err(malformed)?;
    let (feed, sink, pattern) = (m.feed.as_bytes(), m.sink.as_bytes(), m.pattern.as_bytes());
    b.unbind(who, feed, sink, pattern)?;
    Ok(done())
}

fn put(b: &mut Broker, who: &Requester, body: &[u8]) -> Result<Bytes, Refusal> {
    let m = Put::decode(body).map_err(malformed)?;
    let lease = b.put(Instant::now(), who, m.sink.as_bytes())?;
    Ok(lease_reply(WiringKind::PutOk, &lease))
}

fn get(b: &mut Broker, who: &Requester, body: &[u8]) -> Result<Bytes, Refusal> {
    let m = Get::decode(body).map_err(malformed)?;
    let lease = b.get(Instant::now(), who, m.feed.as_bytes())?;
    Ok(lease_reply(WiringKind::GetOk, &lease))
}
