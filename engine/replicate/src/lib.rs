//! The replication task: moves a replica of files and directory trees from a source to a
//! target, resumably, with nothing lost or corrupted.
//!
//! In the workspace's arrows (`wire ← session ← runtime ← replicate ← cli`) it stands on
//! `hawser-runtime`, which runs DSP sessions on the shards, and on `hawser-wire`, whose
//! codec of the replication messages it re-exports as [`proto`]; the `hawser` binary
//! builds `serve`, `push`, `pull` and `bench` on it.
//!
//! The task is transport-independent. The [`Source`] walks its trees and produces
//! requests; the [`Target`] answers each one by writing under its root. They talk through
//! a [`Transport`] — pipelined request → response — which [`service`] implements over a
//! runtime client's pipeline (each request is the body of one exchange of a DSP nexus,
//! see [`proto::MessageKind::exchange_id`]) and binds the target to a runtime service;
//! [`MemoryTransport`] implements it in-process for tests.
//!
//! A job, as messages (bytes in `docs/PROTOCOL.md` ("Replication exchanges")):
//!
//! 1. `Begin` (options, destination) → `BeginAck`.
//! 2. `Manifest` batches, ordered, each carrying many entries (path, kind, mode, mtime,
//!    size, symlink target, sparse extent map, xxh3-128 for `checksum`, and the data of
//!    small files inline) → per entry: up to date, done, need all blocks, need these
//!    blocks (resume), or refused (bad, escaping or repeated path, as a typed
//!    [`RefusalKind`]).
//! 3. `Block`s — a file's data extents cut at block boundaries (default 8 MiB), each with
//!    its xxh3-64 and its offset — many in flight over any connection → `BlockAck`.
//! 4. `Commit` once every block of a file is acknowledged, with the whole-file digest
//!    (xxh3-128 over the size and every piece's offset, length and xxh3-64: each byte is
//!    hashed once on each side): the target compares it with the digest of the pieces it
//!    checked and wrote, applies mode and mtime and renames the temporary file into place
//!    → `CommitAck`.
//! 5. `Delete` (with `delete`) → the list removed; `Finish` → the target's counters.
//!
//! The target writes each file under `.hawser-partial/` in its directory, with a transfer
//! journal of the pieces written and verified; a rerun with `resume` sends only the
//! missing blocks. What unfinished jobs leave there is counted, expired and removed by
//! [`count_partials`], [`remove_partials`] and [`Expiry`].
//!
//! A target touches only its root: it opens the root once ([`RootDir`]) and does every
//! file-system operation beneath that descriptor, never through a symlink (see the
//! [`Target`] docs); [`TargetLimits`] bound what one job may make it remember and hold
//! open. A source reads its trees the same way, beneath the directory of each
//! [`SourceRoot`], so a server sending a pull reads only beneath its root.
//!
//! # Example
//!
//! ```
//! use std::path::PathBuf;
//! use hawser_replicate::{run, MemoryTransport, Source, SourceConfig, Target};
//!
//! let base = std::env::temp_dir().join(format!("hawser-doc-{}", std::process::id()));
//! let (src, dst) = (base.join("src"), base.join("dst"));
//! std::fs::create_dir_all(src.join("docs")).unwrap();
//! std::fs::create_dir_all(&dst).unwrap();
//! std::fs::write(src.join("docs/readme.txt"), b"hello").unwrap();
//!
//! let mut config = SourceConfig::default();
//! config.dest = "replica".into();
//! // A trailing '/' sends the directory's contents, as rsync does.
//! let source = Source::new(config, &[PathBuf::from(format!("{}/", src.display()))]).unwrap();
//! let mut transport = MemoryTransport::new(Target::new(&dst).unwrap());
//! let report = run(source, &mut transport).unwrap();
//!
//! assert_eq!(std::fs::read(dst.join("replica/docs/readme.txt")).unwrap(), b"hello");
//! assert_eq!(report.files, 1);
//! std::fs::remove_dir_all(&base).unwrap();
//! ```

mod auto_compress;
mod beneath;
mod direct;
mod error;
mod excludes;
mod file_digest;
mod host_cpu;
mod journal;
mod partial_files;
mod pool;
mod report;
mod root_files;
pub mod service;
mod source;
mod source_path;
mod sparse;
mod target;
mod target_path;
#[cfg(feature = "testing")]
pub mod testing;
mod transport;
mod walk;
mod write_behind;

/// The replication messages (their codec lives in `hawser_wire`).
pub use hawser_wire::replicate as proto;

pub use auto_compress::AutoChoice;
pub use beneath::RootDir;
pub use direct::{DirectFile, WriteMode};
pub use error::{
    EntryFailure, FailureReason, RemoteError, ReplicateError, TargetError, TransportError,
};
pub use excludes::Excludes;
pub use partial_files::{Expiry, PartialFiles, count_partials, remove_partials};
pub use proto::RefusalKind;
pub use report::{Percentiles, Report};
pub use source::{Fanout, FanoutReport, Source, SourceConfig, WalkedFile, run};
pub use source_path::{SourcePathError, resolve_pull_source};
pub use target::{Target, TargetLimits};
pub use transport::{Completion, FanoutTransport, MemoryTransport, Request, Transport};
pub use walk::SourceRoot;
