//! The host's CPU times (`/proc/stat`): how much of all its CPUs sat idle over a span,
//! which tells `--compress auto` whether a job that waits for its answers waits for the
//! link or for a host with no CPU to spare.

/// Idle and total CPU time of all the host's CPUs, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    idle: u64,
    total: u64,
}

impl CpuTimes {
    /// Times as given (for tests that play a host).
    #[cfg(test)]
    pub(crate) fn new(idle: u64, total: u64) -> Self {
        CpuTimes { idle, total }
    }

    /// The share of the CPU time from `self` to `later` that was idle; `None` if no time
    /// passed.
    pub(crate) fn idle_share_until(self, later: CpuTimes) -> Option<f64> {
        let total = later.total.checked_sub(self.total).filter(|&t| t > 0)?;
        let idle = later.idle.saturating_sub(self.idle).min(total);
        Some(idle as f64 / total as f64)
    }
}

/// The host's CPU times now, or `None` where `/proc/stat` cannot be read.
pub(crate) fn read() -> Option<CpuTimes> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse(text.lines().next()?)
}

/// Parses the aggregate `cpu` line: user nice system idle iowait irq softirq steal
/// (guest times are within user and nice already).
fn parse(line: &str) -> Option<CpuTimes> {
    let mut fields = line.split_ascii_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values[..] else {
        return None;
    };
    Some(CpuTimes {
        idle: idle + iowait,
        total: user + nice + system + idle + iowait + irq + softirq + steal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aggregate_line_gives_idle_and_total() {
        let earlier = parse("cpu  100 0 50 800 50 0 0 0 0 0").unwrap();
        let later = parse("cpu  300 0 150 900 50 0 0 0 0 0").unwrap();
        assert_eq!(earlier.idle_share_until(later), Some(0.25));
        assert_eq!(earlier.idle_share_until(earlier), None, "no time passed");
        assert_eq!(parse("cpu0 1 2 3 4 5 6 7 8"), None, "one CPU's line");
        assert_eq!(parse("cpu 1 2 x"), None);
    }

    #[test]
    fn this_host_reports_its_cpu_times() {
        let times = read().expect("Linux has /proc/stat");
        assert!(times.total >= times.idle);
    }
}
