//! The rounds of the `tls` scenario: on loopback (bench bulk, the 1 KiB pushes, the
//! OpenSSH comparison) and through linkem (the large push with and without TLS, the
//! OpenSSH comparison), every subject once per round.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};

use super::super::hawser_tools::{self, PushOptions};
use super::super::lfn::{LinkemProcess, NS_A, NS_B, TEN_GBIT_50MS, summarize_counters};
use super::super::loopback::{BULK_CONNECTIONS, hawser_bench_run};
use super::super::replicate::{DataSet, empty_directory, flush_dirty_pages, record_transfer};
use super::super::tools;
use super::super::{Context, add_series, sample_load, settle};
use super::servers::{Servers, start_servers};
use super::subjects::{
    Place, THROUGHPUT, WALL_MS, bulk_subject, push_subject, rsync_subject, scp_subject,
    tiny_subject,
};
use super::{LINK_PLAIN_PORT, LINK_SSH_PORT, LINK_TLS_PORT, PUSH_CONNECTIONS, Plan};
use crate::linkem::netns::existing_namespaces;
use crate::report::{Outcome, Subject};

/// A timed copy of `data` into `target` (emptied first, dirty pages flushed): records
/// the elapsed time and rate, or notes the failure.
fn timed_copy(
    outcome: &mut Outcome,
    (subject, round): (&Subject, usize),
    data: &DataSet,
    target: &Path,
    copy: impl FnOnce() -> Result<Vec<(f64, f64)>>,
) -> Result<()> {
    eprintln!("  round {round}: {}", subject.label());
    empty_directory(target)?;
    flush_dirty_pages()?;
    let started = Instant::now();
    match copy() {
        Ok(intervals) => {
            record_transfer(outcome, subject, data, started.elapsed().as_secs_f64());
            add_series(outcome, subject, round, intervals);
        }
        Err(error) => outcome.notes.push(format!(
            "{} round {round} failed: {error:#}",
            subject.label()
        )),
    }
    settle();
    Ok(())
}

/// One round of the OpenSSH comparison at `place`: hawser push --tls (unless
/// `skip_hawser`, when another row already pushed the same file), scp, rsync.
fn ssh_comparison_round(
    outcome: &mut Outcome,
    plan: &Plan,
    servers: &Servers,
    (place, round): (Place, usize),
    skip_hawser: bool,
) -> Result<()> {
    let data = &plan.ssh_file;
    let namespace = place.client_namespace();
    let report = plan.dir.join("push.json");
    if let (Some(binary), Some((_, address)), false) =
        (plan.tls_push_binary(), &servers.tls, skip_hawser)
    {
        let subject = push_subject(true, plan.ssh_mib, place);
        timed_copy(outcome, (&subject, round), data, &servers.tls_root, || {
            let pushed = hawser_tools::run_hawser_push(
                binary,
                namespace,
                PUSH_CONNECTIONS,
                &data.source,
                &format!("{address}:run{round}"),
                &report,
                plan.tls_options(),
            )?;
            Ok(pushed.intervals)
        })?;
    }
    let destination = servers.ssh_target.join("ssh.bin");
    timed_copy(
        outcome,
        (&scp_subject(plan.ssh_mib, place), round),
        data,
        &servers.ssh_target,
        || {
            servers.ssh.scp(namespace, &data.source, &destination)?;
            Ok(Vec::new())
        },
    )?;
    timed_copy(
        outcome,
        (&rsync_subject(plan.ssh_mib, place), round),
        data,
        &servers.ssh_target,
        || {
            servers.ssh.rsync(namespace, &data.source, &destination)?;
            Ok(Vec::new())
        },
    )?;
    empty_directory(&servers.ssh_target)?;
    empty_directory(&servers.tls_root)
}

/// Failed 1 KiB pushes of one subject: how many, and the first error.
#[derive(Debug, Default)]
struct Failures {
    count: usize,
    first: Option<String>,
}

/// The loopback rows: bench bulk, trunk setup, the OpenSSH comparison.
pub(super) fn loopback(context: &Context, outcome: &mut Outcome, plan: &Plan) -> Result<()> {
    let ports = (
        tools::free_loopback_port()?,
        tools::free_loopback_port()?,
        tools::free_loopback_port()?,
    );
    let servers = start_servers(
        outcome,
        plan,
        Place::Loopback,
        ports,
        (
            &[tiny_subject(false)],
            &[
                tiny_subject(true),
                push_subject(true, plan.ssh_mib, Place::Loopback),
            ],
        ),
    )?;
    let duration = plan.seconds.to_string();
    let connections = BULK_CONNECTIONS.to_string();
    let report = plan.dir.join("push.json");
    let mut failures = [Failures::default(), Failures::default()];
    for round in 0..context.runs {
        sample_load(outcome);
        if let Ok(binary) = &plan.bench {
            for tls in [false, true] {
                if tls && plan.bench_tls.is_err() {
                    continue;
                }
                let subject = bulk_subject(tls);
                let mut args = vec!["--mode", "bulk"];
                if tls {
                    args.push("--tls");
                }
                args.extend(["--connections", &connections, "--duration", &duration]);
                if let Some(result) =
                    hawser_bench_run(outcome, &subject, binary, &args, None, round)
                {
                    outcome.record(
                        &subject,
                        THROUGHPUT,
                        "bytes/s",
                        result.throughput_bytes_per_sec,
                    );
                }
                settle();
            }
        }

        if let Some(binary) = plan.push_binary() {
            let targets = [
                (false, servers.plain.as_ref(), &servers.plain_root),
                (true, servers.tls.as_ref(), &servers.tls_root),
            ];
            eprintln!(
                "  round {round}: {} pushes of 1 KiB, alternating with and without TLS",
                2 * plan.handshakes
            );
            for push in 0..plan.handshakes {
                for (index, &(tls, server, _)) in targets.iter().enumerate() {
                    let Some((_, address)) = server else { continue };
                    let options = if tls {
                        plan.tls_options()
                    } else {
                        PushOptions::default()
                    };
                    let started = Instant::now();
                    let pushed = hawser_tools::run_hawser_push(
                        binary,
                        None,
                        PUSH_CONNECTIONS,
                        &plan.tiny.source,
                        &format!("{address}:hs-r{round}-{push}"),
                        &report,
                        options,
                    );
                    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                    match pushed {
                        Ok(_) => outcome.record(&tiny_subject(tls), WALL_MS, "ms", elapsed_ms),
                        Err(error) => {
                            let tally = &mut failures[index];
                            tally.count += 1;
                            tally.first.get_or_insert_with(|| format!("{error:#}"));
                        }
                    }
                }
            }
            for (_, _, root) in targets {
                empty_directory(root)?;
            }
            settle();
        }

        ssh_comparison_round(outcome, plan, &servers, (Place::Loopback, round), false)?;
    }
    for (tls, tally) in [false, true].into_iter().zip(failures) {
        if let Some(first) = tally.first {
            outcome.notes.push(format!(
                "{}: {} of {} pushes failed; the first: {first}",
                tiny_subject(tls).label(),
                tally.count,
                plan.handshakes * context.runs
            ));
        }
    }
    Ok(())
}

/// The link rows: the large push with and without TLS, and the OpenSSH comparison.
pub(super) fn link(context: &Context, outcome: &mut Outcome, plan: &Plan) -> Result<()> {
    if existing_namespaces()?
        .iter()
        .any(|n| n == NS_A || n == NS_B)
    {
        bail!(
            "namespaces {NS_A}/{NS_B} already exist: another linkem is running, or a \
             leftover (remove with `hawser-perf linkem --cleanup`)"
        );
    }
    let linkem = LinkemProcess::start(&TEN_GBIT_50MS, &context.scratch)?;
    let plain_subject = push_subject(false, plan.lfn_mib, Place::Link);
    let tls_subject = push_subject(true, plan.lfn_mib, Place::Link);
    let comparison_subject = push_subject(true, plan.ssh_mib, Place::Link);
    let servers = start_servers(
        outcome,
        plan,
        Place::Link,
        (LINK_PLAIN_PORT, LINK_TLS_PORT, LINK_SSH_PORT),
        (
            std::slice::from_ref(&plain_subject),
            &[tls_subject.clone(), comparison_subject.clone()],
        ),
    )?;
    let report = plan.dir.join("push.json");
    for round in 0..context.runs {
        sample_load(outcome);
        if let (Some(binary), Some(data)) = (plan.push_binary(), &plan.lfn_file) {
            for (tls, subject, server, root) in [
                (false, &plain_subject, &servers.plain, &servers.plain_root),
                (true, &tls_subject, &servers.tls, &servers.tls_root),
            ] {
                let Some((_, address)) = server else { continue };
                let options = if tls {
                    plan.tls_options()
                } else {
                    PushOptions::default()
                };
                timed_copy(outcome, (subject, round), data, root, || {
                    let pushed = hawser_tools::run_hawser_push(
                        binary,
                        Some(NS_A),
                        PUSH_CONNECTIONS,
                        &data.source,
                        &format!("{address}:run{round}"),
                        &report,
                        options,
                    )?;
                    Ok(pushed.intervals)
                })?;
                empty_directory(root)?;
            }
        }
        // With equal sizes the TLS push above is the comparison's hawser row.
        let skip_hawser = comparison_subject == tls_subject;
        ssh_comparison_round(outcome, plan, &servers, (Place::Link, round), skip_hawser)?;
    }
    drop(servers);
    if let Some(summary) = linkem.stop().as_deref().and_then(summarize_counters) {
        outcome.notes.push(summary);
    }
    Ok(())
}
