//! CPU time of the processes a scenario starts, read from `/proc/PID/stat`: a client's
//! final total (read once it has exited and before it is reaped, while the kernel still
//! keeps its times) and a server's use over a run (the difference of two readings).
//!
//! A process's total counts every thread it ran and the children it reaped (an rsync
//! daemon's per-connection processes, a shell's commands). `ip netns exec`, `unshare`
//! and `sh -c 'exec ...'` replace themselves with the program, so the pid a scenario
//! spawns is the measured program's.

use std::io::{self, Read};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::sys;

/// CPU seconds (user + system) a process has used.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuTimes {
    /// Its own threads, the exited ones included.
    pub own_s: f64,
    /// The children it has waited for.
    pub children_s: f64,
}

impl CpuTimes {
    /// Own and children's seconds together.
    pub fn total_s(self) -> f64 {
        self.own_s + self.children_s
    }

    /// Seconds used since `earlier` (a reading of the same process).
    pub fn since(self, earlier: CpuTimes) -> f64 {
        (self.total_s() - earlier.total_s()).max(0.0)
    }
}

/// Seconds used between two readings of one process (`None` if either failed).
pub fn seconds_between(before: Option<CpuTimes>, after: Option<CpuTimes>) -> Option<f64> {
    Some(after?.since(before?))
}

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStat {
    /// Its state letter: `R`, `S`, `D`, `Z` (exited, not reaped yet), ...
    pub state: char,
    /// Its CPU times.
    pub cpu: CpuTimes,
}

impl ProcessStat {
    /// Whether the process has exited (its times are final).
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses a `/proc/PID/stat` line, whose CPU times are in clock ticks. The command name
/// (field 2, in parentheses) may contain spaces and parentheses, so the fields are
/// counted from the last `)`.
pub fn parse_stat(text: &str, ticks_per_second: u64) -> Option<ProcessStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3; utime, stime, cutime, cstime are fields 14-17.
    let state = fields.first()?.chars().next()?;
    let ticks = |index: usize| -> Option<f64> {
        let value: i64 = fields.get(index)?.parse().ok()?;
        Some(value.max(0) as f64 / ticks_per_second as f64)
    };
    Some(ProcessStat {
        state,
        cpu: CpuTimes {
            own_s: ticks(11)? + ticks(12)?,
            children_s: ticks(13)? + ticks(14)?,
        },
    })
}

/// Reads `/proc/PID/stat` of `pid`.
pub fn read_process(pid: u32) -> io::Result<ProcessStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text, sys::clock_ticks_per_second()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat: {text:?}"),
        )
    })
}

/// CPU times of this process (the harness's own threads, e.g. a file-write ceiling).
pub fn own_cpu() -> io::Result<CpuTimes> {
    read_process(std::process::id()).map(|stat| stat.cpu)
}

/// A finished command: its output, its CPU times and whether its time limit ended it.
#[derive(Debug)]
pub struct MeasuredOutput {
    /// Exit status and everything it printed.
    pub output: Output,
    /// Its final CPU times (`None` if `/proc` could not be read).
    pub cpu: Option<CpuTimes>,
    /// Whether it was killed at the time limit.
    pub timed_out: bool,
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Runs `command` to its end like [`Command::output`] (stdin from /dev/null) and reads
/// its CPU times between its exit and its reaping; with `limit`, kills it (SIGKILL) if
/// it runs longer.
pub fn output_with_cpu(
    command: &mut Command,
    limit: Option<Duration>,
) -> io::Result<MeasuredOutput> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    // Read both pipes while waiting, or a chatty child blocks on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let (exited, exit_seen) = mpsc::channel::<()>();
    let watchdog = limit.map(|limit| {
        thread::spawn(move || {
            let expired = matches!(
                exit_seen.recv_timeout(limit),
                Err(RecvTimeoutError::Timeout)
            );
            if expired {
                let _ = sys::kill_process(pid);
            }
            expired
        })
    });
    let waited = sys::wait_for_exit_without_reaping(pid);
    let cpu = read_process(pid).ok().map(|stat| stat.cpu);
    drop(exited);
    let timed_out = watchdog.is_some_and(|w| w.join().unwrap_or(false));
    // Reaped only after the watchdog is done, so it can never signal a recycled pid.
    let status = child.wait()?;
    waited?;
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    Ok(MeasuredOutput {
        output,
        cpu,
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A name with a space and a parenthesis; utime 250, stime 50, cutime 30, cstime 20.
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1200 0 3 0 250 50 30 20 \
                    20 0 9 0 12345 1000000 300 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1";
        let stat = parse_stat(line, 100).unwrap();
        assert_eq!(stat.state, 'S');
        assert!(!stat.exited());
        assert!((stat.cpu.own_s - 3.0).abs() < 1e-9);
        assert!((stat.cpu.children_s - 0.5).abs() < 1e-9);
        assert!((stat.cpu.total_s() - 3.5).abs() < 1e-9);
        let zombie = line.replace(") S ", ") Z ");
        assert!(parse_stat(&zombie, 100).unwrap().exited());
        assert!(parse_stat("4242 (cut short) S 1 2 3", 100).is_none());
        assert!(parse_stat("no parenthesis at all", 100).is_none());
    }

    #[test]
    fn usage_since_an_earlier_reading_never_goes_negative() {
        let earlier = CpuTimes {
            own_s: 2.0,
            children_s: 1.0,
        };
        let later = CpuTimes {
            own_s: 2.5,
            children_s: 1.25,
        };
        assert!((later.since(earlier) - 0.75).abs() < 1e-9);
        assert_eq!(earlier.since(later), 0.0);
        assert_eq!(seconds_between(Some(earlier), Some(later)), Some(0.75));
        assert_eq!(seconds_between(None, Some(later)), None);
        assert_eq!(seconds_between(Some(earlier), None), None);
    }

    #[test]
    fn a_busy_child_is_measured_after_it_exits() {
        // A few tenths of a CPU second of shell arithmetic, however busy the machine.
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo done",
        ]);
        let measured = output_with_cpu(&mut command, None).unwrap();
        assert!(measured.output.status.success());
        assert_eq!(String::from_utf8_lossy(&measured.output.stdout), "done\n");
        assert!(!measured.timed_out);
        let cpu = measured.cpu.unwrap();
        assert!(cpu.own_s > 0.05, "{cpu:?}");
    }

    #[test]
    fn a_child_past_its_limit_is_killed() {
        let mut command = Command::new("sleep");
        command.arg("30");
        let started = std::time::Instant::now();
        let measured = output_with_cpu(&mut command, Some(Duration::from_millis(200))).unwrap();
        assert!(measured.timed_out);
        assert!(!measured.output.status.success());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn this_process_has_cpu_times() {
        assert!(own_cpu().unwrap().own_s >= 0.0);
    }
}
