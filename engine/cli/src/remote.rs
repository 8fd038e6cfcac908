//! Remote paths as `push` and `pull` take them: `ADDRESS:PATH`, where ADDRESS is any
//! form [`Address`] parses (`host:dir`, `host:9000:dir`, `[::1]:9000:dir`,
//! `unix:///run/hawser.sock:dir`, `shm://replica:dir`), and the server address they name.

use hawser_runtime::Address;

use crate::error::CliError;

/// Parses `ADDRESS:DEST`: the address and DEST relative to the target's root (a leading
/// `/` is dropped: it names the root).
pub fn parse_remote(spec: &str) -> Result<(Address, String), CliError> {
    let (address, dest) = split_remote(spec, "DEST")?;
    Ok((address, dest.trim_start_matches('/').to_string()))
}

/// Splits `ADDRESS:PATH` into the address (TCP port 8415 by default) and the path as
/// written; `what` names the path in the usage error.
pub fn split_remote(spec: &str, what: &str) -> Result<(Address, String), CliError> {
    Address::parse_remote(spec).map_err(|e| {
        CliError::Usage(format!(
            "{spec:?} is not ADDRESS:{what} (HOST[:PORT]:{what}, unix:///PATH:{what}, \
             shm://NAME:{what}): {}",
            e.why
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_name_the_server_and_the_path() {
        let (address, dest) = parse_remote("127.0.0.1:/dataset").unwrap();
        assert_eq!(address, Address::parse("127.0.0.1:8415").unwrap());
        assert_eq!(dest, "dataset");
        let (address, dest) = parse_remote("unix:///run/h.sock:/backup").unwrap();
        assert_eq!(address, Address::Unix("/run/h.sock".into()));
        assert_eq!(dest, "backup");
        let e = split_remote("127.0.0.1", "SRC").unwrap_err();
        assert!(e.to_string().contains("not ADDRESS:SRC"), "{e}");
    }
}
