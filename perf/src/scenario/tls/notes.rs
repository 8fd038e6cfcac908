//! The notes of the `tls` report: how each row was measured, and the ratios of medians
//! the issue asks for.

use super::super::lfn::{ADDRESS_B, NS_A, NS_B, TEN_GBIT_50MS};
use super::super::local::ratio_note;
use super::super::loopback::BULK_CONNECTIONS;
use super::subjects::{
    Place, THROUGHPUT, WALL_MS, bulk_subject, push_subject, rsync_subject, scp_subject,
    tiny_subject,
};
use super::{LINK_PLAIN_PORT, LINK_TLS_PORT, PUSH_CONNECTIONS, Plan};
use crate::report::Outcome;

/// The notes that say how each row was measured.
pub(super) fn describe(outcome: &mut Outcome, plan: &Plan) {
    let seconds = plan.seconds;
    outcome.notes.push(format!(
        "TLS: the servers present a self-signed P-256 certificate made for this run (`openssl \
         req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj \
         /CN=localhost -addext subjectAltName=IP:127.0.0.1,IP:{ADDRESS_B},DNS:localhost`) \
         with `hawser serve --tls-cert --tls-key --require-tls`; clients pin it with \
         `--tls --tls-pin SHA256` (the hex SHA-256 of its DER). Rows without TLS go to a \
         second `hawser serve` without a certificate. Every server takes anonymous clients \
         (`--allow-anonymous`), as in the other scenarios."
    ));
    outcome.notes.push(format!(
        "bench bulk: `hawser bench --mode bulk --connections {BULK_CONNECTIONS} --duration \
         {seconds} --json`, and the same with `--tls` (its embedded server then presents a \
         certificate it generates and its client pins it); loopback, server and client in \
         one process; the rate counts request payload bytes."
    ));
    outcome.notes.push(format!(
        "Trunk setup: wall time of `hawser push --connections {PUSH_CONNECTIONS} --compress \
         off --quiet --json FILE tiny.bin 127.0.0.1:PORT:DEST` of a 1 KiB file into a fresh \
         DEST, with `--tls --tls-pin PIN` and without, {} times each per round, the two \
         alternating push by push; every push is one value of {WALL_MS}. The time covers \
         process start, connecting and authenticating the {PUSH_CONNECTIONS} connections, \
         the one-file job and exit, the same with and without TLS except for TLS: the \
         difference of the medians is what TLS adds to bringing up the trunk.",
        plan.handshakes
    ));
    outcome.notes.push(format!(
        "OpenSSH comparison: one {} MiB incompressible file from the page cache, copied \
         into an emptied target directory each run (synced before each run; no target is \
         synced after): `hawser push --tls --tls-pin PIN --connections {PUSH_CONNECTIONS} \
         --compress off --quiet --json FILE ssh.bin HOST:PORT:DEST`; `scp -q -i KEY -P PORT \
         -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ssh.bin \
         USER@HOST:DEST` (OpenSSH's scp speaks SFTP since 9.0: the server runs \
         internal-sftp); `rsync -a --whole-file -e \"ssh -i KEY -p PORT ...\" ssh.bin \
         USER@HOST:DEST`; both ssh clients also with `-F /dev/null -o IdentitiesOnly=yes -o \
         BatchMode=yes -o LogLevel=ERROR` (no user configuration, agent key or prompt). \
         OpenSSH uses its default cipher and no compression. sshd is \
         started by the scenario: `sshd -D -e -E LOG -f CONFIG -p PORT` with a generated \
         ed25519 host key and client key, public keys only, `UsePAM no`, `StrictModes no`, \
         `PermitRootLogin prohibit-password`. Rate = file bytes / wall time of the client \
         command (process start and handshakes included for every tool).",
        plan.ssh_mib
    ));
    if plan.link {
        outcome.notes.push(format!(
            "Through the link: `hawser-perf {}` (as `lfn-10g-50ms`); the servers (hawser serve \
             without and with TLS, sshd) in {NS_B} on {ADDRESS_B}, every client in {NS_A}. \
             TLS vs no TLS: `hawser push --connections {PUSH_CONNECTIONS} --compress off \
             --quiet --json FILE lfn.bin {ADDRESS_B}:PORT:DEST` of one {} MiB incompressible \
             file from the page cache into an emptied target, rate = file bytes / wall time of \
             the push (process start and the handshakes over the 50 ms round trip included), \
             intervals from its report.",
            TEN_GBIT_50MS.linkem_args().join(" "),
            plan.lfn_mib
        ));
    }
}

/// The ratios of medians the issue asks for, as notes.
pub(super) fn ratios(outcome: &mut Outcome, plan: &Plan) {
    let (ssh_mib, lfn_mib, seconds) = (plan.ssh_mib, plan.lfn_mib, plan.seconds);
    let mut notes = vec![ratio_note(
        outcome,
        "bench bulk with / without TLS on loopback, throughput",
        THROUGHPUT,
        (&bulk_subject(true), &bulk_subject(false)),
        "target ≥ 0.6x",
        &format!(
            "`hawser bench --mode bulk --tls --connections {BULK_CONNECTIONS} --duration \
             {seconds} --json` vs the same without `--tls`"
        ),
    )];
    notes.push(ratio_note(
        outcome,
        "push of a 1 KiB file with / without TLS, wall time",
        WALL_MS,
        (&tiny_subject(true), &tiny_subject(false)),
        "lower is better",
        &format!(
            "`hawser push --tls --tls-pin PIN --connections {PUSH_CONNECTIONS} tiny.bin \
             127.0.0.1:PORT:DEST` vs the same without `--tls --tls-pin PIN`"
        ),
    ));
    if let (Some(tls), Some(plain)) = (
        outcome.median(&tiny_subject(true), WALL_MS),
        outcome.median(&tiny_subject(false), WALL_MS),
    ) {
        notes.push(format!(
            "TLS adds {:.1} ms (difference of the medians) to a push that brings up a \
             {PUSH_CONNECTIONS}-connection trunk on loopback.",
            tls - plain
        ));
    }
    notes.push(ratio_note(
        outcome,
        &format!("push of {lfn_mib} MiB through the link with / without TLS, throughput"),
        THROUGHPUT,
        (
            &push_subject(true, lfn_mib, Place::Link),
            &push_subject(false, lfn_mib, Place::Link),
        ),
        "target ≥ 0.9x",
        &format!(
            "`hawser push --tls --tls-pin PIN --connections {PUSH_CONNECTIONS} lfn.bin \
             {ADDRESS_B}:{LINK_TLS_PORT}:DEST` vs `hawser push --connections \
             {PUSH_CONNECTIONS} lfn.bin {ADDRESS_B}:{LINK_PLAIN_PORT}:DEST`"
        ),
    ));
    for place in [Place::Loopback, Place::Link] {
        let hawser = push_subject(true, ssh_mib, place);
        let target = match place {
            Place::Loopback => "no target",
            Place::Link => "target ≥ 3x",
        };
        notes.push(ratio_note(
            outcome,
            &format!("hawser push --tls / scp, {ssh_mib} MiB, {}", place.label()),
            THROUGHPUT,
            (&hawser, &scp_subject(ssh_mib, place)),
            target,
            "see the OpenSSH comparison above",
        ));
        notes.push(ratio_note(
            outcome,
            &format!(
                "hawser push --tls / rsync -e ssh, {ssh_mib} MiB, {}",
                place.label()
            ),
            THROUGHPUT,
            (&hawser, &rsync_subject(ssh_mib, place)),
            "no target",
            "see the OpenSSH comparison above",
        ));
    }
    outcome.notes.extend(notes);
}
