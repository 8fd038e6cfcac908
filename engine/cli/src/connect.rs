//! Connecting a job's client to a server: a probe first (a refused connection is
//! reported at once, and its connect time is the round trip the window is sized from),
//! the session's options from the job's, the wait for the trunk, and the nexus record
//! that lets the next run replace this one's session if this one is killed.

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hawser_replicate::proto::{BLOCK_HEADER_LEN, CompressPolicy};
use hawser_replicate::service::max_request_size;
use hawser_runtime::{Address, ApiError, Client, ClientOptions, Service};

use crate::error::CliError;
use crate::job_args::JobArgs;
use crate::nexus_record::{self, Previous};
use crate::security::client_password;

/// Connects to `addr` (named `host` in certificates, see
/// [`tls_host`](crate::security::tls_host)) as `job` says.
/// Returns the client and the probe's connect time (one round trip, for
/// [`crate::window::auto_window`]).
pub fn connect(
    addr: &Address,
    host: &str,
    job: &JobArgs,
    block_size: u32,
) -> Result<(Client, Duration), CliError> {
    connect_serving(addr, host, job, block_size, None)
}

/// [`connect`], serving `backchannel` to the server (a pull's target).
pub fn connect_serving(
    addr: &Address,
    host: &str,
    job: &JobArgs,
    block_size: u32,
    backchannel: Option<Service>,
) -> Result<(Client, Duration), CliError> {
    // DSP (over TLS) on udp:// is refused in words before anything is sent.
    let security = &job.security;
    hawser_runtime::transport::ProtocolStack::session(addr, security.wants_tls())
        .map_err(|e| CliError::Usage(format!("{addr}: {e}")))?;
    let tls = security.client_tls(host)?;
    let login = job
        .identity
        .as_ref()
        .filter(|_| !job.external)
        .map(|identity| format!("{identity}@{host}"));
    let password = client_password(job.secret_file.as_deref(), login.as_deref())?;
    let rtt = probe(addr)?;
    let mut config = ClientOptions {
        connections: job.connections.max(1),
        // Blocks carry their own xxh3 and files an end-to-end xxh3-128: a frame digest
        // adds nothing the job does not check already.
        digest: false,
        // The task sends blocks as they are; lz4 happens per session frame, where the
        // session finds it pays (the policy's auto and lz4 both turn it on).
        compression: job.compress != CompressPolicy::Off,
        password,
        tls,
        sasl_mechanism: security.sasl_mechanism,
        external: job.external,
        max_request_size: max_request_size(block_size),
        // A pull's blocks arrive on the backchannel: aligned for the direct writes.
        align_backchannel_bodies_at: backchannel.is_some().then_some(BLOCK_HEADER_LEN),
        backchannel,
        tcp_congestion: job.congestion.clone(),
        ..ClientOptions::default()
    };
    if let Some(name) = &job.congestion {
        hawser_shards::check_congestion_control(name)
            .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    if let Some(identity) = &job.identity {
        config.identity = identity.clone();
    }
    // A nexus a killed run of this identity left behind is replaced, not waited for.
    let previous = match (&job.identity, nexus_record::record_dir()) {
        (Some(identity), Some(dir)) => nexus_record::previous_in(&dir, addr, identity),
        _ => Previous::None,
    };
    config.replace_nexus = job.replace_nexus.or(match previous {
        Previous::Abandoned(nexus) => Some(nexus),
        Previous::None | Previous::InUse(_) => None,
    });
    if let Some(nexus) = config.replace_nexus {
        tracing::info!(server = %addr, %nexus, "replacing the session an earlier run left");
    }
    let client = Client::connect_to(addr, config).map_err(|e| held_advice(e, job, previous))?;
    if let (Some(identity), Some(dir), Some(nexus)) =
        (&job.identity, nexus_record::record_dir(), client.nexus())
        && let Err(e) = nexus_record::remember_in(&dir, addr, identity, nexus)
    {
        tracing::warn!(
            "cannot record the session in {}: {e} (if this run is killed, the next one may \
             have to wait for the server to let its session go)",
            dir.display()
        );
    }
    // Blocks go to the connections bound when they are sent: wait for the trunk, or the
    // first window would all ride on the leading connection (on a lossy long path that
    // is one loss-limited stream for the whole first window). A connection that has not
    // joined by then (a lost SYN costs a second) takes later blocks.
    let wanted = job.connections.max(1);
    let wait = (rtt * 20).clamp(Duration::from_millis(500), Duration::from_secs(3));
    let joined = client.wait_for_trunk(wanted, wait);
    if joined < wanted {
        tracing::info!(
            server = %addr,
            joined,
            wanted,
            "starting before the whole trunk joined; the other connections take later blocks"
        );
    }
    Ok((client, rtt))
}

/// The first of `candidates` (the addresses one host name resolves to, in order) that
/// accepts a connection, so that `localhost` reaches a server listening on 127.0.0.1
/// even when `::1` comes first. A single candidate is returned as it is: [`connect`]
/// probes it and says why it fails. `host` names the server in the error, which lists
/// every address tried and why each failed.
pub fn first_reachable(host: &str, candidates: &[Address]) -> Result<Address, CliError> {
    match candidates {
        [] => Err(CliError::Usage(format!("{host} has no address"))),
        [only] => Ok(only.clone()),
        _ => {
            let mut tried = Vec::new();
            for candidate in candidates {
                match probe(candidate) {
                    Ok(_) => return Ok(candidate.clone()),
                    Err(CliError::Connect { addr, source }) => tried.push((addr, source)),
                    Err(other) => return Err(other),
                }
            }
            Err(CliError::Unreachable {
                host: host.to_string(),
                tried,
            })
        }
    }
}

/// Checks that something listens at `addr` and returns how long connecting took (one
/// round trip). A TCP or Unix socket is connected to and closed; a shared-memory
/// rendezvous is only looked for (connecting would start a handshake).
fn probe(addr: &Address) -> Result<Duration, CliError> {
    let started = Instant::now();
    let failed = |source| CliError::Connect {
        addr: addr.clone(),
        source,
    };
    match addr {
        Address::Tcp(a) | Address::Udp(a) => {
            TcpStream::connect_timeout(a, Duration::from_secs(5)).map_err(failed)?;
        }
        Address::Unix(path) => {
            UnixStream::connect(path).map_err(failed)?;
        }
        Address::Shm(path) => {
            use std::os::unix::fs::FileTypeExt;
            let meta = std::fs::metadata(path).map_err(failed)?;
            if !meta.file_type().is_socket() {
                return Err(failed(std::io::Error::other(format!(
                    "{} is not a socket",
                    path.display()
                ))));
            }
        }
    }
    Ok(started.elapsed())
}

/// A held session as the user reads it: what happens, and what to do.
fn held_advice(e: ApiError, job: &JobArgs, previous: Previous) -> CliError {
    let ApiError::Held {
        addr,
        nexus,
        remaining,
        reason,
    } = e
    else {
        return CliError::Api(e);
    };
    let identity = job.identity.as_deref().unwrap_or("(this client)");
    let expiry = match remaining {
        Some(left) => format!(" (the server drops it in {} s)", left.as_secs().max(1)),
        None => String::new(),
    };
    let advice = if previous == Previous::InUse(nexus) {
        format!(
            "another hawser run with identity {identity:?} is still going against this server \
             and uses that session: wait for it to finish"
        )
    } else {
        format!(
            "if no other run with identity {identity:?} is still going (the earlier one was \
             killed or lost its connection), replace its session now, dropping its unfinished \
             work: run the same command with --replace-nexus {nexus} (a push then continues \
             with --resume); otherwise wait for that run to end{expiry}"
        )
    };
    let message = format!(
        "{addr} holds this run's session, because it never runs two sessions of one identity \
         side by side: {reason}\nwhat to do: {advice}"
    );
    CliError::Held {
        addr,
        nexus,
        message,
    }
}

/// A job connected to `addr` ended and its client closed its nexus: the record kept in
/// case the run died is removed.
pub fn forget_nexus_record(addr: &Address, job: &JobArgs) {
    if let (Some(identity), Some(dir)) = (&job.identity, nexus_record::record_dir()) {
        nexus_record::forget_in(&dir, addr, identity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A loopback address where nothing listens (a port just bound and released).
    fn refusing() -> Address {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        Address::Tcp(addr)
    }

    #[test]
    fn the_first_address_that_answers_is_chosen_after_those_that_refuse() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let listening = Address::Tcp(listener.local_addr().unwrap());
        let (a, b) = (refusing(), refusing());
        let chosen = first_reachable("localhost", &[a.clone(), b.clone(), listening.clone()]);
        assert_eq!(chosen.unwrap(), listening);
        // The first one that answers wins, even when a later one would too.
        assert_eq!(
            first_reachable("h", &[listening.clone(), a.clone()]).unwrap(),
            listening
        );
    }

    #[test]
    fn when_none_answers_the_error_lists_every_address_tried() {
        let (a, b) = (refusing(), refusing());
        let e = first_reachable("localhost", &[a.clone(), b.clone()]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("cannot connect to localhost: tried "),
            "{text}"
        );
        assert!(
            text.contains(&a.to_string()) && text.contains(&b.to_string()),
            "{text}"
        );
        assert!(matches!(e, CliError::Unreachable { ref tried, .. } if tried.len() == 2));
        assert!(first_reachable("nowhere", &[]).is_err());
    }
}
