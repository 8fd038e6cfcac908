//! Remote paths as `push` and `pull` take them: `ADDRESS:PATH`, where ADDRESS is any
//! form [`Address`] parses (`host:dir`, `host:9000:dir`, `[::1]:9000:dir`,
//! `unix:///run/hawser.sock:dir`, `shm://replica:dir`), and the server addresses they
//! name: every address a host name resolves to, tried in turn by
//! [`first_reachable`](crate::connect::first_reachable).

use hawser_runtime::Address;

use crate::error::CliError;
use crate::security::tls_host;

/// Parses `ADDRESS:DEST`: the addresses and DEST relative to the target's root (a leading
/// `/` is dropped: it names the root).
pub fn parse_remote(spec: &str) -> Result<(Vec<Address>, String), CliError> {
    let (addresses, dest) = split_remote(spec, "DEST")?;
    Ok((addresses, dest.trim_start_matches('/').to_string()))
}

/// Splits `ADDRESS:PATH` into the addresses (every one a host name resolves to; TCP port
/// 8415 by default) and the path as written; `what` names the path in the usage error.
pub fn split_remote(spec: &str, what: &str) -> Result<(Vec<Address>, String), CliError> {
    let usage = |why: &str| {
        CliError::Usage(format!(
            "{spec:?} is not ADDRESS:{what} (HOST[:PORT]:{what}, unix:///PATH:{what}, \
             shm://NAME:{what}): {why}"
        ))
    };
    let (addresses, path) = Address::parse_remote_all(spec).map_err(|e| usage(&e.why))?;
    if addresses.is_empty() {
        return Err(usage("no address"));
    }
    Ok((addresses, path))
}

/// The host of `spec` as certificates and messages name it (see [`tls_host`]), from the
/// first of the `addresses` it resolves to.
pub fn host_of(spec: &str, addresses: &[Address]) -> String {
    match addresses.first() {
        Some(first) => tls_host(spec, first),
        None => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_name_the_server_and_the_path() {
        let (addresses, dest) = parse_remote("127.0.0.1:/dataset").unwrap();
        assert_eq!(addresses, [Address::parse("127.0.0.1:8415").unwrap()]);
        assert_eq!(dest, "dataset");
        let (addresses, dest) = parse_remote("unix:///run/h.sock:/backup").unwrap();
        assert_eq!(addresses, [Address::Unix("/run/h.sock".into())]);
        assert_eq!(dest, "backup");
        let e = split_remote("127.0.0.1", "SRC").unwrap_err();
        assert!(e.to_string().contains("not ADDRESS:SRC"), "{e}");
    }
}
