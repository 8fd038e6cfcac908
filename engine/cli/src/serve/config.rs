//! The settings of `hawser serve`: its TOML config file (`--config`) and how each setting
//! comes from the command line, else the file, else the default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hawser_replicate::WriteMode;
use hawser_replicate::proto::MAX_BLOCK_SIZE;
use hawser_replicate::service::ServiceLimits;
use hawser_runtime::{Address, DEFAULT_PORT, ScramEntry, ServerLimits};

use crate::error::{CliError, io_err};
use crate::serve::args::ServeArgs;
use crate::values::{AgeLimit, parse_age, parse_size, parse_write_mode};

/// Handler threads when the config file does not say.
const DEFAULT_HANDLER_THREADS: usize = 4;

/// How long a drain (SIGTERM) waits for running requests when the config does not say.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The config file, as written (every key optional; unknown keys are refused).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeFile {
    listen: Option<ListenValue>,
    root: Option<PathBuf>,
    shards: Option<usize>,
    max_block_size: Option<u32>,
    max_jobs: Option<usize>,
    handler_threads: Option<usize>,
    congestion: Option<String>,
    write_mode: Option<String>,
    max_job_entries: Option<u64>,
    max_open_files: Option<usize>,
    partial_max_age: Option<AgeValue>,
    receive_budget: Option<SizeValue>,
    frame_timeout: Option<AgeValue>,
    allow_anonymous: Option<bool>,
    grace_period_secs: Option<u64>,
    /// Retired: passwords in clear text. Read only to refuse it with advice.
    secrets: Option<toml::Value>,
    /// The user database: SCRAM entries by identity, as `hawser passwd` prints them.
    #[serde(default)]
    users: BTreeMap<String, UserEntry>,
    #[serde(default)]
    peer_uids: BTreeMap<String, u32>,
    #[serde(default)]
    client_certs: BTreeMap<String, String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    require_tls: Option<bool>,
    allow_plain: Option<bool>,
    #[serde(default)]
    limits: LimitsFile,
    /// The message service (DMP).
    #[serde(default)]
    dmp: super::dmp::DmpFile,
    /// Where the Prometheus metrics are served (`--metrics`).
    metrics: Option<String>,
    /// How long SIGTERM waits for running requests (`--drain-timeout`).
    drain_timeout: Option<AgeValue>,
}

/// A `[users.NAME]` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    mechanism: Option<String>,
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

impl UserEntry {
    fn entry(&self, identity: &str) -> Result<ScramEntry, CliError> {
        if let Some(m) = &self.mechanism
            && m != "SCRAM-SHA-256"
        {
            return Err(CliError::Usage(format!(
                "[users.{identity}] mechanism = {m:?}: only \"SCRAM-SHA-256\" entries exist"
            )));
        }
        ScramEntry::from_fields(
            &self.salt,
            self.iterations,
            &self.stored_key,
            &self.server_key,
        )
        .map_err(|e| CliError::Usage(format!("[users.{identity}]: {e}")))
    }
}

/// `listen` in the config file: one address or a list of them.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum ListenValue {
    One(String),
    Many(Vec<String>),
}

/// The `[limits]` table (the names of [`ServerLimits`]).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    connections_per_address: Option<u32>,
    handshakes_in_progress: Option<u32>,
    nexuses: Option<u32>,
    held_creates_per_identity: Option<u32>,
}

/// A byte count in the config file: a number, or text as `parse_size` reads it.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    fn bytes(&self, key: &str) -> Result<u64, CliError> {
        match self {
            SizeValue::Bytes(n) => Ok(*n),
            SizeValue::Text(text) => {
                parse_size(text).map_err(|e| CliError::Usage(format!("{key}: {e}")))
            }
        }
    }
}

/// An age in the config file: seconds, or text as on the command line.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum AgeValue {
    Seconds(u64),
    Text(String),
}

impl AgeValue {
    /// The age this value gives, `None` for `off`.
    fn age(&self, key: &str) -> Result<Option<Duration>, CliError> {
        match self {
            AgeValue::Seconds(secs) => Ok(Some(Duration::from_secs(*secs))),
            AgeValue::Text(text) => Ok(parse_age(text)
                .map_err(|e| CliError::Usage(format!("{key}: {e}")))?
                .0),
        }
    }
}

/// Reads the config file `args` name (none: every key unset).
pub(crate) fn read_config(args: &ServeArgs) -> Result<ServeFile, CliError> {
    match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(io_err(path))?;
            toml::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
        }
        None => Ok(ServeFile::default()),
    }
}

/// The directory everything is served under.
pub(crate) fn serve_root(args: &ServeArgs, file: &ServeFile) -> PathBuf {
    args.root
        .clone()
        .or_else(|| file.root.clone())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Everything a server is started with, from the command line, the file and defaults.
#[derive(Debug)]
pub(crate) struct ServeSettings {
    /// Every address to listen on (at least one).
    pub(crate) listen: Vec<Address>,
    pub(crate) root: PathBuf,
    pub(crate) shards: usize,
    pub(crate) max_block_size: u32,
    pub(crate) handler_threads: usize,
    pub(crate) congestion: Option<String>,
    /// `None`: the runtime's default (anonymous clients only on loopback, no users).
    pub(crate) allow_anonymous: Option<bool>,
    pub(crate) service_limits: ServiceLimits,
    pub(crate) server_limits: ServerLimits,
    pub(crate) receive_budget: Option<usize>,
    pub(crate) frame_timeout: Option<Duration>,
    pub(crate) grace_period: Option<Duration>,
    /// The user database: identity to SCRAM entry.
    pub(crate) users: BTreeMap<String, ScramEntry>,
    /// The certificate chain and key files, when TLS is offered.
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    /// Refuse clients that do not use TLS.
    pub(crate) require_tls: bool,
    /// Offer PLAIN over TLS.
    pub(crate) allow_plain: bool,
    /// Identity to the local user id that may take it with `EXTERNAL`.
    pub(crate) peer_uids: BTreeMap<String, u32>,
    /// Identity to the pin of the TLS client certificate that may take it with `EXTERNAL`.
    pub(crate) client_certs: BTreeMap<String, [u8; 32]>,
    /// The message service's settings (`[dmp]`), when it runs.
    pub(crate) dmp: Option<hawser_dmp::DmpConfig>,
    /// Where the Prometheus metrics are served, if anywhere.
    pub(crate) metrics: Option<SocketAddr>,
    /// How long SIGTERM waits for running requests before the process exits.
    pub(crate) drain_timeout: Duration,
}

impl ServeSettings {
    /// The settings `args` and `file` give; a value out of range is a usage error, one the
    /// server raises to its minimum is logged as a warning.
    pub(crate) fn resolve(args: &ServeArgs, file: ServeFile) -> Result<Self, CliError> {
        let root = serve_root(args, &file);
        let service_limits = service_limits(args, &file)?;
        let server_limits = server_limits(args, &file.limits);
        let receive_budget = match &file.receive_budget {
            Some(budget) => Some(budget.bytes("receive_budget")? as usize),
            None => None,
        };
        let frame_timeout = match &file.frame_timeout {
            Some(timeout) => Some(timeout.age("frame_timeout")?.ok_or_else(|| {
                CliError::Usage(
                    "frame_timeout: give a duration (e.g. 60s); off is not allowed".into(),
                )
            })?),
            None => None,
        };
        let shards = at_least_one(args.shards.or(file.shards), "shards").unwrap_or(1);
        let handler_threads = at_least_one(file.handler_threads, "handler_threads")
            .unwrap_or(DEFAULT_HANDLER_THREADS);
        if handler_threads == 1 {
            tracing::warn!(
                "handler_threads = 1: a running pull holds the only handler thread, and \
                 pushes wait until it ends"
            );
        }
        let grace_period = file.grace_period_secs.map(|secs| {
            if secs == 0 {
                tracing::warn!("grace_period_secs = 0 is raised to 1");
            }
            Duration::from_secs(secs.max(1))
        });
        let listen_texts = if !args.listen.is_empty() {
            args.listen.clone()
        } else {
            match file.listen {
                Some(ListenValue::One(one)) => vec![one],
                Some(ListenValue::Many(many)) if !many.is_empty() => many,
                Some(ListenValue::Many(_)) => {
                    return Err(CliError::Usage(
                        "listen = []: give at least one address to listen on".into(),
                    ));
                }
                None => vec![format!("0.0.0.0:{DEFAULT_PORT}")],
            }
        };
        let listen = listen_texts
            .iter()
            .map(|text| Address::parse(text).map_err(|e| CliError::Usage(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if file.secrets.is_some() {
            return Err(CliError::Usage(
                "the [secrets] table held passwords in clear text and is retired: for each \
                 identity run `hawser passwd IDENTITY` (it reads the password and prints a \
                 [users.IDENTITY] entry with SCRAM keys, never the password) and paste the \
                 entries into the config file instead; clients keep their --secret-file"
                    .into(),
            ));
        }
        let users = file
            .users
            .iter()
            .map(|(identity, entry)| Ok((identity.clone(), entry.entry(identity)?)))
            .collect::<Result<BTreeMap<_, _>, CliError>>()?;
        let cert = args.tls_cert.clone().or(file.tls_cert);
        let key = args.tls_key.clone().or(file.tls_key);
        let require_tls = args.require_tls || file.require_tls.unwrap_or(false);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) if require_tls => {
                return Err(CliError::Usage(
                    "--require-tls needs a certificate: give --tls-cert FILE and --tls-key \
                     FILE (tls_cert and tls_key in the config file)"
                        .into(),
                ));
            }
            (None, None) => None,
            _ => {
                return Err(CliError::Usage(
                    "TLS needs both a certificate chain and its private key: --tls-cert \
                     FILE and --tls-key FILE (PEM), or tls_cert and tls_key in the config file"
                        .into(),
                ));
            }
        };
        let mut client_certs = BTreeMap::new();
        let grants = file
            .client_certs
            .iter()
            .map(|(i, p)| (i.clone(), p.clone()));
        let flags = args.allow_client_cert.iter().map(|grant| {
            let (identity, pin) = grant.split_once('=').unwrap_or((grant.as_str(), ""));
            (identity.to_owned(), pin.to_owned())
        });
        for (identity, pin) in grants.chain(flags) {
            let pin = hawser_runtime::tls::parse_pin(&pin).map_err(|e| {
                CliError::Usage(format!(
                    "client certificate of {identity:?} (IDENTITY=SHA256): {e}"
                ))
            })?;
            if identity.is_empty() {
                return Err(CliError::Usage(
                    "--allow-client-cert: give IDENTITY=SHA256".into(),
                ));
            }
            client_certs.insert(identity, pin);
        }
        if !client_certs.is_empty() && tls.is_none() {
            return Err(CliError::Usage(
                "client certificates are shown over TLS: --allow-client-cert needs \
                 --tls-cert and --tls-key"
                    .into(),
            ));
        }
        let metrics = match (args.metrics, &file.metrics) {
            (Some(addr), _) => Some(addr),
            (None, Some(text)) => Some(text.parse().map_err(|_| {
                CliError::Usage(format!(
                    "metrics = {text:?}: give HOST:PORT with a numeric host, e.g. 127.0.0.1:9415"
                ))
            })?),
            (None, None) => None,
        };
        let drain_timeout = match (args.drain_timeout, &file.drain_timeout) {
            (Some(AgeLimit(Some(age))), _) => age,
            (Some(AgeLimit(None)), _) => Duration::ZERO,
            (None, Some(value)) => value.age("drain_timeout")?.unwrap_or(Duration::ZERO),
            (None, None) => DEFAULT_DRAIN_TIMEOUT,
        };
        let mut peer_uids = file.peer_uids;
        for grant in &args.allow_peer_uid {
            let (identity, uid) = parse_peer_uid(grant)?;
            peer_uids.insert(identity, uid);
        }
        Ok(ServeSettings {
            listen,
            root,
            shards,
            max_block_size: file.max_block_size.unwrap_or(MAX_BLOCK_SIZE),
            handler_threads,
            congestion: args.congestion.clone().or(file.congestion),
            allow_anonymous: if args.allow_anonymous {
                Some(true)
            } else {
                file.allow_anonymous
            },
            service_limits,
            server_limits,
            receive_budget,
            frame_timeout,
            grace_period,
            users,
            tls,
            require_tls,
            allow_plain: args.allow_plain || file.allow_plain.unwrap_or(false),
            peer_uids,
            client_certs,
            dmp: if file.dmp.enabled(args.dmp) {
                Some(file.dmp.config(require_tls)?)
            } else {
                None
            },
            metrics,
            drain_timeout,
        })
    }
}

/// `IDENTITY=UID` of `--allow-peer-uid`.
fn parse_peer_uid(text: &str) -> Result<(String, u32), CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--allow-peer-uid {text:?}: give IDENTITY=UID, e.g. backup=1000 (`id -u USER` \
             prints a user's id)"
        ))
    };
    let (identity, uid) = text.split_once('=').ok_or_else(bad)?;
    if identity.is_empty() {
        return Err(bad());
    }
    Ok((identity.to_owned(), uid.trim().parse().map_err(|_| bad())?))
}

/// `value`, raised to 1 with a warning if it is 0.
fn at_least_one(value: Option<usize>, key: &str) -> Option<usize> {
    value.map(|n| {
        if n == 0 {
            tracing::warn!("{key} = 0 is raised to 1");
        }
        n.max(1)
    })
}

/// The connection and nexus limits: flags, then the `[limits]` table, then defaults.
fn server_limits(args: &ServeArgs, file: &LimitsFile) -> ServerLimits {
    let d = ServerLimits::default();
    ServerLimits {
        connections_per_address: args
            .max_connections_per_address
            .or(file.connections_per_address)
            .unwrap_or(d.connections_per_address),
        handshakes_in_progress: args
            .max_handshakes
            .or(file.handshakes_in_progress)
            .unwrap_or(d.handshakes_in_progress),
        nexuses: args.max_nexuses.or(file.nexuses).unwrap_or(d.nexuses),
        held_creates_per_identity: file
            .held_creates_per_identity
            .unwrap_or(d.held_creates_per_identity),
    }
}

/// The limits of the replication service.
fn service_limits(args: &ServeArgs, file: &ServeFile) -> Result<ServiceLimits, CliError> {
    let defaults = ServiceLimits::default();
    let write_mode = match (args.write_mode, &file.write_mode) {
        (Some(mode), _) => mode,
        (None, Some(text)) => parse_write_mode(text).map_err(CliError::Usage)?,
        (None, None) => WriteMode::default(),
    };
    let partial_max_age = match (args.partial_max_age, &file.partial_max_age) {
        (Some(AgeLimit(age)), _) => age,
        (None, Some(value)) => value.age("partial_max_age")?,
        (None, None) => defaults.partial_max_age,
    };
    let at_least_one = |value: Option<u64>, key: &str| match value {
        Some(0) => Err(CliError::Usage(format!("{key} must be at least 1"))),
        other => Ok(other),
    };
    Ok(ServiceLimits {
        max_jobs: file.max_jobs.unwrap_or(defaults.max_jobs),
        write_mode,
        max_job_entries: at_least_one(file.max_job_entries, "max_job_entries")?
            .unwrap_or(defaults.max_job_entries),
        max_open_files: at_least_one(file.max_open_files.map(|n| n as u64), "max_open_files")?
            .map_or(defaults.max_open_files, |n| n as usize),
        partial_max_age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct ServeOnly {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        use clap::Parser;
        ServeOnly::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .expect("parses")
            .serve
    }

    #[test]
    fn limits_come_from_flags_then_the_config_file_then_defaults() {
        let args = serve_args(&["--max-nexuses", "7"]);
        let file: ServeFile = toml::from_str(
            "allow_anonymous = true\n[limits]\nnexuses = 9\nconnections_per_address = 3\n",
        )
        .expect("a valid file");
        assert_eq!(file.allow_anonymous, Some(true));
        let limits = server_limits(&args, &file.limits);
        assert_eq!(limits.nexuses, 7, "the flag wins");
        assert_eq!(limits.connections_per_address, 3, "then the file");
        assert_eq!(
            limits.handshakes_in_progress,
            ServerLimits::default().handshakes_in_progress
        );
        assert!(toml::from_str::<ServeFile>("[limits]\nconnections = 3\n").is_err());
    }

    #[test]
    fn settings_resolve_sizes_ages_and_minimums() {
        let file: ServeFile = toml::from_str(
            "listen = \"127.0.0.1:0\"\nreceive_budget = \"64M\"\nframe_timeout = \"90s\"\n\
             partial_max_age = 3600\nshards = 0\ngrace_period_secs = 0\nwrite_mode = \"buffered\"\n",
        )
        .expect("a valid file");
        let s = ServeSettings::resolve(&serve_args(&["--shards", "2"]), file).expect("valid");
        assert_eq!(s.listen, [Address::parse("127.0.0.1:0").unwrap()]);
        assert_eq!(s.shards, 2, "the flag wins");
        assert_eq!(s.receive_budget, Some(64 << 20));
        assert_eq!(s.frame_timeout, Some(Duration::from_secs(90)));
        assert_eq!(s.grace_period, Some(Duration::from_secs(1)));
        assert_eq!(s.handler_threads, DEFAULT_HANDLER_THREADS);
        assert_eq!(s.service_limits.write_mode, WriteMode::Buffered);
        assert_eq!(
            s.service_limits.partial_max_age,
            Some(Duration::from_secs(3600))
        );
        let defaults = ServeSettings::resolve(&serve_args(&[]), ServeFile::default()).unwrap();
        assert_eq!(
            defaults.listen,
            [Address::parse(&format!("0.0.0.0:{DEFAULT_PORT}")).unwrap()]
        );
        assert_eq!(defaults.shards, 1);
        assert_eq!(defaults.receive_budget, None);

        for (text, complaint) in [
            ("frame_timeout = \"off\"\n", "off is not allowed"),
            (
                "receive_budget = \"lots\"\n",
                "receive_budget: \"lots\" is not a size",
            ),
            (
                "partial_max_age = \"soon\"\n",
                "partial_max_age: \"soon\" is not an age",
            ),
            ("max_open_files = 0\n", "max_open_files must be at least 1"),
            ("listen = []\n", "at least one address"),
            ("listen = \"udp:/x\"\n", "not an address"),
        ] {
            let file: ServeFile = toml::from_str(text).expect("valid TOML");
            let err = ServeSettings::resolve(&serve_args(&[]), file).unwrap_err();
            assert!(err.to_string().contains(complaint), "{text}: {err}");
        }
    }

    #[test]
    fn metrics_and_drain_timeout_come_from_flags_or_the_file() {
        let file: ServeFile =
            toml::from_str("metrics = \"127.0.0.1:9415\"\ndrain_timeout = \"5s\"\n").unwrap();
        let s = ServeSettings::resolve(&serve_args(&[]), file).unwrap();
        assert_eq!(s.metrics, Some("127.0.0.1:9415".parse().unwrap()));
        assert_eq!(s.drain_timeout, Duration::from_secs(5));
        let file: ServeFile = toml::from_str("metrics = \"127.0.0.1:9415\"\n").unwrap();
        let flags = serve_args(&["--metrics", "[::1]:0", "--drain-timeout", "off"]);
        let s = ServeSettings::resolve(&flags, file).unwrap();
        assert_eq!(s.metrics, Some("[::1]:0".parse().unwrap()), "the flag wins");
        assert_eq!(s.drain_timeout, Duration::ZERO);
        let defaults = ServeSettings::resolve(&serve_args(&[]), ServeFile::default()).unwrap();
        assert_eq!(
            (defaults.metrics, defaults.drain_timeout),
            (None, DEFAULT_DRAIN_TIMEOUT)
        );
        let file: ServeFile = toml::from_str("metrics = \"localhost:9415\"\n").unwrap();
        let e = ServeSettings::resolve(&serve_args(&[]), file).unwrap_err();
        assert!(e.to_string().contains("numeric host"), "{e}");
    }

    #[test]
    fn listen_addresses_and_peer_uids_come_from_flags_or_the_file() {
        let file: ServeFile = toml::from_str(
            "listen = [\"127.0.0.1:0\", \"unix:///tmp/h.sock\"]\n[peer_uids]\nbackup = 1000\n",
        )
        .expect("a valid file");
        let s = ServeSettings::resolve(&serve_args(&["--allow-peer-uid", "db=1001"]), file)
            .expect("valid");
        assert_eq!(
            s.listen,
            [
                Address::parse("127.0.0.1:0").unwrap(),
                Address::parse("unix:///tmp/h.sock").unwrap()
            ]
        );
        assert_eq!(s.peer_uids.get("backup"), Some(&1000));
        assert_eq!(s.peer_uids.get("db"), Some(&1001));
        let flags = serve_args(&["--listen", "shm://r", "--listen", "127.0.0.1:0"]);
        let s = ServeSettings::resolve(&flags, ServeFile::default()).unwrap();
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.listen[0].scheme(), "shm");
        for bad in ["db", "=1", "db=me"] {
            let e = ServeSettings::resolve(
                &serve_args(&["--allow-peer-uid", bad]),
                ServeFile::default(),
            )
            .unwrap_err();
            assert!(e.to_string().contains("IDENTITY=UID"), "{bad}: {e}");
        }
    }
}
