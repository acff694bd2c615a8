//! The byte ranges of one segment file whose batches this process has
//! checked (CRC-32C and framing): on produce before it wrote them, or on
//! their first read from the file. Reads serve checked ranges that are in
//! the page cache as file ranges, without reading them again.
//!
//! Invariant: ranges are sorted, disjoint and never adjacent (touching
//! ones merge), each from a batch start to a batch end; at most
//! `VERIFIED_RANGES_MAX` of them, the shortest forgotten first (a
//! forgotten range only costs one more checked read). A cut of the file
//! cuts them with it.

/// Most ranges remembered per segment. Writes and sequential reads each
/// grow one range, so a few cover a segment; 16 ranges are 256 bytes.
pub const VERIFIED_RANGES_MAX: usize = 16;

#[derive(Debug, Default)]
pub struct Verified {
    /// (start, end) file positions, end exclusive.
    ranges: Vec<(u64, u64)>,
}

impl Verified {
    /// Records `[start, end)` as checked.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // The ranges that overlap or touch [start, end) merge into it.
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let last = self.ranges.partition_point(|&(s, _)| s <= end);
        let (mut merged_start, mut merged_end) = (start, end);
        if first < last {
            merged_start = merged_start.min(self.ranges[first].0);
            merged_end = merged_end.max(self.ranges[last - 1].1);
        }
        self.ranges
            .splice(first..last, [(merged_start, merged_end)]);
        if self.ranges.len() > VERIFIED_RANGES_MAX {
            let shortest = (0..self.ranges.len())
                .min_by_key(|&i| self.ranges[i].1 - self.ranges[i].0)
                .expect("more than the maximum is not empty");
            self.ranges.remove(shortest);
        }
        self.assert_well_formed();
    }

    /// End of the checked range holding `position`, if any.
    pub fn end_from(&self, position: u64) -> Option<u64> {
        let after = self.ranges.partition_point(|&(s, _)| s <= position);
        let (_, end) = *self.ranges.get(after.checked_sub(1)?)?;
        (position < end).then_some(end)
    }

    /// Forgets everything at or past `position` (the file is cut there).
    pub fn cut(&mut self, position: u64) {
        self.ranges.retain(|&(start, _)| start < position);
        if let Some(last) = self.ranges.last_mut() {
            last.1 = last.1.min(position);
        }
        self.assert_well_formed();
    }

    fn assert_well_formed(&self) {
        assert!(self.ranges.len() <= VERIFIED_RANGES_MAX);
        assert!(self.ranges.iter().all(|&(s, e)| s < e));
        assert!(self.ranges.windows(2).all(|w| w[0].1 < w[1].0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(verified: &Verified) -> Vec<(u64, u64)> {
        verified.ranges.clone()
    }

    #[test]
    fn touching_and_overlapping_ranges_merge_and_a_cut_clips_them() {
        let mut verified = Verified::default();
        verified.insert(100, 200);
        verified.insert(300, 400);
        verified.insert(200, 250);
        assert_eq!(ranges(&verified), vec![(100, 250), (300, 400)]);
        verified.insert(50, 350);
        assert_eq!(ranges(&verified), vec![(50, 400)]);
        assert_eq!(verified.end_from(50), Some(400));
        assert_eq!(verified.end_from(399), Some(400));
        assert_eq!(verified.end_from(400), None);
        assert_eq!(verified.end_from(49), None);
        verified.insert(500, 600);
        verified.cut(550);
        assert_eq!(ranges(&verified), vec![(50, 400), (500, 550)]);
        verified.cut(400);
        assert_eq!(ranges(&verified), vec![(50, 400)]);
        verified.cut(10);
        assert_eq!(ranges(&verified), vec![]);
    }

    #[test]
    fn past_the_bound_the_shortest_range_is_forgotten() {
        let mut verified = Verified::default();
        for i in 0..VERIFIED_RANGES_MAX as u64 {
            verified.insert(i * 100, i * 100 + 50);
        }
        verified.insert(10_000, 10_001);
        assert_eq!(ranges(&verified).len(), VERIFIED_RANGES_MAX);
        assert_eq!(verified.end_from(10_000), None, "the shortest went");
        verified.insert(10_000, 10_080);
        assert_eq!(verified.end_from(10_000), Some(10_080));
        assert_eq!(ranges(&verified).len(), VERIFIED_RANGES_MAX);
        // Then one of the shortest, the first (all are 50 bytes).
        assert_eq!(verified.end_from(0), None);
        assert_eq!(verified.end_from(100), Some(150));
    }
}
