//! Cost per byte: the core-seconds a transfer's client and server processes used per GB
//! moved (GB = 10⁹ bytes), recorded as report metrics, and the report section that puts
//! them side by side with their ratio to a reference (iperf3 memory to memory).

use std::fmt::Write as _;

use crate::report::{Outcome, Subject};

/// The unit of the cost metrics.
pub const UNIT: &str = "core-s/GB";
/// The client process's core-seconds per GB.
pub const CLIENT: &str = "client_core_s_per_gb";
/// The server process's core-seconds per GB (over the run).
pub const SERVER: &str = "server_core_s_per_gb";
/// Client and server together: what the transfer cost the machine.
pub const TOTAL: &str = "core_s_per_gb";

/// Records one run of a transfer between a client and a server process: `client_s` and
/// `server_s` CPU seconds for `bytes` moved. Client + server only when both were read.
pub fn record_transfer(
    outcome: &mut Outcome,
    subject: &Subject,
    bytes: f64,
    client_s: Option<f64>,
    server_s: Option<f64>,
) {
    if bytes <= 0.0 {
        return;
    }
    let gb = bytes / 1e9;
    if let Some(client_s) = client_s {
        outcome.record(subject, CLIENT, UNIT, client_s / gb);
    }
    if let Some(server_s) = server_s {
        outcome.record(subject, SERVER, UNIT, server_s / gb);
    }
    if let (Some(client_s), Some(server_s)) = (client_s, server_s) {
        outcome.record(subject, TOTAL, UNIT, (client_s + server_s) / gb);
    }
}

/// Records one run of work without a server (the harness writing a file itself):
/// `cpu_s` seconds for `bytes`, as the client's and the total.
pub fn record_local(outcome: &mut Outcome, subject: &Subject, bytes: f64, cpu_s: f64) {
    if bytes <= 0.0 {
        return;
    }
    let per_gb = cpu_s / (bytes / 1e9);
    outcome.record(subject, CLIENT, UNIT, per_gb);
    outcome.record(subject, TOTAL, UNIT, per_gb);
}

/// A Markdown table of the medians of `subjects` (those measured): client, server,
/// client + server, and client + server over `reference`'s. `None` if none was measured.
pub fn section(outcome: &Outcome, subjects: &[Subject], reference: &Subject) -> Option<String> {
    let reference_total = outcome.median(reference, TOTAL);
    let cell = |value: Option<f64>| value.map_or("—".to_owned(), |v| format!("{v:.2}"));
    let mut table = format!(
        "| tool | variant | client | server | client + server | vs {} |\n|---|---|---|---|---|---|\n",
        reference.label()
    );
    let mut rows = 0;
    for subject in subjects {
        let Some(total) = outcome.median(subject, TOTAL) else {
            continue;
        };
        let versus = if subject == reference {
            "reference".to_owned()
        } else {
            reference_total
                .filter(|&r| r > 0.0)
                .map_or("—".to_owned(), |r| format!("{:.2}×", total / r))
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | **{total:.2}** | {versus} |",
            subject.tool,
            subject.variant,
            cell(outcome.median(subject, CLIENT)),
            cell(outcome.median(subject, SERVER)),
        );
        rows += 1;
    }
    (rows > 0).then_some(table)
}

/// The note that says how the cost was measured.
pub fn method_note() -> String {
    "Cost per byte (core-s/GB, GB = 10^9 bytes): user + system CPU seconds from \
     /proc/PID/stat (utime + stime + cutime + cstime: every thread, and the children a \
     process reaped) per GB moved. The client's total is read when it has exited and \
     before it is reaped; the server's is the difference of readings before the client \
     starts and after it ends (plus the pause between runs, when the server is idle). \
     Medians of the per-run values; the link emulator's CPU is not counted."
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_per_gb_and_the_table_against_the_reference() {
        let mut outcome = Outcome::default();
        let iperf3 = Subject::new("iperf3", "-P 8");
        let hawser = Subject::new("hawser", "push");
        let ceiling = Subject::new("file-write", "O_DIRECT");
        record_transfer(&mut outcome, &iperf3, 4e9, Some(1.0), Some(1.0));
        record_transfer(&mut outcome, &hawser, 2e9, Some(1.5), Some(0.5));
        record_local(&mut outcome, &ceiling, 1e9, 0.25);
        record_local(&mut outcome, &Subject::new("nothing", "moved"), 0.0, 1.0);
        let unread = Subject::new("rsync", "server unread");
        record_transfer(&mut outcome, &unread, 1e9, Some(1.0), None);
        assert_eq!(outcome.median(&unread, CLIENT), Some(1.0));
        assert_eq!(outcome.median(&unread, TOTAL), None);
        assert_eq!(outcome.median(&iperf3, TOTAL), Some(0.5));
        assert_eq!(outcome.median(&hawser, CLIENT), Some(0.75));
        assert_eq!(outcome.median(&hawser, SERVER), Some(0.25));
        assert_eq!(outcome.median(&ceiling, TOTAL), Some(0.25));
        assert_eq!(outcome.median(&ceiling, SERVER), None);
        let table = section(
            &outcome,
            &[
                iperf3.clone(),
                hawser.clone(),
                ceiling.clone(),
                Subject::new("xrdcp", "not run"),
            ],
            &iperf3,
        )
        .unwrap();
        assert!(
            table.contains("| iperf3 | -P 8 | 0.25 | 0.25 | **0.50** | reference |"),
            "{table}"
        );
        assert!(
            table.contains("| hawser | push | 0.75 | 0.25 | **1.00** | 2.00× |"),
            "{table}"
        );
        assert!(
            table.contains("| file-write | O_DIRECT | 0.25 | — | **0.25** | 0.50× |"),
            "{table}"
        );
        assert!(!table.contains("xrdcp"));
        assert!(section(&Outcome::default(), &[hawser], &iperf3).is_none());
    }
}
