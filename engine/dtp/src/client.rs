//! The client side of DTP transfers over a nexus: pull a file from a server, push one to
//! it. Each starts a [`DtpEngine`] of its own for the data socket; control goes over the
//! client's nexus.
//!
//! A pull writes `NAME.hawser-dtp` beside its target and journals `NAME.hawser-dtp-state`
//! every second; `resume` picks both up (re-checking the journaled blocks' digests on
//! disk) and asks only for the holes. Whatever the direction, the file is put in place
//! only once the receiver's digest equals the sender's.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hawser_replicate::{DirectFile, RootDir};
use hawser_runtime::{CallError, Client};
use hawser_wire::dtp::{ControlMessage, HoleReport, IntervalSet, PushRequest, TransferRequest};

use crate::control::{FileListing, FileMetadata, FileStat, FinishRequest};
use crate::engine::{
    DtpEngine, EngineConfig, EngineError, FirstPass, Progress, ReceivePlan, SendPlan, Transfer,
};
use crate::rate::ControllerKind;
use crate::service::{JOURNAL_SUFFIX, PARTIAL_SUFFIX, exchange};
use crate::{BlockDigests, TransferState, verify_on_disk};

/// How a transfer runs.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Never faster than this many bytes per second (0: as fast as the path allows).
    pub max_rate: u64,
    /// Largest UDP payload to use (the path's MTU less IP and UDP headers).
    pub mtu: u16,
    /// Continue an interrupted transfer from its journal.
    pub resume: bool,
    /// How the rate is found (a push: the client sends).
    pub controller: ControllerKind,
    /// How often a pull journals.
    pub journal_every: Duration,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            max_rate: 0,
            mtu: 1472,
            resume: false,
            controller: ControllerKind::Probe,
            journal_every: Duration::from_secs(1),
        }
    }
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    /// The file's size.
    pub size: u64,
    /// Bytes that crossed (new bytes received, or sent with resends).
    pub moved: u64,
    /// Bytes already in place from an interrupted transfer.
    pub resumed: u64,
    /// Datagrams received or sent.
    pub datagrams: u64,
    /// Bytes sent again for holes (a push).
    pub resent: u64,
    /// Duplicates, unauthentic and refused datagrams (a pull).
    pub dropped: u64,
    /// The file's digest (both ends agree on it).
    pub digest: u128,
    /// From the request to the file in place.
    pub elapsed: Duration,
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum DtpClientError {
    /// The server refused, or the nexus failed.
    #[error("{0}")]
    Call(#[from] CallError),
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The data path failed.
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The server answered something else than DTP's control messages.
    #[error("the server's answer is not DTP: {0}")]
    Protocol(String),
    /// The bytes received do not have the sender's digest.
    #[error("the file received does not have the sender's digest ({0}); nothing was kept")]
    DigestMismatch(String),
}

fn io_error(what: &str, path: &Path, e: io::Error) -> DtpClientError {
    DtpClientError::Io(format!("{what} {}: {e}", path.display()))
}

fn encode(message: &ControlMessage<'_>) -> Result<Bytes, DtpClientError> {
    let mut out = BytesMut::with_capacity(message.encoded_len());
    message
        .encode(&mut out)
        .map_err(|e| DtpClientError::Protocol(e.to_string()))?;
    Ok(out.freeze())
}

/// One client's DTP side of a nexus: the server's IP (the data path goes there) and a
/// data socket of the same family, used by its transfers one after the other.
pub struct DtpClient<'a> {
    client: &'a Client,
    server_ip: IpAddr,
    engine: DtpEngine,
}

impl std::fmt::Debug for DtpClient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtpClient")
            .field("server_ip", &self.server_ip)
            .field("data", &self.engine.local_addr())
            .finish_non_exhaustive()
    }
}

/// A local file to push: open, with its size and the metadata its copy takes.
#[derive(Debug)]
pub struct PushSource {
    /// The file, read from offset 0.
    pub file: File,
    /// Its size when the push starts.
    pub size: u64,
    /// Mode and mtime to give the copy.
    pub metadata: FileMetadata,
    /// How errors name it.
    pub shown: PathBuf,
}

impl PushSource {
    /// Opens the local file `path`.
    pub fn open(path: &Path) -> Result<Self, DtpClientError> {
        let file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| io_error("cannot stat", path, e))?;
        Ok(PushSource {
            file,
            size: meta.len(),
            metadata: FileMetadata::of(&meta),
            shown: path.to_owned(),
        })
    }
}

impl<'a> DtpClient<'a> {
    /// Starts the data socket for transfers over `client`'s nexus.
    pub fn new(client: &'a Client) -> Result<Self, DtpClientError> {
        let server = client.server_address().socket_addr().ok_or_else(|| {
            DtpClientError::Protocol(
                "DTP needs a TCP address for the server (its data is UDP)".into(),
            )
        })?;
        let server_ip = server.ip().to_canonical();
        let any = match server_ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let engine = DtpEngine::start(EngineConfig {
            bind: SocketAddr::new(any, 0),
            max_sessions: 1,
            ..EngineConfig::default()
        })
        .map_err(|e| DtpClientError::Io(format!("cannot start the DTP data socket: {e}")))?;
        Ok(DtpClient {
            client,
            server_ip,
            engine,
        })
    }

    /// The size, mode and mtime of the server's regular file `remote`, or `None` when
    /// there is none.
    pub fn stat(&self, remote: &[u8]) -> Result<Option<FileStat>, DtpClientError> {
        match self
            .client
            .call(exchange::STAT, Bytes::copy_from_slice(remote))
        {
            Ok(answer) => FileStat::decode(&answer).map(Some).ok_or_else(|| {
                DtpClientError::Protocol("a stat answer of the wrong length".into())
            }),
            Err(CallError::Remote(e)) if e.type_name == "dtp.NotFound" => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the server's pull source `remote` is a tree, and its regular files of at
    /// least `min_size` bytes.
    pub fn list(&self, remote: &[u8], min_size: u64) -> Result<FileListing, DtpClientError> {
        let mut body = Vec::with_capacity(8 + remote.len());
        body.extend_from_slice(&min_size.to_be_bytes());
        body.extend_from_slice(remote);
        let answer = self.client.call(exchange::LIST, Bytes::from(body))?;
        FileListing::decode(&answer)
            .ok_or_else(|| DtpClientError::Protocol("a malformed listing".into()))
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Waits for `transfer`, calling `progress` every 100 ms.
fn follow(
    transfer: &Transfer,
    progress: &mut dyn FnMut(&Progress),
) -> Result<crate::engine::Summary, EngineError> {
    loop {
        if let Some(end) = transfer.wait(Duration::from_millis(100)) {
            progress(transfer.progress());
            return end;
        }
        progress(transfer.progress());
    }
}

/// Pulls the server's file `remote` (relative to its root) into `local`, over a data
/// socket of its own.
pub fn pull(
    client: &Client,
    remote: &[u8],
    local: &Path,
    options: &TransferOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TransferReport, DtpClientError> {
    DtpClient::new(client)?.pull(remote, local, options, progress)
}

/// Pushes the local file `local` to the server's `remote` (relative to its root), over a
/// data socket of its own; the copy takes the file's mode and mtime.
pub fn push(
    client: &Client,
    local: &Path,
    remote: &[u8],
    options: &TransferOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TransferReport, DtpClientError> {
    DtpClient::new(client)?.push(PushSource::open(local)?, remote, options, progress)
}

impl DtpClient<'_> {
    /// Pulls the server's file `remote` (relative to its root) into `local`.
    pub fn pull(
        &self,
        remote: &[u8],
        local: &Path,
        options: &TransferOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<TransferReport, DtpClientError> {
        let started = Instant::now();
        let partial = with_suffix(local, PARTIAL_SUFFIX);
        let journal_path = with_suffix(local, JOURNAL_SUFFIX);
        let previous = if options.resume {
            match std::fs::read(&journal_path) {
                Ok(bytes) => Some(TransferState::decode(&bytes).map_err(|e| {
                    DtpClientError::Io(format!(
                        "cannot resume from {}: {e}; remove it (and {}) to start again",
                        journal_path.display(),
                        partial.display()
                    ))
                })?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error("cannot read", &journal_path, e)),
            }
        } else {
            None
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(previous.is_none())
            .open(&partial)
            .map_err(|e| io_error("cannot create", &partial, e))?;
        let (received, digests, known_size) = match previous {
            Some(mut state) => {
                verify_on_disk(&file, &mut state)
                    .map_err(|e| io_error("cannot read", &partial, e))?;
                (state.received, Some(state.digests), Some(state.total_size))
            }
            None => (IntervalSet::new(), None, None),
        };
        let holes = known_size.map_or_else(IntervalSet::new, |size| {
            received.missing_within(&IntervalSet::whole(size))
        });
        let (client, server_ip, engine) = (self.client, self.server_ip, &self.engine);
        let answer = client.call(
            exchange::PULL,
            encode(&ControlMessage::TransferRequest(TransferRequest {
                payload_id: remote,
                intervals: holes,
                max_throughput: options.max_rate,
                mtu: options.mtu,
            }))?,
        )?;
        let response = match ControlMessage::decode(&answer) {
            Ok(ControlMessage::TransferResponse(r)) => r,
            Ok(_) => {
                return Err(DtpClientError::Protocol(
                    "expected a transfer response".into(),
                ));
            }
            Err(e) => return Err(DtpClientError::Protocol(e.to_string())),
        };
        if known_size.is_some_and(|s| s != response.total_size) {
            return Err(DtpClientError::Io(format!(
                "the remote file is {} bytes now, not the {} of the interrupted pull; remove {} to start again",
                response.total_size,
                known_size.unwrap_or(0),
                journal_path.display()
            )));
        }
        let total = response.total_size;
        file.set_len(total)
            .map_err(|e| io_error("cannot size", &partial, e))?;
        // The server's digest, computed on its side while the data flows.
        let digest_call = client.start_call(exchange::DIGEST, Bytes::copy_from_slice(remote));
        let resumed = received.covered();
        let journal_file = journal_path.clone();
        let direct = open_direct_beside(&partial, &file);
        if let Some(direct) = &direct {
            direct
                .reserve(total)
                .map_err(|e| io_error("cannot reserve space for", &partial, e))?;
        }
        let transfer = engine.receive(ReceivePlan {
            session_id: response.session_id,
            key: response.key,
            peer_ip: server_ip,
            peer: Some(SocketAddr::new(server_ip, response.data_port)),
            direct,
            file,
            total_size: total,
            form: response.form,
            received,
            digests: digests.unwrap_or_else(|| BlockDigests::new(total)),
            journal: Some((
                Box::new(move |bytes: &[u8]| {
                    let temp = with_suffix(&journal_file, ".new");
                    std::fs::write(&temp, bytes)?;
                    std::fs::rename(&temp, &journal_file)
                }),
                options.journal_every,
            )),
        })?;
        let outcome = follow(&transfer, progress);
        // Ends the server's session whatever happened (the last feedback may have been lost).
        let stop = encode(&ControlMessage::HoleReport(HoleReport {
            session_id: response.session_id,
            stop: true,
            holes: IntervalSet::new(),
        }))?;
        let _ = client.call(exchange::STOP, stop);
        let summary = outcome?;
        let theirs = digest_call.wait()?;
        let theirs = theirs
            .get(8..24)
            .and_then(|b| b.try_into().ok())
            .map(u128::from_be_bytes)
            .ok_or_else(|| {
                DtpClientError::Protocol("a digest answer of the wrong length".into())
            })?;
        if summary.digest != Some(theirs) {
            let _ = std::fs::remove_file(&journal_path);
            let _ = std::fs::remove_file(&partial);
            return Err(DtpClientError::DigestMismatch(format!(
                "the server's file may have changed while it was pulled: {:032x} there, {:032x} here",
                theirs,
                summary.digest.unwrap_or(0)
            )));
        }
        std::fs::rename(&partial, local).map_err(|e| io_error("cannot put in place", local, e))?;
        let _ = std::fs::remove_file(&journal_path);
        Ok(TransferReport {
            size: total,
            moved: summary.bytes,
            resumed,
            datagrams: summary.datagrams,
            resent: 0,
            dropped: summary.duplicates + summary.unauthentic + summary.refused,
            digest: theirs,
            elapsed: started.elapsed(),
        })
    }

    /// Pushes `source` to the server's `remote` (relative to its root); the copy takes its
    /// mode and mtime.
    pub fn push(
        &self,
        source: PushSource,
        remote: &[u8],
        options: &TransferOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<TransferReport, DtpClientError> {
        let started = Instant::now();
        let PushSource {
            file,
            size: total,
            metadata,
            shown: local,
        } = source;
        let local = local.as_path();
        let (client, server_ip, engine) = (self.client, self.server_ip, &self.engine);
        let answer = client.call(
            exchange::PUSH,
            encode(&ControlMessage::PushRequest(PushRequest {
                payload_id: remote,
                total_size: total,
                max_throughput: options.max_rate,
                mtu: options.mtu,
                resume: options.resume,
            }))?,
        )?;
        let response = match ControlMessage::decode(&answer) {
            Ok(ControlMessage::PushResponse(r)) => r,
            Ok(_) => return Err(DtpClientError::Protocol("expected a push response".into())),
            Err(e) => return Err(DtpClientError::Protocol(e.to_string())),
        };
        if response
            .wanted
            .as_slice()
            .last()
            .is_some_and(|i| i.end() > total)
        {
            return Err(DtpClientError::Protocol(
                "the server wants bytes past the file's end".into(),
            ));
        }
        let resumed = total - response.wanted.covered();
        // The payload's digest: the first pass hashes the blocks it sends whole; the
        // others (what a resumed push skips) are read from the file on another thread
        // meanwhile.
        let read_back = file
            .try_clone()
            .map_err(|e| io_error("cannot open", local, e))?;
        let outside = {
            let file = file
                .try_clone()
                .map_err(|e| io_error("cannot open", local, e))?;
            let wanted = response.wanted.clone();
            let waiter = std::thread::current();
            std::thread::spawn(move || {
                let mut digests = BlockDigests::new(total);
                let read = digests.complete_outside(&file, &wanted, &mut Vec::new());
                // A small file's blocks are read long before a tick: the wait ends now.
                waiter.unpark();
                read.map(|()| digests)
            })
        };
        // Nothing wanted (a push resumed after its last byte): only the finish is left.
        let transfer = if response.wanted.is_empty() {
            None
        } else {
            Some(engine.send(SendPlan {
                session_id: response.session_id,
                key: response.key,
                peer_ip: server_ip,
                peer: Some(SocketAddr::new(server_ip, response.data_port)),
                file,
                total_size: total,
                wanted: response.wanted.clone(),
                form: response.form,
                datagram_size: response.datagram_size,
                max_rate: options.max_rate,
                controller: options.controller,
                hash_sent_blocks: true,
            })?)
        };
        // Progress meanwhile: a caller counting seconds must hear of the data every second.
        let mut digests = match &transfer {
            Some(t) => loop {
                progress(t.progress());
                match t.sent_digests(Duration::from_millis(100)) {
                    FirstPass::Hashed(digests) => break digests,
                    FirstPass::Sending => {}
                    FirstPass::Ended => break BlockDigests::new(total),
                }
            },
            None => BlockDigests::new(total),
        };
        let idle = Progress::default();
        while !outside.is_finished() {
            progress(transfer.as_ref().map_or(&idle, |t| t.progress()));
            std::thread::park_timeout(Duration::from_millis(100));
        }
        let outside = outside
            .join()
            .map_err(|_| DtpClientError::Io("the digest thread failed".into()))?
            .map_err(|e| io_error("cannot read", local, e))?;
        digests.fill_from(&outside);
        // Blocks neither hashed (a resend interleaved with the first pass's bytes).
        digests
            .complete_from(&read_back, &mut Vec::new())
            .map_err(|e| io_error("cannot read", local, e))?;
        let digest = digests
            .payload_digest()
            .ok_or_else(|| DtpClientError::Io("a block digest is missing".into()))?;
        let finish = FinishRequest {
            session_id: response.session_id,
            digest,
            metadata: Some(metadata),
        };
        let finish_call = client.start_call(exchange::FINISH, Bytes::from(finish.encode()));
        // Progress while the server receives; the finish answers once it has it all.
        let answer = loop {
            progress(transfer.as_ref().map_or(&idle, |t| t.progress()));
            if let Some(answer) = finish_call.wait_timeout(Duration::from_millis(100)) {
                break answer;
            }
        };
        let sent = transfer.as_ref().and_then(|t| {
            t.stop();
            t.wait(Duration::from_secs(5))
        });
        let answer = answer?;
        let moved = json_u64(&answer, "bytes").unwrap_or(0);
        let (datagrams, resent) = match sent {
            Some(Ok(s)) => (s.datagrams, s.resent),
            _ => (0, 0),
        };
        Ok(TransferReport {
            size: total,
            moved,
            resumed,
            datagrams,
            resent,
            dropped: json_u64(&answer, "duplicates").unwrap_or(0)
                + json_u64(&answer, "unauthentic").unwrap_or(0)
                + json_u64(&answer, "refused").unwrap_or(0),
            digest,
            elapsed: started.elapsed(),
        })
    }
}

/// A number field of the server's small JSON summary.
fn json_u64(json: &[u8], field: &str) -> Option<u64> {
    let text = std::str::from_utf8(json).ok()?;
    let key = format!("\"{field}\":");
    let at = text.find(&key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The partial file's `O_DIRECT` descriptor, opened through its directory (as a push's
/// receiver opens its own beneath the server's root), so that a pull writes the
/// page-aligned part of its runs past the page cache; `None` (written through the cache)
/// where the file system refuses `O_DIRECT` or anything else fails.
fn open_direct_beside(partial: &Path, file: &File) -> Option<DirectFile> {
    let name = partial.file_name()?;
    let dir = match partial.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    RootDir::open(dir)
        .ok()?
        .open_direct(name.as_bytes(), file)
        .ok()
        .flatten()
}
