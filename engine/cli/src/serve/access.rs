//! Who may connect to a server `hawser serve` or `hawser bench --serve` starts: a server
//! that would refuse every client does not start.

use std::net::ToSocketAddrs;

use hawser_runtime::anonymous_allowed;

use crate::error::CliError;

/// Refuses to start a server that would refuse every client: one without secrets that
/// does not accept anonymous clients either (by default, one listening on a non-loopback
/// address). `what` names the command for the advice.
pub fn check_someone_may_connect(
    listen: &str,
    allow_anonymous: Option<bool>,
    has_secrets: bool,
    what: &str,
) -> Result<(), CliError> {
    let ip = listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip());
    let Some(ip) = ip else {
        return Ok(()); // binding reports the bad address
    };
    if has_secrets || anonymous_allowed(allow_anonymous, has_secrets, ip) {
        return Ok(());
    }
    let advice = if what == "serve" {
        "give clients identities (a [secrets] table in --config; they connect with --identity \
         and --secret-file), or accept anonymous clients with --allow-anonymous \
         (allow_anonymous = true in the config file)"
    } else {
        "accept anonymous clients with --allow-anonymous, or listen on a loopback address"
    };
    let why = if ip.is_loopback() {
        "anonymous clients are refused"
    } else {
        "anonymous clients are refused on an address other machines can reach"
    };
    Err(CliError::Usage(format!(
        "hawser {what} would refuse every client on {listen}: it has no secrets, and {why}; \
         {advice}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_would_refuse_everyone_does_not_start() {
        let refused = check_someone_may_connect("0.0.0.0:8415", None, false, "serve");
        assert!(
            matches!(&refused, Err(CliError::Usage(text)) if text.contains("--allow-anonymous")),
            "{refused:?}"
        );
        assert!(check_someone_may_connect("127.0.0.1:0", None, false, "serve").is_ok());
        assert!(check_someone_may_connect("0.0.0.0:8415", Some(true), false, "serve").is_ok());
        assert!(check_someone_may_connect("0.0.0.0:8415", None, true, "serve").is_ok());
        assert!(check_someone_may_connect("127.0.0.1:0", Some(false), false, "bench").is_err());
    }
}
