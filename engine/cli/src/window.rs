//! How many blocks a job keeps in flight: `--window`, or a window sized from the round
//! trip measured when connecting.

use std::time::Duration;

use crate::job_args::JobArgs;

/// Fewest blocks in flight, whatever their size.
const MIN_WINDOW: usize = 4;
/// Fewest bytes of blocks the automatic window keeps in flight, however short the path:
/// the target writes several blocks at once, and each needs a successor on its way while
/// it is written, or the disk idles between blocks.
const AUTO_WINDOW_MIN_BYTES: u64 = 64 << 20;
/// The link rate the automatic window is sized for (10 Gbit/s, in bytes per second).
const AUTO_WINDOW_LINK_RATE: f64 = 1.25e9;
/// Most bytes of blocks the automatic window keeps in flight.
const AUTO_WINDOW_MAX_BYTES: u64 = 160 << 20;

/// The window `--window` defaults to for a path with round trip `rtt`: enough blocks of
/// `block_size` for twice the bandwidth-delay product of a 10 Gbit/s link (the second
/// half covers the target's time to write and acknowledge a block), between 64 MiB and
/// 160 MiB worth of blocks, and never fewer than four.
/// Under a `--rate` cap the floor is at most half a second of the cap: blocks beyond what
/// the cap sends meanwhile only wait, and would all finish at once at the end.
pub fn auto_window(rtt: Duration, block_size: u32, rate: Option<u64>) -> usize {
    let block = u64::from(block_size.max(1));
    let wanted = (2.0 * rtt.as_secs_f64() * AUTO_WINDOW_LINK_RATE / block as f64).ceil() as u64;
    let floor = rate.map_or(AUTO_WINDOW_MIN_BYTES, |r| {
        (r / 2).min(AUTO_WINDOW_MIN_BYTES)
    });
    let least = (floor / block).max(MIN_WINDOW as u64);
    let most = (AUTO_WINDOW_MAX_BYTES / block).max(least);
    wanted.clamp(least, most) as usize
}

/// `job.window`, or the automatic window for the round trip `rtt`.
pub fn window_for(job: &JobArgs, rtt: Duration, block_size: u32) -> usize {
    job.window
        .unwrap_or_else(|| auto_window(rtt, block_size, job.rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_args::tests::job;

    const MIB: u32 = 1 << 20;

    #[test]
    fn the_automatic_window_covers_twice_the_bandwidth_delay_product_within_bounds() {
        // A LAN or loopback: the minimum, 64 MiB of blocks.
        assert_eq!(auto_window(Duration::from_micros(80), 8 * MIB, None), 8);
        assert_eq!(auto_window(Duration::ZERO, MIB, None), 64);
        // 50 ms at 10 Gbit/s is 62.5 MB: twice that in 8 MiB blocks is 15 blocks.
        assert_eq!(auto_window(Duration::from_millis(50), 8 * MIB, None), 15);
        // Smaller blocks, more of them for the same bytes.
        assert_eq!(auto_window(Duration::from_millis(50), MIB, None), 120);
        // A very long path stops at 160 MiB of blocks.
        assert_eq!(auto_window(Duration::from_secs(1), 8 * MIB, None), 20);
        // Under a rate cap, at most half a second of it (but four blocks).
        assert_eq!(auto_window(Duration::ZERO, MIB, Some(6_000_000)), 4);
        assert_eq!(auto_window(Duration::ZERO, MIB, Some(20_000_000)), 9);
        assert_eq!(auto_window(Duration::ZERO, 8 * MIB, Some(1_000_000_000)), 8);
        // Large blocks: never fewer than four.
        assert_eq!(auto_window(Duration::from_secs(1), 64 * MIB, None), 4);
        assert_eq!(auto_window(Duration::ZERO, 32 * MIB, None), 4);
    }

    #[test]
    fn an_explicit_window_wins() {
        let rtt = Duration::from_millis(50);
        assert_eq!(window_for(&job(&["--window", "7"]), rtt, 8 * MIB), 7);
        assert_eq!(window_for(&job(&[]), rtt, 8 * MIB), 15);
    }
}
