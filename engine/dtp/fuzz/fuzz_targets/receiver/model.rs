//! The shadow model: what arrived as one bit per payload byte, and the transfer set up
//! from the input.

use std::time::Duration;

use hawser_dtp::ReceiverConfig;
use hawser_wire::dtp::{DatagramForm, IntervalSet};

/// A byte for `offset` (the data of datagrams that do not take the input's).
pub(crate) fn byte_at(offset: u64) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// `(word index, mask)` of the bits `[start, end)` of a bitmap of u64 words.
pub(crate) fn spans(start: u64, end: u64) -> impl Iterator<Item = (usize, u64)> {
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let word = at / 64;
        let stop = end.min((word + 1) * 64);
        let (lo, hi) = (at - word * 64, stop - word * 64);
        let mask = if hi - lo == 64 {
            u64::MAX
        } else {
            ((1u64 << (hi - lo)) - 1) << lo
        };
        at = stop;
        Some((word as usize, mask))
    })
}

/// The model of what arrived: one bit per payload byte, and the same as `[start, end)`
/// runs (to compare with the receiver's sets without scanning the bitmap each time; the
/// two are compared whole at the end of every input).
pub(crate) struct Bits {
    pub(crate) words: Vec<u64>,
    pub(crate) count: u64,
    pub(crate) runs: Vec<(u64, u64)>,
}

impl Bits {
    pub(crate) fn new(total: u64) -> Self {
        Bits {
            words: vec![0; total.div_ceil(64) as usize],
            count: 0,
            runs: Vec::new(),
        }
    }

    /// Sets `[start, end)`; the number of bits that were clear.
    pub(crate) fn set(&mut self, start: u64, end: u64) -> u64 {
        let mut fresh = 0;
        for (w, m) in spans(start, end) {
            fresh += u64::from((m & !self.words[w]).count_ones());
            self.words[w] |= m;
        }
        self.count += fresh;
        // Only the runs it overlaps or touches change.
        let first = self.runs.partition_point(|r| r.1 < start);
        let last = self.runs.partition_point(|r| r.0 <= end);
        let mut new = (start, end);
        for r in &self.runs[first..last] {
            new = (new.0.min(r.0), new.1.max(r.1));
        }
        self.runs.splice(first..last, [new]);
        fresh
    }

    pub(crate) fn all_set(&self, start: u64, end: u64) -> bool {
        spans(start, end).all(|(w, m)| self.words[w] & m == m)
    }

    /// What of `asked` (sorted, disjoint runs) is not set, as runs.
    pub(crate) fn missing(&self, asked: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for &(s, e) in asked {
            let mut at = s;
            let from = self.runs.partition_point(|r| r.1 <= s);
            for r in self.runs[from..].iter().take_while(|r| r.0 < e) {
                if r.0 > at {
                    out.push((at, r.0));
                }
                at = at.max(r.1);
            }
            if at < e {
                out.push((at, e));
            }
        }
        out
    }

    /// The bitmap and the runs agree (the whole bitmap is read: once per input).
    pub(crate) fn verify(&self) {
        let mut expected = Vec::new();
        let mut run: Option<u64> = None;
        for (w, &word) in self.words.iter().enumerate() {
            if word == 0 && run.is_none() || word == u64::MAX && run.is_some() {
                continue;
            }
            for bit in 0..64 {
                let at = w as u64 * 64 + bit;
                match (word >> bit & 1 == 1, run) {
                    (true, None) => run = Some(at),
                    (false, Some(s)) => {
                        expected.push((s, at));
                        run = None;
                    }
                    _ => {}
                }
            }
        }
        if let Some(s) = run {
            expected.push((s, self.words.len() as u64 * 64));
        }
        assert_eq!(self.runs, expected, "the model's runs are not its bitmap");
        assert_eq!(
            self.count,
            expected.iter().map(|(s, e)| e - s).sum::<u64>(),
            "the model's count is not its bitmap"
        );
    }
}

/// `set`'s intervals as `[start, end)` pairs.
pub(crate) fn pairs(set: &IntervalSet) -> Vec<(u64, u64)> {
    set.as_slice()
        .iter()
        .map(|i| (i.offset(), i.end()))
        .collect()
}

/// The transfer as set up.
pub(crate) struct Setup {
    pub(crate) session_id: u32,
    pub(crate) total: u64,
    pub(crate) form: DatagramForm,
    /// The configuration's `wanted` (empty: the whole payload).
    pub(crate) wanted: IntervalSet,
    /// What was asked for, as `[start, end)` pairs merged by the target: the whole
    /// payload when `wanted` is empty.
    pub(crate) asked: Vec<(u64, u64)>,
    pub(crate) report_interval: Duration,
}

impl Setup {
    pub(crate) fn asked_bytes(&self) -> u64 {
        self.asked.iter().map(|(s, e)| e - s).sum()
    }

    /// Whether `[start, end)` lies within one interval asked for.
    pub(crate) fn within_asked(&self, start: u64, end: u64) -> bool {
        let at = self.asked.partition_point(|&(_, e)| e <= start);
        self.asked
            .get(at)
            .is_some_and(|&(s, e)| s <= start && end <= e)
    }

    pub(crate) fn config(&self) -> ReceiverConfig {
        ReceiverConfig {
            session_id: self.session_id,
            total_size: self.total,
            wanted: self.wanted.clone(),
            form: self.form,
            report_interval: self.report_interval,
        }
    }
}

/// Sorted and merged (overlapping or touching) `[start, end)` pairs, without empty ones.
pub(crate) fn merged(mut pairs: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    pairs.retain(|(s, e)| s < e);
    pairs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in pairs {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// What was asked for by `wanted` in a payload of `total` bytes.
pub(crate) fn asked_of(wanted: &IntervalSet, total: u64) -> Vec<(u64, u64)> {
    if wanted.is_empty() {
        merged(vec![(0, total)])
    } else {
        pairs(wanted)
    }
}

pub(crate) fn assert_canonical(set: &IntervalSet, what: &str) {
    assert!(
        IntervalSet::from_canonical(set.as_slice().to_vec()).is_ok(),
        "{what} is not canonical: {set:?}"
    );
}
