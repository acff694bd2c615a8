//! The `.txnindex` of a segment: the transactions aborted by a marker in it,
//! in Kafka's layout (`TransactionIndex`, `AbortedTxn`), so that a
//! read_committed fetch can tell its consumer which producers' batches in
//! the range it reads to drop. Each entry, 34 bytes, big-endian:
//!
//! ```text
//! version i16 (0) | producer_id i64 | first_offset i64 | last_offset i64 |
//! last_stable_offset i64
//! ```
//!
//! `first_offset` is the transaction's first batch, `last_offset` its ABORT
//! marker, `last_stable_offset` the LSO once the marker was in (the first
//! offset of the oldest other open transaction, else one past the marker),
//! which lets a search stop early.
//!
//! Invariant: pure; entries are in marker order (growing `last_offset`),
//! each with `first_offset <= last_offset`.

/// Bytes of one entry (Kafka's `AbortedTxn.TOTAL_SIZE`).
pub const ENTRY_BYTES: usize = 2 + 8 + 8 + 8 + 8;
const VERSION: i16 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

pub fn encode(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for entry in entries {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&entry.producer_id.to_be_bytes());
        out.extend_from_slice(&entry.first_offset.to_be_bytes());
        out.extend_from_slice(&entry.last_offset.to_be_bytes());
        out.extend_from_slice(&entry.last_stable_offset.to_be_bytes());
    }
    out
}

/// The entries of a `.txnindex`; an error for a length that is not whole
/// entries, an unknown version or entries out of order.
pub fn decode(bytes: &[u8]) -> Result<Vec<AbortedTxn>, String> {
    if !bytes.len().is_multiple_of(ENTRY_BYTES) {
        return Err(format!("{} bytes is not whole entries", bytes.len()));
    }
    let mut entries: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for chunk in bytes.chunks_exact(ENTRY_BYTES) {
        let i64_at = |at: usize| {
            let mut field = [0u8; 8];
            field.copy_from_slice(&chunk[at..at + 8]);
            i64::from_be_bytes(field)
        };
        let version = i16::from_be_bytes([chunk[0], chunk[1]]);
        if version != VERSION {
            return Err(format!("entry version {version}"));
        }
        let entry = AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        let in_order = entries
            .last()
            .is_none_or(|last| last.last_offset < entry.last_offset);
        if entry.first_offset > entry.last_offset || !in_order {
            return Err(format!("entry {entry:?} out of order"));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Kafka's `collectAbortedTxns`: adds to `out` the entries of one segment
/// that overlap the offsets `fetch_offset..upper_offset`; true when the
/// search is complete (an entry's LSO reached `upper_offset`: no later
/// segment holds a transaction that began below it).
pub fn collect(
    entries: &[AbortedTxn],
    fetch_offset: i64,
    upper_offset: i64,
    out: &mut Vec<AbortedTxn>,
) -> bool {
    for entry in entries {
        if entry.last_offset >= fetch_offset && entry.first_offset < upper_offset {
            out.push(*entry);
        }
        if entry.last_stable_offset >= upper_offset {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(producer_id: i64, first_offset: i64, last_offset: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_round_trip_in_kafkas_layout_and_damage_is_an_error() {
        let entries = vec![entry(7, 0, 5, 6), entry(9, 3, 10, 11)];
        let bytes = encode(&entries);
        assert_eq!(bytes.len(), 2 * 34);
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(decode(&bytes).unwrap(), entries);
        assert!(decode(&bytes[..33]).is_err());
        let mut versioned = bytes.clone();
        versioned[1] = 1;
        assert!(decode(&versioned).is_err());
        let swapped = encode(&[entries[1], entries[0]]);
        assert!(decode(&swapped).is_err());
    }

    #[test]
    fn collect_keeps_what_overlaps_and_stops_at_the_lso() {
        let entries = [entry(1, 0, 4, 5), entry(2, 6, 9, 7), entry(3, 7, 12, 13)];
        let mut out = Vec::new();
        assert!(!collect(&entries, 5, 100, &mut out));
        assert_eq!(out, vec![entries[1], entries[2]]);
        out.clear();
        // Nothing before offset 5 ends after it; the second entry's LSO (7)
        // reaches the upper bound: later segments need no search.
        assert!(collect(&entries, 5, 7, &mut out));
        assert_eq!(out, vec![entries[1]]);
    }
}
