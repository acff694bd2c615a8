//! The sparse `.index` and `.timeindex` of one segment, in memory and in
//! Kafka's file layout. Decoding checks every entry against the segment it
//! describes: an index read from disk is never trusted blindly.

/// Bytes of one `.index` entry: u32 BE relative offset, u32 BE position.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one `.timeindex` entry: i64 BE timestamp, u32 BE relative offset.
pub const TIME_ENTRY_BYTES: usize = 12;

/// `relative_offset` is the last offset of the batch that starts at
/// `position`, minus the segment's base offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// `timestamp` is the largest timestamp in the segment up to and including
/// the batch whose last offset is `relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

#[derive(Debug, Default)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    /// Position of the batch to start scanning from to find `relative_offset`:
    /// that of the last entry at or below it, or the segment start.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map_or(0, |i| self.entries[i].position)
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Every entry, by position (and so by offset).
    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    /// How many entries there are: a mark to `truncate_to` later.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Drops the entries past the first `count` (batches given up).
    pub fn truncate_to(&mut self, count: usize) {
        self.entries.truncate(count);
    }

    pub fn push(&mut self, entry: OffsetEntry) {
        assert!(self.last().is_none_or(
            |l| l.relative_offset < entry.relative_offset && l.position < entry.position
        ));
        self.entries.push(entry);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Decodes a `.index` file of a segment of `log_size` bytes; `None` when
    /// it is torn, out of order or points past the log.
    pub fn decode(bytes: &[u8], log_size: u64) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes(chunk[0..4].try_into().ok()?),
                position: u32::from_be_bytes(chunk[4..8].try_into().ok()?),
            };
            let ordered = index.last().is_none_or(|l| {
                l.relative_offset < entry.relative_offset && l.position < entry.position
            });
            if !ordered || u64::from(entry.position) >= log_size {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }
}

#[derive(Debug, Default)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Relative offset after which the first record with a timestamp at or
    /// above `timestamp` lies: every record up to the returned offset is
    /// older. `None` when the search must start at the segment start.
    pub fn lookup(&self, timestamp: i64) -> Option<u32> {
        let after = self.entries.partition_point(|e| e.timestamp < timestamp);
        after
            .checked_sub(1)
            .map(|i| self.entries[i].relative_offset)
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// The entry of the first batch (every segment indexes its first batch):
    /// about the segment's oldest timestamp.
    pub fn first(&self) -> Option<TimeEntry> {
        self.entries.first().copied()
    }

    /// How many entries there are: a mark to `truncate_to` later.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Drops the entries past the first `count` (batches given up).
    pub fn truncate_to(&mut self, count: usize) {
        self.entries.truncate(count);
    }

    pub fn push(&mut self, entry: TimeEntry) {
        assert!(self.last().is_none_or(
            |l| l.timestamp < entry.timestamp && l.relative_offset < entry.relative_offset
        ));
        self.entries.push(entry);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Decodes a `.timeindex` file of a segment whose last relative offset is
    /// `last_relative_offset`; `None` when torn, out of order or past it.
    pub fn decode(bytes: &[u8], last_relative_offset: u32) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return None;
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(chunk[0..8].try_into().ok()?),
                relative_offset: u32::from_be_bytes(chunk[8..12].try_into().ok()?),
            };
            let ordered = index.last().is_none_or(|l| {
                l.timestamp < entry.timestamp && l.relative_offset < entry.relative_offset
            });
            if !ordered || entry.relative_offset > last_relative_offset {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in entries {
            index.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn offset_lookup_finds_the_floor_entry() {
        let index = offsets(&[(9, 0), (19, 4100), (29, 8300)]);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 0);
        assert_eq!(index.lookup(19), 4100);
        assert_eq!(index.lookup(28), 4100);
        assert_eq!(index.lookup(1000), 8300);
        assert_eq!(OffsetIndex::default().lookup(5), 0);
    }

    #[test]
    fn offset_index_round_trips_and_refuses_damage() {
        let index = offsets(&[(9, 0), (19, 4100)]);
        let bytes = index.encode();
        assert_eq!(bytes.len(), 16);
        let back = OffsetIndex::decode(&bytes, 5000).unwrap();
        assert_eq!(back.last(), index.last());
        assert!(OffsetIndex::decode(&bytes[..15], 5000).is_none());
        assert!(OffsetIndex::decode(&bytes, 4100).is_none());
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(OffsetIndex::decode(&swapped, 5000).is_none());
    }

    #[test]
    fn time_lookup_starts_after_older_records() {
        let mut index = TimeIndex::default();
        index.push(TimeEntry {
            timestamp: 100,
            relative_offset: 4,
        });
        index.push(TimeEntry {
            timestamp: 200,
            relative_offset: 9,
        });
        assert_eq!(index.lookup(50), None);
        assert_eq!(index.lookup(100), None);
        assert_eq!(index.lookup(101), Some(4));
        assert_eq!(index.lookup(250), Some(9));
        let back = TimeIndex::decode(&index.encode(), 9).unwrap();
        assert_eq!(back.last(), index.last());
        assert!(TimeIndex::decode(&index.encode(), 8).is_none());
    }
}
