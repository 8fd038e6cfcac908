//! Remote paths as `push` and `pull` take them: `HOST[:PORT]:PATH` (`[v6]:PORT:PATH` for
//! IPv6), and the server address they name.

use std::net::{SocketAddr, ToSocketAddrs};

use hawser_runtime::DEFAULT_PORT;

use crate::error::CliError;

/// Parses `HOST[:PORT]:DEST` (`[v6]:PORT:DEST` for IPv6): the address and DEST relative
/// to the target's root (a leading `/` is dropped: it names the root).
pub fn parse_remote(spec: &str) -> Result<(String, u16, String), CliError> {
    let (host, port, dest) = split_remote(spec, "DEST")?;
    Ok((host, port, dest.trim_start_matches('/').to_string()))
}

/// Splits `HOST[:PORT]:PATH` (`[v6]:PORT:PATH` for IPv6) into host, port (8415 by
/// default) and the path as written; `what` names the path in the usage error.
pub fn split_remote(spec: &str, what: &str) -> Result<(String, u16, String), CliError> {
    let bad = || CliError::Usage(format!("{spec:?} is not HOST[:PORT]:{what}"));
    let (host, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (host, rest) = after.split_once(']').ok_or_else(bad)?;
        (host.to_string(), rest.strip_prefix(':').ok_or_else(bad)?)
    } else {
        let (host, rest) = spec.split_once(':').ok_or_else(bad)?;
        (host.to_string(), rest)
    };
    if host.is_empty() {
        return Err(bad());
    }
    let (port, path) = match rest.split_once(':') {
        Some((port, path)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (port.parse().map_err(|_| bad())?, path)
        }
        _ => (DEFAULT_PORT, rest),
    };
    Ok((host, port, path.to_string()))
}

/// The first address `host` resolves to, with `port`.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, CliError> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| CliError::Usage(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| CliError::Usage(format!("{host} has no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(spec: &str) -> (String, u16, String) {
        split_remote(spec, "DEST").expect("a remote path")
    }

    #[test]
    fn remote_paths_split_into_host_port_and_path() {
        let owned = |h: &str, p, d: &str| (h.to_string(), p, d.to_string());
        assert_eq!(split("host:dir/a"), owned("host", DEFAULT_PORT, "dir/a"));
        assert_eq!(split("host:9000:dir"), owned("host", 9000, "dir"));
        assert_eq!(split("[::1]:9000:dir"), owned("::1", 9000, "dir"));
        assert_eq!(split("[::1]:dir"), owned("::1", DEFAULT_PORT, "dir"));
        assert_eq!(split("host:"), owned("host", DEFAULT_PORT, ""));
        // A path that starts with something other than digits is not a port.
        assert_eq!(split("host:v1:x"), owned("host", DEFAULT_PORT, "v1:x"));
        for bad in ["host", ":dir", "[::1]dir", "[::1", "host:99999:dir"] {
            assert!(
                matches!(split_remote(bad, "DEST"), Err(CliError::Usage(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_remote("host:/dataset").unwrap(),
            owned("host", DEFAULT_PORT, "dataset")
        );
    }
}
