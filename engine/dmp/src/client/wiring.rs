//! The wiring calls over a nexus: declare, delete, bind, unbind, and leases for direct
//! connections (the Direct class's Put and Get).

use bytes::{Bytes, BytesMut};
use hawser_runtime::Client;
use hawser_wire::dmp::ShortStr;
use hawser_wire::dmp::wiring::{
    Bind, DeclareFeed, DeclareSink, Declared, Delete, Done, EntityKind, FlowPolicy, Get, GetOk,
    Put, PutOk, Unbind, WiringKind,
};

use super::dialog::DirectOptions;
use super::{Consumer, DmpError, Publisher};
use crate::service::exchange;

/// Wiring calls on a client's nexus.
#[derive(Debug, Clone, Copy)]
pub struct Wiring<'a> {
    client: &'a Client,
}

fn short(text: &str) -> Result<ShortStr<'_>, DmpError> {
    ShortStr::text(text).ok_or_else(|| DmpError::Refused {
        code: hawser_wire::dmp::ResponseCode::SyntaxError,
        text: format!("\"{text}\" is longer than 255 bytes"),
    })
}

fn answer_error(e: impl std::fmt::Display) -> DmpError {
    DmpError::Protocol(format!("malformed wiring answer: {e}"))
}

impl<'a> Wiring<'a> {
    /// Wiring over `client`'s nexus.
    pub fn new(client: &'a Client) -> Self {
        Wiring { client }
    }

    fn call(&self, kind: WiringKind, body: BytesMut) -> Result<Bytes, DmpError> {
        Ok(self.client.call(exchange::of(kind), body.freeze())?)
    }

    /// Declares a sink; true if it was made (false: it existed alike). A sink that is not
    /// `durable` goes when this client's last connection closes.
    pub fn declare_sink(&self, name: &str, durable: bool) -> Result<bool, DmpError> {
        let mut body = BytesMut::new();
        DeclareSink {
            name: short(name)?,
            durable,
        }
        .encode(&mut body);
        let answer = self.call(WiringKind::DeclareSink, body)?;
        Ok(Declared::decode(&answer).map_err(answer_error)?.created)
    }

    /// Declares a feed (0 water marks: the server's defaults); true if it was made.
    pub fn declare_feed(
        &self,
        name: &str,
        durable: bool,
        policy: FlowPolicy,
        high_water: u64,
        low_water: u64,
    ) -> Result<bool, DmpError> {
        let mut body = BytesMut::new();
        DeclareFeed {
            name: short(name)?,
            durable,
            policy,
            high_water,
            low_water,
        }
        .encode(&mut body);
        let answer = self.call(WiringKind::DeclareFeed, body)?;
        Ok(Declared::decode(&answer).map_err(answer_error)?.created)
    }

    /// Deletes a sink or a feed this identity declared.
    pub fn delete(&self, kind: EntityKind, name: &str) -> Result<(), DmpError> {
        let mut body = BytesMut::new();
        Delete {
            kind,
            name: short(name)?,
        }
        .encode(&mut body);
        let answer = self.call(WiringKind::Delete, body)?;
        Done::decode(&answer).map_err(answer_error)?;
        Ok(())
    }

    /// Routes the sink's messages whose routing key `pattern` matches to the feed.
    pub fn bind(&self, feed: &str, sink: &str, pattern: &str) -> Result<(), DmpError> {
        let mut body = BytesMut::new();
        Bind {
            feed: short(feed)?,
            sink: short(sink)?,
            pattern: short(pattern)?,
        }
        .encode(&mut body);
        let answer = self.call(WiringKind::Bind, body)?;
        Done::decode(&answer).map_err(answer_error)?;
        Ok(())
    }

    /// Removes a binding.
    pub fn unbind(&self, feed: &str, sink: &str, pattern: &str) -> Result<(), DmpError> {
        let mut body = BytesMut::new();
        Unbind {
            feed: short(feed)?,
            sink: short(sink)?,
            pattern: short(pattern)?,
        }
        .encode(&mut body);
        let answer = self.call(WiringKind::Unbind, body)?;
        Done::decode(&answer).map_err(answer_error)?;
        Ok(())
    }

    /// `Direct.Put`: a lease for one publishing connection to `sink`.
    pub fn put(&self, sink: &str) -> Result<String, DmpError> {
        let mut body = BytesMut::new();
        Put { sink: short(sink)? }.encode(&mut body);
        let answer = self.call(WiringKind::Put, body)?;
        let ok = PutOk::decode(&answer).map_err(answer_error)?;
        Ok(String::from_utf8_lossy(ok.lease.as_bytes()).into_owned())
    }

    /// `Direct.Get`: a lease for the consuming connection of `feed`.
    pub fn get(&self, feed: &str) -> Result<String, DmpError> {
        let mut body = BytesMut::new();
        Get { feed: short(feed)? }.encode(&mut body);
        let answer = self.call(WiringKind::Get, body)?;
        let ok = GetOk::decode(&answer).map_err(answer_error)?;
        Ok(String::from_utf8_lossy(ok.lease.as_bytes()).into_owned())
    }

    /// The server broker's figures (sinks, feeds with their queues and counters).
    pub fn stats(&self) -> Result<crate::broker::BrokerStats, DmpError> {
        let answer = self.client.call(exchange::STATS, Bytes::new())?;
        serde_json::from_slice(&answer).map_err(answer_error)
    }

    /// Asks for a lease and opens a publishing connection to `sink` on the server's
    /// address.
    pub fn publisher(&self, sink: &str, options: DirectOptions) -> Result<Publisher, DmpError> {
        let lease = self.put(sink)?;
        Publisher::open(self.client.server_address(), &lease, sink, options)
    }

    /// Asks for a lease and opens the consuming connection of `feed`.
    pub fn consumer(&self, feed: &str, options: DirectOptions) -> Result<Consumer, DmpError> {
        let lease = self.get(feed)?;
        Consumer::open(self.client.server_address(), &lease, options)
    }
}
