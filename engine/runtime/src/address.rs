//! Addresses that name their transport: `tcp://host:port` (the default: a bare
//! `host:port` is TCP), `unix:///path/to/socket`, `shm://name` (or `shm:///path`) and
//! `udp://host:port`. One parser for every command that takes an address.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::server::DEFAULT_PORT;

/// Where `shm://NAME` addresses meet: the rendezvous socket of `shm://replica` is
/// `/dev/shm/hawser-replica.sock` (a directory every local user and container sharing
/// the host's IPC can reach; its sticky bit keeps one user from removing another's).
pub const SHM_DIR: &str = "/dev/shm";
const SHM_PREFIX: &str = "hawser-";
const SHM_SUFFIX: &str = ".sock";
/// Longest `shm://NAME`.
const MAX_SHM_NAME: usize = 64;

/// A transport and where on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP socket address.
    Tcp(SocketAddr),
    /// A Unix stream socket's path.
    Unix(PathBuf),
    /// Shared-memory rings set up over a Unix socket at this path (the rendezvous).
    Shm(PathBuf),
    /// A UDP socket address (datagrams: DTP's data path).
    Udp(SocketAddr),
}

/// An address that does not parse or resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not an address: {why} (forms: HOST:PORT, tcp://HOST:PORT, unix:///PATH, shm://NAME, shm:///PATH, udp://HOST:PORT)"
)]
pub struct AddressError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

fn error(text: &str, why: impl Into<String>) -> AddressError {
    AddressError {
        text: text.to_owned(),
        why: why.into(),
    }
}

impl Address {
    /// Parses an address, resolving a host name (the first address it resolves to).
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        match Self::parse_with_path(text, false)? {
            (mut addresses, None) => Ok(addresses.swap_remove(0)),
            (_, Some(_)) => Err(error(text, "trailing text after the address")),
        }
    }

    /// Parses `ADDRESS:PATH` as `push` and `pull` take it (`host:dir`, `host:9000:dir`,
    /// `[::1]:9000:dir`, `tcp://host:9000:dir`, `unix:///run/hawser.sock:dir`,
    /// `shm://replica:dir`): the address and the path as written. A TCP address without
    /// a port takes the default one; a Unix or shared-memory path ends at the first `:`.
    pub fn parse_remote(spec: &str) -> Result<(Address, String), AddressError> {
        let (mut addresses, path) = Self::parse_remote_all(spec)?;
        Ok((addresses.swap_remove(0), path))
    }

    /// [`parse_remote`](Self::parse_remote) with every address a host name resolves to,
    /// in the resolver's order and never empty (`localhost` may be `::1` then
    /// `127.0.0.1`), for a client that tries each in turn.
    pub fn parse_remote_all(spec: &str) -> Result<(Vec<Address>, String), AddressError> {
        match Self::parse_with_path(spec, true)? {
            (addresses, Some(path)) => Ok((addresses, path)),
            (_, None) => Err(error(spec, "no `:PATH` after the address")),
        }
    }

    /// The addresses `text` names (several when a host name resolves to several; never
    /// none) and the path after them when `with_path`.
    fn parse_with_path(
        text: &str,
        with_path: bool,
    ) -> Result<(Vec<Address>, Option<String>), AddressError> {
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("tcp", text),
        };
        match scheme {
            "tcp" => {
                let (addrs, path) = parse_inet(text, rest, with_path)?;
                Ok((addrs.into_iter().map(Address::Tcp).collect(), path))
            }
            "udp" => {
                let (addrs, path) = parse_inet(text, rest, with_path)?;
                Ok((addrs.into_iter().map(Address::Udp).collect(), path))
            }
            "unix" => {
                let (path, after) = split_path(text, rest, with_path)?;
                if !path.starts_with('/') {
                    return Err(error(
                        text,
                        "a Unix socket path must be absolute (unix:///PATH)",
                    ));
                }
                Ok((vec![Address::Unix(PathBuf::from(path))], after))
            }
            "shm" => {
                let (name, after) = split_path(text, rest, with_path)?;
                let path = if name.starts_with('/') {
                    PathBuf::from(name)
                } else {
                    shm_path(text, name)?
                };
                Ok((vec![Address::Shm(path)], after))
            }
            other => Err(error(
                text,
                format!("unknown transport {other:?} (tcp, unix, shm or udp)"),
            )),
        }
    }

    /// The scheme naming the transport (`tcp`, `unix`, `shm`, `udp`).
    pub fn scheme(&self) -> &'static str {
        match self {
            Address::Tcp(_) => "tcp",
            Address::Unix(_) => "unix",
            Address::Shm(_) => "shm",
            Address::Udp(_) => "udp",
        }
    }

    /// Whether only this host can reach it: a loopback IP address, a Unix socket, shared
    /// memory.
    pub fn is_local(&self) -> bool {
        match self {
            Address::Tcp(a) | Address::Udp(a) => a.ip().is_loopback(),
            Address::Unix(_) | Address::Shm(_) => true,
        }
    }

    /// The socket address of a TCP or UDP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Address::Tcp(a) | Address::Udp(a) => Some(*a),
            Address::Unix(_) | Address::Shm(_) => None,
        }
    }

    /// The file-system path of a Unix or shared-memory address (the rendezvous socket).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Address::Unix(p) | Address::Shm(p) => Some(p),
            Address::Tcp(_) | Address::Udp(_) => None,
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Tcp(addr)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "tcp://{a}"),
            Address::Udp(a) => write!(f, "udp://{a}"),
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Shm(p) => match shm_name(p) {
                Some(name) => write!(f, "shm://{name}"),
                None => write!(f, "shm://{}", p.display()),
            },
        }
    }
}

/// `host[:port]` (`[v6][:port]`), then `:path` when `with_path`: every address the host
/// resolves to, and the path.
fn parse_inet(
    text: &str,
    rest: &str,
    with_path: bool,
) -> Result<(Vec<SocketAddr>, Option<String>), AddressError> {
    let (host, after_host) = if let Some(after) = rest.strip_prefix('[') {
        let (host, after) = after
            .split_once(']')
            .ok_or_else(|| error(text, "an IPv6 address needs its closing `]`"))?;
        (host, after)
    } else {
        match rest.find(':') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        }
    };
    if host.is_empty() {
        return Err(error(text, "no host"));
    }
    let (port, path) = match after_host.strip_prefix(':') {
        None if after_host.is_empty() => (DEFAULT_PORT, None),
        None => {
            return Err(error(
                text,
                format!("unexpected {after_host:?} after the host"),
            ));
        }
        Some(tail) => {
            let (first, second) = match tail.split_once(':') {
                Some((a, b)) => (a, Some(b)),
                None => (tail, None),
            };
            let is_port = !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit());
            match (with_path, is_port, second) {
                (_, true, second) => {
                    let port = first
                        .parse::<u16>()
                        .map_err(|_| error(text, format!("port {first} is out of range")))?;
                    if !with_path && second.is_some() {
                        return Err(error(text, "trailing text after the port"));
                    }
                    (port, second.map(str::to_owned))
                }
                // `host:dir` (what follows is not a port): the default port.
                (true, false, _) => (DEFAULT_PORT, Some(tail.to_owned())),
                (false, false, _) => return Err(error(text, format!("{first:?} is not a port"))),
            }
        }
    };
    if with_path && path.is_none() {
        return Ok((resolve(text, host, port)?, None));
    }
    Ok((resolve(text, host, port)?, path))
}

/// Most addresses kept of one host name: a client tries each in turn.
const MAX_RESOLVED: usize = 16;

/// Every address of `host` (an IP address is its own), in the resolver's order, without
/// repeats; never empty.
fn resolve(text: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, AddressError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut addrs = Vec::new();
    for addr in (host, port)
        .to_socket_addrs()
        .map_err(|e| error(text, format!("cannot resolve {host}: {e}")))?
    {
        if !addrs.contains(&addr) && addrs.len() < MAX_RESOLVED {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(error(text, format!("{host} has no address")));
    }
    Ok(addrs)
}

/// A path (or shm name) up to the first `:` when a `:PATH` follows.
fn split_path<'a>(
    text: &str,
    rest: &'a str,
    with_path: bool,
) -> Result<(&'a str, Option<String>), AddressError> {
    let (path, after) = match (with_path, rest.split_once(':')) {
        (true, Some((path, after))) => (path, Some(after.to_owned())),
        _ => (rest, None),
    };
    if path.is_empty() {
        return Err(error(text, "no path"));
    }
    if path.contains('\0') {
        return Err(error(text, "a path cannot hold a NUL byte"));
    }
    Ok((path, after))
}

/// The rendezvous path of `shm://name`.
fn shm_path(text: &str, name: &str) -> Result<PathBuf, AddressError> {
    let valid = name.len() <= MAX_SHM_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.');
    if !valid {
        return Err(error(
            text,
            format!(
                "a shared-memory name is 1 to {MAX_SHM_NAME} letters, digits, `-`, `_` or `.` \
                 (or an absolute path: shm:///PATH)"
            ),
        ));
    }
    Ok(Path::new(SHM_DIR).join(format!("{SHM_PREFIX}{name}{SHM_SUFFIX}")))
}

/// The name `shm://NAME` of a rendezvous path, if it is one.
fn shm_name(path: &Path) -> Option<&str> {
    if path.parent()? != Path::new(SHM_DIR) {
        return None;
    }
    path.file_name()?
        .to_str()?
        .strip_prefix(SHM_PREFIX)?
        .strip_suffix(SHM_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> Address {
        Address::Tcp(s.parse().unwrap())
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        assert_eq!(
            Address::parse("127.0.0.1:9000").unwrap(),
            tcp("127.0.0.1:9000")
        );
        assert_eq!(Address::parse("127.0.0.1").unwrap(), tcp("127.0.0.1:8415"));
        assert_eq!(Address::parse("tcp://[::1]:9").unwrap(), tcp("[::1]:9"));
        assert_eq!(
            Address::parse("udp://127.0.0.1:7").unwrap(),
            Address::Udp("127.0.0.1:7".parse().unwrap())
        );
        let unix = Address::parse("unix:///run/hawser.sock").unwrap();
        assert_eq!(unix, Address::Unix("/run/hawser.sock".into()));
        let shm = Address::parse("shm://replica").unwrap();
        assert_eq!(shm, Address::Shm("/dev/shm/hawser-replica.sock".into()));
        let shm_path = Address::parse("shm:///tmp/x.sock").unwrap();
        assert_eq!(shm_path, Address::Shm("/tmp/x.sock".into()));
        for a in [&unix, &shm, &shm_path, &tcp("[::1]:9"), &tcp("10.0.0.1:1")] {
            assert_eq!(&Address::parse(&a.to_string()).unwrap(), a, "{a}");
        }
        assert_eq!(shm.to_string(), "shm://replica");
        assert!(shm.is_local() && unix.is_local() && tcp("127.0.0.1:1").is_local());
        assert!(!tcp("192.0.2.1:1").is_local());
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        for (bad, why) in [
            ("sctp://h:1", "unknown transport"),
            ("unix://relative.sock", "absolute"),
            ("shm://a/b", "shared-memory name"),
            ("shm://", "no path"),
            ("tcp://:1", "no host"),
            ("127.0.0.1:99999", "out of range"),
            ("127.0.0.1:80:x", "trailing"),
            ("[::1", "closing"),
        ] {
            let e = Address::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn remote_specs_split_into_address_and_path() {
        let remote = |s: &str| Address::parse_remote(s).unwrap();
        assert_eq!(
            remote("127.0.0.1:dir/a"),
            (tcp("127.0.0.1:8415"), "dir/a".into())
        );
        assert_eq!(
            remote("127.0.0.1:9000:dir"),
            (tcp("127.0.0.1:9000"), "dir".into())
        );
        assert_eq!(remote("[::1]:9000:dir"), (tcp("[::1]:9000"), "dir".into()));
        assert_eq!(remote("[::1]:dir"), (tcp("[::1]:8415"), "dir".into()));
        assert_eq!(remote("127.0.0.1:"), (tcp("127.0.0.1:8415"), "".into()));
        // A host name keeps every address it resolves to, each once, the path after them.
        let (all, path) = Address::parse_remote_all("localhost:9000:dir").unwrap();
        assert!(!all.is_empty() && path == "dir", "{all:?}");
        assert!(
            all.iter()
                .all(|a| a.is_local() && a.socket_addr().unwrap().port() == 9000)
        );
        assert!(all.iter().enumerate().all(|(i, a)| !all[..i].contains(a)));
        assert_eq!(
            remote("127.0.0.1:v1:x"),
            (tcp("127.0.0.1:8415"), "v1:x".into())
        );
        assert_eq!(
            remote("tcp://127.0.0.1:9000:backup"),
            (tcp("127.0.0.1:9000"), "backup".into())
        );
        assert_eq!(
            remote("unix:///run/hawser.sock:backup"),
            (Address::Unix("/run/hawser.sock".into()), "backup".into())
        );
        assert_eq!(
            remote("shm://replica:backup/x"),
            (
                Address::Shm("/dev/shm/hawser-replica.sock".into()),
                "backup/x".into()
            )
        );
        for bad in [
            "host",
            ":dir",
            "[::1]dir",
            "[::1",
            "127.0.0.1:99999:dir",
            "unix:///x",
        ] {
            assert!(Address::parse_remote(bad).is_err(), "{bad:?}");
        }
    }
}
