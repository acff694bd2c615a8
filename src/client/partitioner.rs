//! Choosing a partition for a record the way Kafka's default partitioner
//! does: murmur2 of the key for keyed records, so shoal's tools and Kafka's
//! clients put the same key in the same partition.
//!
//! Invariant: pure functions of their inputs; the result is always in
//! `0..partition_count`.

/// Kafka's murmur2 seed (`Utils.murmur2`).
const MURMUR2_SEED: u32 = 0x9747_b28c;
/// murmur2 mixing constant.
const MURMUR2_M: u32 = 0x5bd1_e995;
/// murmur2 shift.
const MURMUR2_R: u32 = 24;

/// Kafka's `Utils.murmur2`: 32-bit murmur2 with Kafka's seed, as a signed
/// int like Java returns it.
pub fn murmur2(data: &[u8]) -> i32 {
    let mut h = MURMUR2_SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(MURMUR2_M);
        k ^= k >> MURMUR2_R;
        k = k.wrapping_mul(MURMUR2_M);
        h = h.wrapping_mul(MURMUR2_M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(MURMUR2_M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(MURMUR2_M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key`:
/// `toPositive(murmur2(key)) % partition_count`.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    assert!(partition_count > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partition_count
}

/// Spreads keyless batches over partitions: each batch sticks to one
/// partition, and the next batch moves to the next one.
#[derive(Debug, Clone)]
pub struct StickyPartitioner {
    next: i32,
}

impl StickyPartitioner {
    /// Starts at `first` (callers pass something random-ish so that many
    /// short-lived producers do not all load partition 0).
    pub fn new(first: u32) -> StickyPartitioner {
        StickyPartitioner {
            next: (first & 0x7fff_ffff) as i32,
        }
    }

    /// The partition for the next batch.
    pub fn next_batch(&mut self, partition_count: i32) -> i32 {
        assert!(partition_count > 0, "a topic has at least one partition");
        let partition = self.next % partition_count;
        self.next = (partition + 1) % partition_count;
        partition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                *expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn key_partition_is_positive_modulo() {
        // murmur2("21") is negative; Kafka masks the sign bit, not abs().
        let expected = (-973_932_308i32 & 0x7fff_ffff) % 7;
        assert_eq!(partition_for_key(b"21", 7), expected);
        for key in [&b""[..], b"a", b"key-1", b"\xff\xff\xff"] {
            let p = partition_for_key(key, 3);
            assert!((0..3).contains(&p));
        }
    }

    #[test]
    fn sticky_partitioner_cycles_per_batch() {
        let mut sticky = StickyPartitioner::new(u32::MAX);
        let first = sticky.next_batch(3);
        let seen: Vec<i32> = (0..6).map(|_| sticky.next_batch(3)).collect();
        assert_eq!(seen, [1, 2, 0, 1, 2, 0].map(|offset| (first + offset) % 3));
    }
}
