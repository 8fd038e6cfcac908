//! Who is at the other end of a connection, as the driver knows it: an IP address for a
//! network transport, the kernel's credentials of the peer process for a local one (a
//! Unix socket, shared memory set up over one). The server counts its per-source limits
//! by it, and `EXTERNAL` authentication takes a local peer's user id as proof.

use std::fmt;
use std::net::IpAddr;

/// The credentials the kernel reports for the process at the other end of a local
/// connection (`SO_PEERCRED`): what it was when it connected, not what it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalCredentials {
    /// Process id.
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// The peer of an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Peer {
    /// A network peer, by its IP address.
    Inet(IpAddr),
    /// A process on this host, by its kernel credentials.
    Local(LocalCredentials),
    /// The driver could not tell.
    #[default]
    Unknown,
}

impl Peer {
    /// The peer as limits, throttles and leases count it: an IPv4 peer reaching a
    /// dual-stack listener shows as `::ffff:a.b.c.d`, and is the IPv4 address it is.
    pub fn canonical(self) -> Peer {
        match self {
            Peer::Inet(IpAddr::V6(v6)) => {
                Peer::Inet(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
            }
            other => other,
        }
    }

    /// The local peer's credentials, if it is one.
    pub fn local(&self) -> Option<LocalCredentials> {
        match self {
            Peer::Local(creds) => Some(*creds),
            _ => None,
        }
    }
}

impl From<Option<IpAddr>> for Peer {
    fn from(ip: Option<IpAddr>) -> Self {
        ip.map_or(Peer::Unknown, Peer::Inet)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Inet(ip) => write!(f, "{ip}"),
            Peer::Local(c) => write!(f, "local uid {} (pid {})", c.uid, c.pid),
            Peer::Unknown => f.write_str("an unknown peer"),
        }
    }
}
