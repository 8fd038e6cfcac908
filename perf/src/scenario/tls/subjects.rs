//! The rows of the `tls` scenario: where each comparison runs, the subjects' names, their
//! baselines, and which rows a build or a user cannot measure.

use std::path::PathBuf;

use super::super::lfn::{ADDRESS_B, NS_A, NS_B};
use super::super::loopback::BULK_CONNECTIONS;
use super::PUSH_CONNECTIONS;
use crate::report::{Outcome, Subject};

/// Payload bytes per second (hawser bench) or file bytes per wall-time second (copies).
pub(super) const THROUGHPUT: &str = "throughput_bytes_per_sec";
/// Wall time of one 1 KiB push, milliseconds.
pub(super) const WALL_MS: &str = "wall_time_ms";

/// Where a comparison runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Client and servers on 127.0.0.1.
    Loopback,
    /// Client in linkem's side a, servers in side b.
    Link,
}

impl Place {
    pub(super) fn label(self) -> &'static str {
        match self {
            Place::Loopback => "loopback",
            Place::Link => "linkem 10 Gbit/s × 50 ms",
        }
    }

    pub(super) fn client_namespace(self) -> Option<&'static str> {
        match self {
            Place::Loopback => None,
            Place::Link => Some(NS_A),
        }
    }

    pub(super) fn server_namespace(self) -> Option<&'static str> {
        match self {
            Place::Loopback => None,
            Place::Link => Some(NS_B),
        }
    }

    pub(super) fn host(self) -> &'static str {
        match self {
            Place::Loopback => "127.0.0.1",
            Place::Link => ADDRESS_B,
        }
    }
}

fn tls_words(tls: bool) -> &'static str {
    if tls { " --tls --tls-pin" } else { " (no TLS)" }
}

pub(super) fn bulk_subject(tls: bool) -> Subject {
    Subject::new(
        "hawser",
        format!(
            "bench bulk{}, {BULK_CONNECTIONS} connections, loopback",
            if tls { " --tls" } else { " (no TLS)" }
        ),
    )
}

pub(super) fn tiny_subject(tls: bool) -> Subject {
    Subject::new(
        "hawser",
        format!(
            "push{} of a 1 KiB file, {PUSH_CONNECTIONS} connections, loopback",
            tls_words(tls)
        ),
    )
}

pub(super) fn push_subject(tls: bool, mib: u64, place: Place) -> Subject {
    Subject::new(
        "hawser",
        format!(
            "push{} of a {mib} MiB file, {PUSH_CONNECTIONS} connections, {}",
            tls_words(tls),
            place.label()
        ),
    )
}

pub(super) fn scp_subject(mib: u64, place: Place) -> Subject {
    Subject::new("scp", format!("{mib} MiB file, {}", place.label()))
}

pub(super) fn rsync_subject(mib: u64, place: Place) -> Subject {
    Subject::new(
        "rsync",
        format!("-a --whole-file -e ssh, {mib} MiB file, {}", place.label()),
    )
}

/// Every subject's baseline: TLS rows against the same without TLS, the OpenSSH
/// comparison against scp.
pub(super) fn declare_baselines(outcome: &mut Outcome, ssh_mib: u64, lfn_mib: u64) {
    outcome.baseline = Some(bulk_subject(false));
    let mut pairs = vec![
        (bulk_subject(true), bulk_subject(false)),
        (tiny_subject(true), tiny_subject(false)),
        (
            push_subject(true, lfn_mib, Place::Link),
            push_subject(false, lfn_mib, Place::Link),
        ),
    ];
    for place in [Place::Loopback, Place::Link] {
        pairs.push((
            push_subject(true, ssh_mib, place),
            scp_subject(ssh_mib, place),
        ));
        pairs.push((rsync_subject(ssh_mib, place), scp_subject(ssh_mib, place)));
    }
    // Baselines are their own: no ratio to an unrelated default.
    let baselines: Vec<Subject> = pairs.iter().map(|(_, b)| b.clone()).collect();
    for baseline in baselines {
        if !pairs.iter().any(|(s, _)| *s == baseline) {
            pairs.push((baseline.clone(), baseline));
        }
    }
    outcome.baseline_of.extend(pairs);
}

/// The rows measured through the link.
pub(super) fn link_subjects(ssh_mib: u64, lfn_mib: u64) -> Vec<Subject> {
    vec![
        push_subject(false, lfn_mib, Place::Link),
        push_subject(true, lfn_mib, Place::Link),
        push_subject(true, ssh_mib, Place::Link),
        scp_subject(ssh_mib, Place::Link),
        rsync_subject(ssh_mib, Place::Link),
    ]
}

pub(super) type Available<'a> = (
    &'a std::result::Result<PathBuf, String>,
    &'a std::result::Result<(), String>,
);

/// Marks the rows that cannot run with this build or this user.
pub(super) fn mark_unavailable(
    outcome: &mut Outcome,
    (bench, bench_tls): Available<'_>,
    (push, push_tls): Available<'_>,
    link_skip: Option<&str>,
    (ssh_mib, lfn_mib): (u64, u64),
) {
    if let Err(reason) = bench {
        outcome.mark_unavailable(&bulk_subject(false), reason);
    }
    if let Err(reason) = bench_tls {
        outcome.mark_unavailable(&bulk_subject(true), reason);
    }
    if let Some(reason) = link_skip {
        for subject in link_subjects(ssh_mib, lfn_mib) {
            outcome.mark_unavailable(&subject, reason);
        }
    }
    let mut push_rows = vec![(tiny_subject(false), false), (tiny_subject(true), true)];
    for place in [Place::Loopback, Place::Link] {
        push_rows.push((push_subject(true, ssh_mib, place), true));
    }
    push_rows.push((push_subject(false, lfn_mib, Place::Link), false));
    push_rows.push((push_subject(true, lfn_mib, Place::Link), true));
    for (subject, tls) in push_rows {
        if let Err(reason) = push {
            outcome.mark_unavailable(&subject, reason);
        } else if let (true, Err(reason)) = (tls, push_tls) {
            outcome.mark_unavailable(&subject, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tls_row_is_compared_with_its_plain_or_ssh_baseline() {
        let mut outcome = Outcome::default();
        declare_baselines(&mut outcome, 1024, 4096);
        let baseline = |s: &Subject| outcome.baseline_for(s).cloned();
        assert_eq!(baseline(&bulk_subject(true)), Some(bulk_subject(false)));
        assert_eq!(baseline(&bulk_subject(false)), Some(bulk_subject(false)));
        assert_eq!(baseline(&tiny_subject(true)), Some(tiny_subject(false)));
        assert_eq!(baseline(&tiny_subject(false)), Some(tiny_subject(false)));
        let link = Place::Link;
        assert_eq!(
            baseline(&push_subject(true, 4096, link)),
            Some(push_subject(false, 4096, link))
        );
        for place in [Place::Loopback, link] {
            let scp = scp_subject(1024, place);
            assert_eq!(
                baseline(&push_subject(true, 1024, place)),
                Some(scp.clone())
            );
            assert_eq!(baseline(&rsync_subject(1024, place)), Some(scp.clone()));
            assert_eq!(baseline(&scp), Some(scp.clone()));
        }
    }

    #[test]
    fn subjects_name_tls_and_the_place() {
        assert_eq!(
            push_subject(true, 4096, Place::Link).label(),
            "hawser push --tls --tls-pin of a 4096 MiB file, 8 connections, linkem 10 Gbit/s × 50 ms"
        );
        assert_eq!(
            tiny_subject(false).label(),
            "hawser push (no TLS) of a 1 KiB file, 8 connections, loopback"
        );
        assert_eq!(
            bulk_subject(true).label(),
            "hawser bench bulk --tls, 4 connections, loopback"
        );
        assert_eq!(
            rsync_subject(1024, Place::Loopback).label(),
            "rsync -a --whole-file -e ssh, 1024 MiB file, loopback"
        );
        // Equal sizes make the link's TLS push and the ssh comparison's hawser row one.
        assert_eq!(
            push_subject(true, 512, Place::Link),
            push_subject(true, 512, Place::Link)
        );
        assert_ne!(
            push_subject(true, 512, Place::Link),
            push_subject(true, 512, Place::Loopback)
        );
    }

    #[test]
    fn without_the_flags_only_the_tls_rows_are_unavailable() {
        let mut outcome = Outcome::default();
        let binary = Ok(PathBuf::from("/bin/hawser"));
        let missing = Err("not built yet".to_owned());
        mark_unavailable(
            &mut outcome,
            (&binary, &missing),
            (&binary, &missing),
            None,
            (1024, 4096),
        );
        assert!(outcome.is_unavailable(&bulk_subject(true)));
        assert!(!outcome.is_unavailable(&bulk_subject(false)));
        assert!(outcome.is_unavailable(&tiny_subject(true)));
        assert!(!outcome.is_unavailable(&tiny_subject(false)));
        assert!(outcome.is_unavailable(&push_subject(true, 1024, Place::Loopback)));
        assert!(!outcome.is_unavailable(&push_subject(false, 4096, Place::Link)));
        assert!(!outcome.is_unavailable(&scp_subject(1024, Place::Link)));
        mark_unavailable(
            &mut outcome,
            (&binary, &Ok(())),
            (&binary, &Ok(())),
            Some("needs root"),
            (1024, 4096),
        );
        for subject in link_subjects(1024, 4096) {
            assert!(outcome.is_unavailable(&subject), "{}", subject.label());
        }
        assert!(!outcome.is_unavailable(&scp_subject(1024, Place::Loopback)));
    }
}
