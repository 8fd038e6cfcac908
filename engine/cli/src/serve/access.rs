//! Who may connect to a server `hawser serve` or `hawser bench --serve` starts: a server
//! that would refuse every client does not start.

use hawser_runtime::{Address, anonymous_allowed};

use crate::error::CliError;

/// Refuses to start a server that would refuse every client: one without credentials
/// (users, peer uids) that does not accept anonymous clients either (by default, one
/// listening on an address other machines can reach). `what` names the command for the
/// advice.
pub fn check_someone_may_connect(
    listen: &[Address],
    allow_anonymous: Option<bool>,
    has_credentials: bool,
    what: &str,
) -> Result<(), CliError> {
    if has_credentials || anonymous_allowed(allow_anonymous, has_credentials, listen) {
        return Ok(());
    }
    let advice = if what == "serve" {
        "give clients identities ([users] entries from `hawser passwd` in --config; they \
         connect with --identity and --secret-file or HAWSER_PASSWORD), or accept anonymous clients with --allow-anonymous \
         (allow_anonymous = true in the config file)"
    } else {
        "accept anonymous clients with --allow-anonymous, or listen on a loopback address"
    };
    let why = if listen.iter().all(Address::is_local) {
        "anonymous clients are refused"
    } else {
        "anonymous clients are refused on an address other machines can reach"
    };
    let shown: Vec<String> = listen.iter().map(shown_address).collect();
    Err(CliError::Usage(format!(
        "hawser {what} would refuse every client on {}: it has no users, and {why}; \
         {advice}",
        shown.join(", ")
    )))
}

/// An address as clients type it: TCP as `HOST:PORT` (the default transport), the others
/// with their scheme.
pub fn shown_address(address: &Address) -> String {
    match address {
        Address::Tcp(addr) => addr.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        listen: &str,
        allow: Option<bool>,
        has_credentials: bool,
        what: &str,
    ) -> Result<(), CliError> {
        let addresses: Vec<Address> = listen
            .split(',')
            .map(|a| Address::parse(a).unwrap())
            .collect();
        check_someone_may_connect(&addresses, allow, has_credentials, what)
    }

    #[test]
    fn a_server_that_would_refuse_everyone_does_not_start() {
        let refused = check("0.0.0.0:8415", None, false, "serve");
        assert!(
            matches!(&refused, Err(CliError::Usage(text)) if text.contains("--allow-anonymous")),
            "{refused:?}"
        );
        assert!(check("127.0.0.1:0", None, false, "serve").is_ok());
        assert!(check("unix:///tmp/x.sock,shm://x", None, false, "serve").is_ok());
        assert!(check("unix:///tmp/x.sock,0.0.0.0:1", None, false, "serve").is_err());
        assert!(check("0.0.0.0:8415", Some(true), false, "serve").is_ok());
        assert!(check("0.0.0.0:8415", None, true, "serve").is_ok());
        assert!(check("127.0.0.1:0", Some(false), false, "bench").is_err());
    }
}
