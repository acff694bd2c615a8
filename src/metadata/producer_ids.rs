//! Producer ids, handed out in blocks as Kafka's controller hands them to
//! brokers (`AllocateProducerIds`): the controller keeps the start of the
//! next block in `shoal-producer-ids` and writes it, fsync'd, before a
//! block is handed out, so an id is never given twice, across restarts and
//! crashes alike (a crash only skips the rest of the blocks in use).
//!
//! Cluster hook: with a metadata quorum the next block start becomes
//! Kafka's `ProducerIdsRecord`, committed before the block is handed out;
//! the blocks and the shards' use of them stay as they are.
//!
//! File format (replaced atomically like the topic table):
//!
//! ```text
//! shoal-producer-ids 1
//! next_block_start 3000
//! ```

use std::fs;
use std::path::Path;

/// Ids per block, as Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`: a
/// shard asks the controller (and the controller fsyncs) once per this many
/// new producers.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

const PRODUCER_IDS_FILE: &str = "shoal-producer-ids";
const VERSION_LINE: &str = "shoal-producer-ids 1";
/// Far larger than the two short lines the file holds.
const PRODUCER_IDS_FILE_BYTES_MAX: u64 = 4096;

/// A range of producer ids owned by one shard: `next..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProducerIdBlock {
    pub next: i64,
    pub end: i64,
}

impl ProducerIdBlock {
    /// Takes the next id of the block, if any is left.
    pub fn take(&mut self) -> Option<i64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

/// The start of the next block to hand out; 0 when no block was ever given.
pub fn load_next_block_start(data_dir: &Path) -> std::io::Result<i64> {
    let path = data_dir.join(PRODUCER_IDS_FILE);
    let invalid = |reason: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {reason}", path.display()),
        )
    };
    match fs::metadata(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
        Ok(meta) if meta.len() > PRODUCER_IDS_FILE_BYTES_MAX => return Err(invalid("too large")),
        Ok(_) => {}
    }
    let text = fs::read_to_string(&path)?;
    let mut lines = text.lines();
    if lines.next() != Some(VERSION_LINE) {
        return Err(invalid("unknown version line"));
    }
    let start = lines
        .next()
        .and_then(|line| line.strip_prefix("next_block_start "))
        .and_then(|value| value.parse::<i64>().ok())
        .filter(|start| *start >= 0)
        .ok_or_else(|| invalid("no valid next_block_start line"))?;
    Ok(start)
}

/// Hands out the block starting at `start`: persists the start of the one
/// after it first. `None` once the id space is used up.
pub fn allocate_block(data_dir: &Path, start: i64) -> std::io::Result<Option<ProducerIdBlock>> {
    let Some(end) = start.checked_add(PRODUCER_ID_BLOCK_SIZE) else {
        return Ok(None);
    };
    let text = format!("{VERSION_LINE}\nnext_block_start {end}\n");
    super::store::write_atomically(data_dir, PRODUCER_IDS_FILE, text.as_bytes())?;
    Ok(Some(ProducerIdBlock { next: start, end }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_never_overlap_across_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let start = load_next_block_start(dir.path()).unwrap();
            let mut block = allocate_block(dir.path(), start).unwrap().unwrap();
            while let Some(id) = block.take() {
                seen.push(id);
            }
        }
        let expected: Vec<i64> = (0..3 * PRODUCER_ID_BLOCK_SIZE).collect();
        assert_eq!(seen, expected);
        assert_eq!(
            load_next_block_start(dir.path()).unwrap(),
            3 * PRODUCER_ID_BLOCK_SIZE
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_restart_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(PRODUCER_IDS_FILE), "garbage").unwrap();
        assert!(load_next_block_start(dir.path()).is_err());
        fs::write(
            dir.path().join(PRODUCER_IDS_FILE),
            format!("{VERSION_LINE}\nnext_block_start -5\n"),
        )
        .unwrap();
        assert!(load_next_block_start(dir.path()).is_err());
    }

    #[test]
    fn the_end_of_the_id_space_gives_no_block() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(allocate_block(dir.path(), i64::MAX - 10).unwrap(), None);
    }
}
