//! Byte intervals of a payload and canonical sets of them.
//!
//! The same [`IntervalSet`] is the wire form of requested ranges and of holes (ascending,
//! non-empty, neither overlapping nor touching) and the receiver's bookkeeping of what
//! has arrived: data is usable while holes remain, and the holes are what is re-requested.

use super::error::DtpErrorKind;
use crate::reader::Reader;

/// A non-empty range of payload bytes `[offset, offset + length)` whose end fits `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    offset: u64,
    length: u64,
}

impl Interval {
    /// Bytes on the wire: offset and length, two `u64`.
    pub const ENCODED_LEN: usize = 16;

    /// An interval, or `None` if `length` is zero or the end overflows `u64`.
    pub fn new(offset: u64, length: u64) -> Option<Self> {
        (length > 0 && offset.checked_add(length).is_some()).then_some(Self { offset, length })
    }

    /// First byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of bytes.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }

    fn from_bounds(start: u64, end: u64) -> Option<Self> {
        Self::new(start, end.checked_sub(start)?)
    }
}

/// A canonical set of intervals: ascending, none empty, none overlapping or touching.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IntervalSet {
    intervals: Vec<Interval>,
}

impl IntervalSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// `[0, total)`, or the empty set for `total == 0`.
    pub fn whole(total: u64) -> Self {
        Self {
            intervals: Interval::new(0, total).into_iter().collect(),
        }
    }

    /// Accepts `intervals` if they are already canonical; on failure returns the index of
    /// the first bad one.
    pub fn from_canonical(intervals: Vec<Interval>) -> Result<Self, usize> {
        match intervals
            .windows(2)
            .position(|pair| matches!(pair, [a, b] if b.offset <= a.end()))
        {
            Some(i) => Err(i + 1),
            None => Ok(Self { intervals }),
        }
    }

    /// The intervals, ascending.
    pub fn as_slice(&self) -> &[Interval] {
        &self.intervals
    }

    /// Number of intervals.
    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    /// True when the set holds no byte.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Total bytes covered.
    pub fn covered(&self) -> u64 {
        self.intervals.iter().map(Interval::length).sum()
    }

    /// Adds an interval, merging it with every interval it overlaps or touches.
    pub fn insert(&mut self, interval: Interval) {
        // First interval that ends at or after the new start: everything before stays.
        let first = self
            .intervals
            .partition_point(|i| i.end() < interval.offset);
        // First interval that starts after the new end: everything from there stays.
        let last = self
            .intervals
            .partition_point(|i| i.offset <= interval.end());
        let merged = match (self.intervals.get(first), last.checked_sub(1)) {
            (Some(low), Some(high_index)) if first <= high_index => {
                let high = self.intervals.get(high_index).copied().unwrap_or(interval);
                let start = low.offset.min(interval.offset);
                let end = high.end().max(interval.end());
                Interval::from_bounds(start, end).unwrap_or(interval)
            }
            _ => interval,
        };
        self.intervals.splice(first..last.max(first), [merged]);
    }

    /// True when every byte of `[offset, offset + length)` is in the set.
    pub fn contains(&self, offset: u64, length: u64) -> bool {
        let Some(end) = offset.checked_add(length) else {
            return false;
        };
        if length == 0 {
            return true;
        }
        let index = self.intervals.partition_point(|i| i.end() <= offset);
        self.intervals
            .get(index)
            .is_some_and(|i| i.offset <= offset && end <= i.end())
    }

    /// The bytes of `within` that are not in this set: the holes to re-request.
    pub fn missing_within(&self, within: &IntervalSet) -> IntervalSet {
        let mut holes = Vec::new();
        let mut have = self.intervals.iter().peekable();
        for wanted in &within.intervals {
            let mut cursor = wanted.offset;
            while let Some(h) = have.peek() {
                if h.end() <= cursor {
                    have.next();
                    continue;
                }
                if h.offset >= wanted.end() {
                    break;
                }
                holes.extend(Interval::from_bounds(cursor, h.offset));
                cursor = cursor.max(h.end());
                if h.end() >= wanted.end() {
                    break;
                }
                have.next();
            }
            holes.extend(Interval::from_bounds(cursor, wanted.end()));
        }
        // Holes of distinct canonical intervals are separated by at least one byte.
        Self { intervals: holes }
    }

    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, (usize, DtpErrorKind)> {
        let count_at = reader.used();
        let count = super::error::field(reader, Reader::u32)?;
        if count as usize > reader.left() / Interval::ENCODED_LEN {
            return Err((count_at, DtpErrorKind::CountExceedsInput(count)));
        }
        let mut intervals = Vec::with_capacity(count as usize);
        let mut previous_end: Option<u64> = None;
        for _ in 0..count {
            let at = reader.used();
            let (Some(offset), Some(length)) = (reader.u64(), reader.u64()) else {
                return Err((at, DtpErrorKind::Truncated));
            };
            if length == 0 {
                return Err((at + 8, DtpErrorKind::EmptyInterval));
            }
            let interval =
                Interval::new(offset, length).ok_or((at, DtpErrorKind::IntervalOverflow))?;
            if previous_end.is_some_and(|end| offset <= end) {
                return Err((at, DtpErrorKind::IntervalsNotCanonical));
            }
            previous_end = Some(interval.end());
            intervals.push(interval);
        }
        Ok(Self { intervals })
    }

    pub(crate) fn encode(
        &self,
        buf: &mut impl bytes::BufMut,
    ) -> Result<(), super::error::DtpEncodeError> {
        let count = u32::try_from(self.intervals.len())
            .map_err(|_| super::error::DtpEncodeError::TooManyIntervals(self.intervals.len()))?;
        buf.put_u32(count);
        for interval in &self.intervals {
            buf.put_u64(interval.offset);
            buf.put_u64(interval.length);
        }
        Ok(())
    }

    pub(crate) fn encoded_len(&self) -> usize {
        4 + self.intervals.len() * Interval::ENCODED_LEN
    }
}

impl FromIterator<Interval> for IntervalSet {
    fn from_iter<T: IntoIterator<Item = Interval>>(iter: T) -> Self {
        let mut set = Self::new();
        for interval in iter {
            set.insert(interval);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn iv(offset: u64, length: u64) -> Interval {
        Interval::new(offset, length).unwrap()
    }

    #[test]
    fn insert_merges_overlapping_and_touching() {
        let mut set = IntervalSet::new();
        set.insert(iv(10, 5));
        set.insert(iv(30, 5));
        set.insert(iv(0, 2));
        assert_eq!(set.as_slice(), [iv(0, 2), iv(10, 5), iv(30, 5)]);
        set.insert(iv(15, 15)); // touches both neighbours
        assert_eq!(set.as_slice(), [iv(0, 2), iv(10, 25)]);
        set.insert(iv(1, 100));
        assert_eq!(set.as_slice(), [iv(0, 101)]);
        assert!(set.contains(0, 101) && !set.contains(100, 2));
    }

    #[test]
    fn holes_within_the_request() {
        let have: IntervalSet = [iv(0, 10), iv(20, 10)].into_iter().collect();
        assert_eq!(
            have.missing_within(&IntervalSet::whole(40)).as_slice(),
            [iv(10, 10), iv(30, 10)]
        );
        let wanted: IntervalSet = [iv(5, 20), iv(35, 2)].into_iter().collect();
        assert_eq!(
            have.missing_within(&wanted).as_slice(),
            [iv(10, 10), iv(35, 2)]
        );
        assert!(have.missing_within(&IntervalSet::whole(30)).as_slice() == [iv(10, 10)]);
        assert!(IntervalSet::whole(0).is_empty());
    }

    #[test]
    fn canonical_check() {
        assert_eq!(
            IntervalSet::from_canonical(vec![iv(0, 1), iv(1, 1)]),
            Err(1)
        );
        assert!(IntervalSet::from_canonical(vec![iv(0, 1), iv(2, 1)]).is_ok());
        assert_eq!(Interval::new(u64::MAX, 1), None);
        assert_eq!(Interval::new(3, 0), None);
    }

    proptest! {
        #[test]
        fn set_matches_a_bitmap(ranges in proptest::collection::vec((0u64..200, 1u64..20), 0..20)) {
            let mut bitmap = [false; 220];
            let mut set = IntervalSet::new();
            for (offset, length) in ranges {
                set.insert(iv(offset, length));
                for b in offset..offset + length {
                    bitmap[b as usize] = true;
                }
            }
            prop_assert!(IntervalSet::from_canonical(set.as_slice().to_vec()).is_ok());
            let covered = bitmap.iter().filter(|b| **b).count() as u64;
            prop_assert_eq!(set.covered(), covered);
            let holes = set.missing_within(&IntervalSet::whole(220));
            prop_assert_eq!(holes.covered(), 220 - covered);
            for (b, present) in bitmap.iter().enumerate() {
                prop_assert_eq!(set.contains(b as u64, 1), *present);
                prop_assert_eq!(holes.contains(b as u64, 1), !*present);
            }
        }
    }
}
