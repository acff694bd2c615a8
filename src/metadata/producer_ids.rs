//! Producer ids, handed out in blocks as Kafka's controller hands them to
//! brokers (`AllocateProducerIds`): the end of the last block is Kafka's
//! `ProducerIdsRecord` in the metadata log (the image's
//! `next_producer_id`), committed before the block is handed out, so an id
//! is never given twice, across restarts and crashes alike (a crash only
//! skips the rest of the blocks in use).
//!
//! Versions before the metadata log kept the next block start in
//! `shoal-producer-ids`, which start-up migrates into the log once
//! (`load_legacy_next_block_start`, `retire_file`):
//!
//! ```text
//! shoal-producer-ids 1
//! next_block_start 3000
//! ```

use std::fs;
use std::path::Path;

use super::records::{MetadataRecord, ProducerIdsRecord};

/// Ids per block, as Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`: a
/// shard asks the controller (and the controller fsyncs) once per this many
/// new producers.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

const PRODUCER_IDS_FILE: &str = "shoal-producer-ids";
const PRODUCER_IDS_FILE_MIGRATED: &str = "shoal-producer-ids.migrated";
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

/// The next block start `shoal-producer-ids` holds; None when there is no
/// such file (a new directory, or one already migrated).
pub fn load_legacy_next_block_start(data_dir: &Path) -> std::io::Result<Option<i64>> {
    let path = data_dir.join(PRODUCER_IDS_FILE);
    let invalid = |reason: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {reason}", path.display()),
        )
    };
    match fs::metadata(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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
    Ok(Some(start))
}

/// Renames `shoal-producer-ids` once its start is committed to the log.
pub fn retire_file(data_dir: &Path) -> std::io::Result<()> {
    fs::rename(
        data_dir.join(PRODUCER_IDS_FILE),
        data_dir.join(PRODUCER_IDS_FILE_MIGRATED),
    )?;
    fs::File::open(data_dir)?.sync_all()
}

/// The block after `next_producer_id` (the image's) and the record that
/// hands it to `broker_id`; None once the id space is used up.
pub fn next_block(
    next_producer_id: i64,
    broker_id: i32,
    broker_epoch: i64,
) -> Option<(ProducerIdBlock, MetadataRecord)> {
    let end = next_producer_id.checked_add(PRODUCER_ID_BLOCK_SIZE)?;
    let record = MetadataRecord::ProducerIds(ProducerIdsRecord {
        broker_id,
        broker_epoch,
        next_producer_id: end,
    });
    Some((
        ProducerIdBlock {
            next: next_producer_id,
            end,
        },
        record,
    ))
}

/// The record that moves the image's `next_producer_id` to a legacy
/// file's `start`, if that is further.
pub fn migration_records(next_producer_id: i64, start: i64) -> Vec<MetadataRecord> {
    if start <= next_producer_id {
        return Vec::new();
    }
    vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
        broker_id: -1,
        broker_epoch: -1,
        next_producer_id: start,
    })]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::MetadataImage;

    #[test]
    fn blocks_never_overlap_through_the_image() {
        let mut image = MetadataImage::default();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (mut block, record) = next_block(image.next_producer_id, 1, -1).unwrap();
            image.apply(&record).unwrap();
            while let Some(id) = block.take() {
                seen.push(id);
            }
        }
        let expected: Vec<i64> = (0..3 * PRODUCER_ID_BLOCK_SIZE).collect();
        assert_eq!(seen, expected);
        assert_eq!(next_block(i64::MAX - 10, 1, -1), None);
    }

    #[test]
    fn a_legacy_file_is_read_migrated_once_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_legacy_next_block_start(dir.path()).unwrap(), None);
        fs::write(dir.path().join(PRODUCER_IDS_FILE), "garbage").unwrap();
        assert!(load_legacy_next_block_start(dir.path()).is_err());
        fs::write(
            dir.path().join(PRODUCER_IDS_FILE),
            format!("{VERSION_LINE}\nnext_block_start -5\n"),
        )
        .unwrap();
        assert!(load_legacy_next_block_start(dir.path()).is_err());
        fs::write(
            dir.path().join(PRODUCER_IDS_FILE),
            format!("{VERSION_LINE}\nnext_block_start 3000\n"),
        )
        .unwrap();
        assert_eq!(
            load_legacy_next_block_start(dir.path()).unwrap(),
            Some(3000)
        );
        let mut image = MetadataImage::default();
        for record in migration_records(image.next_producer_id, 3000) {
            image.apply(&record).unwrap();
        }
        assert_eq!(image.next_producer_id, 3000);
        assert!(migration_records(image.next_producer_id, 3000).is_empty());
        retire_file(dir.path()).unwrap();
        assert_eq!(load_legacy_next_block_start(dir.path()).unwrap(), None);
    }
}
