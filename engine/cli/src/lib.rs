//! hawser's command-line tool: `hawser serve`, `push`, `pull`, `bench` and `inspect`, their
//! arguments, progress display, reports and log. It sits at the top of the arrows
//! (`wire ← session ← runtime ← replicate ← cli`) and is the only crate with clap,
//! indicatif, toml, anyhow and a `tracing` subscriber; the binary (`src/main.rs`) only
//! installs the log and dispatches to these modules.

pub mod bench;
pub mod cli;
pub mod connect;
pub mod control_call;
pub mod dtp_transfer;
pub mod dtp_tree;
pub mod error;
pub mod fanout_report;
pub mod histogram;
pub mod inspect;
pub mod job_args;
pub mod job_tally;
pub mod logging;
pub mod messaging;
pub mod nexus_record;
pub mod passwd;
pub mod progress;
pub mod pull;
pub mod push;
pub mod push_fanout;
pub mod push_targets;
pub mod remote;
pub mod report;
pub mod security;
pub mod serve;
pub mod shell_docs;
pub mod stats_view;
pub mod units;
pub mod values;
pub mod window;
