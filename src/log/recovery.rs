//! What `PartitionLog::open` makes of a partition directory: which segments
//! to trust, which to scan, where to cut a torn tail, and how to finish a
//! cleaning pass a crash interrupted. Each segment's `.txnindex` is loaded
//! here, without the entries whose marker a cut took; what the scanned
//! segments' files lack, the producer state's replay adds (`scanned_from`).
//!
//! Invariant: after `recover`, no `.cleaned` or `.swap` file is left, every
//! segment holds only complete, CRC-valid batches with growing offsets
//! (contiguous unless the cleaner left gaps), each segment starts where the
//! previous ends, and the in-memory indexes describe exactly those batches.

use std::path::Path;
use std::rc::Rc;

use glommio::io::BufferedFile;

use super::checkpoint::{self, read_whole, CHECKPOINT_TMP_FILE, CLEANER_FILE, CLEANER_TMP_FILE};
use super::index::{OffsetIndex, TimeIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use super::segment::{self, Segment, SegmentIndexes, CLEANED_SUFFIX, SWAP_SUFFIX};
use super::txn_index;
use super::{LogError, SEGMENT_BYTES_MAX};
use crate::protocol::batch::{validate_stored, BatchError, BatchHeader, BATCH_HEADER_SIZE};

/// Bytes read per step of a scan: large enough to amortize the read, small
/// enough not to matter next to the shard's memory.
const SCAN_WINDOW_BYTES: u64 = 1 << 20;
/// Largest `.txnindex` read: some two million aborted transactions in one
/// segment. A larger file is logged and not used rather than held whole.
const TXN_INDEX_BYTES_MAX: u64 = 64 << 20;

pub struct Recovered {
    pub segments: Vec<Rc<Segment>>,
    pub log_start_offset: i64,
    pub leader_epoch: i32,
    /// The checkpointed high watermark, if there was a checkpoint.
    pub high_watermark: Option<i64>,
    pub scanned_bytes: u64,
    /// The cleaner has worked on this log (it has a `shoal.cleaner`): its
    /// segments may have offset gaps.
    pub offset_gaps: bool,
    /// The base offset of the first segment scanned, if any was: from
    /// there on the `.txnindex` files may lack entries (the active
    /// segment's is written only when it is sealed), which the producer
    /// state's replay adds back.
    pub scanned_from: Option<i64>,
}

pub async fn recover(dir: &Path, index_interval_bytes: u32) -> Result<Recovered, LogError> {
    let checkpoint = match checkpoint::read(dir).await {
        Ok(checkpoint) => checkpoint,
        Err(LogError::Corrupt { reason, .. }) => {
            // Without a trustworthy recovery point, every segment is scanned.
            ::log::warn!("{}: ignoring checkpoint: {reason}", dir.display());
            None
        }
        Err(e) => return Err(e),
    };
    remove_if_present(&dir.join(CHECKPOINT_TMP_FILE))?;
    remove_if_present(&dir.join(CLEANER_TMP_FILE))?;
    // Written before the cleaner first replaces a segment, so a log without
    // it has no gaps, and any gap in it is damage.
    let offset_gaps = dir.join(CLEANER_FILE).exists();
    finish_cleaning(dir, index_interval_bytes).await?;
    let recovery_point = checkpoint.map_or(i64::MIN, |c| c.recovery_point);
    let bases = segment_bases(dir)?;
    let now = crate::clock::now_ms();

    let mut segments: Vec<Rc<Segment>> = Vec::with_capacity(bases.len());
    let mut scanned_bytes = 0;
    let mut scanning = false;
    let mut scanned_from = None;
    for (i, &base) in bases.iter().enumerate() {
        let expected = segments.last().map(|s| s.next_offset.get());
        if expected.is_some_and(|next| next != base) {
            ::log::warn!(
                "{}: segment {base} does not follow offset {expected:?}; dropping it and later ones",
                dir.display()
            );
            delete_segments(dir, &bases[i..])?;
            break;
        }
        let file = Segment::open_file(&segment::log_path(dir, base)).await?;
        let size = file.file_size().await?;
        let trusted = if scanning {
            None
        } else {
            trust(dir, base, &file, size, recovery_point).await?
        };
        if let Some((indexes, next_offset)) = trusted {
            let segment = Rc::new(Segment::existing(
                dir,
                base,
                file,
                size,
                indexes,
                next_offset,
                now,
            ));
            load_txn_index(&segment).await?;
            segments.push(segment);
            continue;
        }
        scanning = true;
        scanned_from.get_or_insert(base);
        let segment = Rc::new(Segment::existing(
            dir,
            base,
            file,
            size,
            SegmentIndexes::empty(),
            base,
            now,
        ));
        segment.offset_gaps.set(offset_gaps);
        let scan = scan(&segment, size, index_interval_bytes).await?;
        scanned_bytes += scan.valid_bytes;
        let is_last = i + 1 == bases.len();
        if scan.valid_bytes < size {
            ::log::warn!(
                "{}: truncating segment {base} at {} of {size} bytes: {}",
                dir.display(),
                scan.valid_bytes,
                scan.reason
            );
            segment.truncate(scan.valid_bytes).await?;
            delete_segments(dir, &bases[i + 1..])?;
        }
        // What a crashed process wrote may sit in the page cache only; it is
        // about to be readable, so it is made durable first.
        segment.sync().await?;
        *segment.indexes.borrow_mut() = scan.indexes;
        segment.next_offset.set(scan.next_offset);
        load_txn_index(&segment).await?;
        if !is_last && scan.valid_bytes == size {
            // Sealed again so that the next open can trust it. Without room
            // for the index files (a full disk) the next open scans it again.
            if let Err(e) = segment.write_indexes().await {
                ::log::warn!("{}: indexes of segment {base}: {e}", dir.display());
            }
        }
        segments.push(segment);
        if scan.valid_bytes < size {
            break;
        }
    }
    let first_base = segments.first().map(|s| s.base_offset);
    let log_start_offset = checkpoint
        .map_or(0, |c| c.log_start_offset)
        .max(first_base.unwrap_or(0));
    if segments.is_empty() {
        segments.push(Rc::new(Segment::new(dir, log_start_offset, now)));
    }
    for segment in &segments {
        segment.offset_gaps.set(offset_gaps);
    }
    Ok(Recovered {
        segments,
        log_start_offset,
        leader_epoch: checkpoint.map_or(0, |c| c.leader_epoch),
        high_watermark: checkpoint.map(|c| c.high_watermark),
        scanned_bytes,
        offset_gaps,
        scanned_from,
    })
}

/// Loads the `.txnindex` of `segment` (its end offset known), keeping the
/// entries whose marker is still in it: a torn tail may have cut some.
/// A damaged file is logged and left out: the aborted transactions it held
/// are then not reported to read_committed consumers.
async fn load_txn_index(segment: &Segment) -> Result<(), LogError> {
    let path = segment.txn_index_path();
    let Some(bytes) = read_whole(&path, TXN_INDEX_BYTES_MAX).await? else {
        return Ok(());
    };
    match txn_index::decode(&bytes) {
        Ok(mut entries) => {
            let end = segment.next_offset.get();
            entries.retain(|txn| txn.last_offset >= segment.base_offset && txn.last_offset < end);
            *segment.aborted.borrow_mut() = entries;
        }
        Err(reason) => ::log::warn!("{}: not used: {reason}", path.display()),
    }
    Ok(())
}

/// Base offsets of the `.log` files in `dir`, ascending. Listing happens
/// once, at open, so std::fs is fine here.
fn segment_bases(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        bases.extend(segment_base(stem));
    }
    bases.sort_unstable();
    Ok(bases)
}

/// What a cleaning pass interrupted by a crash left behind. `.cleaned`
/// files were still being written: they go. A `{base}.log.swap` is a
/// complete cleaned segment (its indexes were renamed before it) replacing
/// the segments from `base` to its end: those go, and the `.swap` files take
/// their final names, as the pass would have done.
async fn finish_cleaning(dir: &Path, index_interval_bytes: u32) -> Result<(), LogError> {
    let mut swapped = Vec::new();
    let mut changed = false;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.ends_with(CLEANED_SUFFIX) {
            remove_if_present(&dir.join(name))?;
            changed = true;
        } else if let Some(base) = name
            .strip_suffix(SWAP_SUFFIX)
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(segment_base)
        {
            swapped.push(base);
        }
    }
    swapped.sort_unstable();
    for base in swapped {
        let swap_path = segment::with_suffix(segment::log_path(dir, base), SWAP_SUFFIX);
        let file = Segment::open_file(&swap_path).await?;
        let size = file.file_size().await?;
        let swap = Segment::existing(dir, base, file, size, SegmentIndexes::empty(), base, 0);
        swap.offset_gaps.set(true);
        let end = scan(&swap, size, index_interval_bytes).await?.next_offset;
        swap.close().await?;
        let replaced: Vec<i64> = segment_bases(dir)?
            .into_iter()
            .filter(|&b| b > base && b < end)
            .collect();
        ::log::warn!(
            "{}: finishing an interrupted cleaning: segment {base} replaces {} more",
            dir.display(),
            replaced.len()
        );
        delete_segments(dir, &replaced)?;
        for path in [
            segment::index_path(dir, base),
            segment::time_index_path(dir, base),
            segment::txn_index_path(dir, base),
            segment::log_path(dir, base),
        ] {
            let swap = segment::with_suffix(path.clone(), SWAP_SUFFIX);
            if swap.exists() {
                std::fs::rename(&swap, &path)?;
            }
        }
        changed = true;
    }
    if changed {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The base offset a segment file stem names: 20 digits.
fn segment_base(stem: &str) -> Option<i64> {
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn delete_segments(dir: &Path, bases: &[i64]) -> Result<(), LogError> {
    for &base in bases {
        remove_if_present(&segment::log_path(dir, base))?;
        remove_if_present(&segment::index_path(dir, base))?;
        remove_if_present(&segment::time_index_path(dir, base))?;
        remove_if_present(&segment::txn_index_path(dir, base))?;
    }
    Ok(())
}

/// The indexes and end offset of a segment that ends at or before
/// `recovery_point`, checked without a scan: the index files must decode and
/// their last offset entry must name a batch that ends the file. `None` when
/// the segment has to be scanned.
async fn trust(
    dir: &Path,
    base: i64,
    file: &BufferedFile,
    size: u64,
    recovery_point: i64,
) -> Result<Option<(SegmentIndexes, i64)>, LogError> {
    if base > recovery_point {
        return Ok(None);
    }
    // A sealed index has at most one entry per batch.
    let entries_max = size / BATCH_HEADER_SIZE as u64 + 1;
    let Some(bytes) = read_whole(
        &segment::index_path(dir, base),
        entries_max * OFFSET_ENTRY_BYTES as u64,
    )
    .await?
    else {
        return Ok(None);
    };
    let Some(offsets) = OffsetIndex::decode(&bytes, size) else {
        return Ok(None);
    };
    let (next_offset, last_relative) = match offsets.last() {
        None if size == 0 => (base, 0),
        None => return Ok(None),
        Some(entry) => {
            let position = u64::from(entry.position);
            let len = (size - position).min(BATCH_HEADER_SIZE as u64) as usize;
            let header = file.read_at(position, len).await?;
            let Some(header) = BatchHeader::view(&header) else {
                return Ok(None);
            };
            let last_offset = header.last_offset();
            let ends_file = position.checked_add_signed(header.total_size()) == Some(size);
            if !ends_file || last_offset != base + i64::from(entry.relative_offset) {
                return Ok(None);
            }
            (last_offset + 1, entry.relative_offset)
        }
    };
    if next_offset > recovery_point {
        return Ok(None);
    }
    let Some(bytes) = read_whole(
        &segment::time_index_path(dir, base),
        entries_max * TIME_ENTRY_BYTES as u64,
    )
    .await?
    else {
        return Ok(None);
    };
    let Some(times) = TimeIndex::decode(&bytes, last_relative) else {
        return Ok(None);
    };
    Ok(Some((
        SegmentIndexes::loaded(offsets, times, base),
        next_offset,
    )))
}

pub(super) struct Scan {
    pub(super) indexes: SegmentIndexes,
    pub(super) next_offset: i64,
    /// Bytes of complete, valid batches with growing offsets from the
    /// segment start.
    pub(super) valid_bytes: u64,
    /// Why the scan stopped before the end of the file.
    pub(super) reason: String,
}

/// Checks every batch of `segment` (`size` bytes) and rebuilds its indexes.
async fn scan(segment: &Segment, size: u64, index_interval_bytes: u32) -> Result<Scan, LogError> {
    scan_below(segment, size, index_interval_bytes, i64::MAX).await
}

/// `scan`, stopping before the first batch that reaches `stop_offset`
/// (`truncate_to`: the batches kept and their indexes).
pub(super) async fn scan_below(
    segment: &Segment,
    size: u64,
    index_interval_bytes: u32,
    stop_offset: i64,
) -> Result<Scan, LogError> {
    let base = segment.base_offset;
    let mut scan = Scan {
        indexes: SegmentIndexes::empty(),
        next_offset: base,
        valid_bytes: 0,
        reason: String::new(),
    };
    let mut window = SCAN_WINDOW_BYTES;
    while scan.valid_bytes < size {
        let position = scan.valid_bytes;
        let buf = segment
            .read_exact(position, window.min(size - position) as usize)
            .await?;
        let mut cursor = 0;
        while cursor < buf.len() {
            let rest = &buf[cursor..];
            let batch_size = match validate_stored(rest, SEGMENT_BYTES_MAX as usize) {
                Ok(batch_size) => batch_size,
                Err(BatchError::Truncated) => break,
                Err(e) => {
                    scan.reason = format!("{e:?}");
                    return Ok(scan);
                }
            };
            let Some(header) = BatchHeader::view(rest) else {
                break;
            };
            if scan.valid_bytes + batch_size as u64 > SEGMENT_BYTES_MAX {
                scan.reason = "segment larger than a segment may be".into();
                return Ok(scan);
            }
            let last_offset = header.last_offset();
            if last_offset >= stop_offset {
                return Ok(scan);
            }
            // Offsets follow on, or, where the cleaner may have dropped whole
            // batches, grow.
            let in_place = if segment.offset_gaps.get() {
                header.base_offset.get() >= scan.next_offset
            } else {
                header.base_offset.get() == scan.next_offset
            };
            if !in_place
                || last_offset < header.base_offset.get()
                || last_offset - base > i64::from(u32::MAX)
            {
                scan.reason = format!(
                    "batch at offset {} where {} was expected",
                    header.base_offset.get(),
                    scan.next_offset
                );
                return Ok(scan);
            }
            scan.indexes.record(
                base,
                scan.valid_bytes as u32,
                last_offset,
                header.max_timestamp.get(),
                batch_size as u64,
                index_interval_bytes,
            );
            scan.next_offset = last_offset + 1;
            scan.valid_bytes += batch_size as u64;
            cursor += batch_size;
        }
        if cursor > 0 {
            window = SCAN_WINDOW_BYTES;
            continue;
        }
        // Not one complete batch in the window: it is larger than the window
        // or runs past the end of the file (torn).
        let declared = BatchHeader::view(&buf)
            .map(|h| h.total_size())
            .filter(|&total| {
                total > 0
                    && position
                        .checked_add_signed(total)
                        .is_some_and(|end| end <= size)
            });
        match declared {
            Some(total) if total as u64 > window => window = total as u64,
            _ => {
                scan.reason = "torn batch at the end of the segment".into();
                return Ok(scan);
            }
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::super::partition::tests::{
        read_all, segment_files, small_config, unassigned, with_dir,
    };
    use super::super::{AppendWait, PartitionLog};
    use super::*;
    use crate::protocol::batch::tests::sample_batch;
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;
    use std::path::PathBuf;

    /// Appends `batches` to a fresh log in `dir` and closes it cleanly.
    async fn write_log(dir: PathBuf, batches: &[Vec<u8>]) {
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        for batch in batches {
            log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
    }

    fn batches() -> Vec<Vec<u8>> {
        vec![
            sample_batch(3, Compression::None),
            sample_batch(2, Compression::Zstd),
            sample_batch(4, Compression::None),
        ]
    }

    /// Opens `dir` with only `log_bytes` as segment 0 (no index, no
    /// checkpoint) and checks it holds exactly `expected` (unassigned) batches.
    async fn recover_from(dir: PathBuf, log_bytes: &[u8], expected: &[Vec<u8>]) {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(segment::log_path(&dir, 0), log_bytes).unwrap();
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        let got = read_all(&log).await;
        let got: Vec<Vec<u8>> = got.iter().map(|b| unassigned(b)).collect();
        assert_eq!(got, expected);
        let kept: usize = expected.iter().map(Vec::len).sum();
        assert_eq!(log.size_bytes(), kept as u64);
        assert_eq!(
            std::fs::metadata(segment::log_path(&dir, 0)).unwrap().len(),
            kept as u64
        );
        // The log goes on from there.
        let next = log.log_end_offset();
        let result = log
            .append(
                BytesMut::from(
                    &expected
                        .last()
                        .unwrap_or(&sample_batch(1, Compression::None))[..],
                ),
                AppendWait::Durable,
                None,
            )
            .await
            .unwrap();
        assert_eq!(result.base_offset, next);
        log.close().await.unwrap();
    }

    #[test]
    fn a_torn_last_batch_is_cut_at_every_byte() {
        with_dir(|dir| async move {
            let sent = batches();
            write_log(dir.clone(), &sent).await;
            let whole = std::fs::read(segment::log_path(&dir, 0)).unwrap();
            let last_len = sent[2].len();
            let complete = whole.len() - last_len;
            let expected: Vec<Vec<u8>> = sent[..2].iter().map(|b| unassigned(b)).collect();
            for cut in 0..last_len {
                let case = dir.with_file_name(format!("cut-{cut}"));
                recover_from(case, &whole[..complete + cut], &expected).await;
            }
            let all: Vec<Vec<u8>> = sent.iter().map(|b| unassigned(b)).collect();
            recover_from(dir.with_file_name("whole"), &whole, &all).await;
        });
    }

    #[test]
    fn garbage_after_the_last_batch_is_cut() {
        with_dir(|dir| async move {
            let sent = batches();
            write_log(dir.clone(), &sent).await;
            let whole = std::fs::read(segment::log_path(&dir, 0)).unwrap();
            let all: Vec<Vec<u8>> = sent.iter().map(|b| unassigned(b)).collect();
            // A valid batch out of sequence (offset 0 again), zeros, noise, a
            // copy with one flipped byte.
            let mut flipped = whole[..sent[0].len()].to_vec();
            flipped[40] ^= 1;
            let tails = [
                whole[..sent[0].len()].to_vec(),
                vec![0; 100],
                (0..=255u8).cycle().take(700).collect(),
                flipped,
            ];
            for (i, tail) in tails.iter().enumerate() {
                let mut bytes = whole.clone();
                bytes.extend_from_slice(tail);
                recover_from(dir.with_file_name(format!("garbage-{i}")), &bytes, &all).await;
            }
        });
    }

    #[test]
    fn a_corrupt_segment_drops_everything_after_it() {
        with_dir(|dir| async move {
            let batch = sample_batch(5, Compression::None);
            let sent = vec![batch.clone(); 60];
            write_log(dir.clone(), &sent).await;
            let mut bases = segment_bases(&dir).unwrap();
            assert!(bases.len() >= 4);
            // Flip a byte in the second batch of the second segment.
            let victim = segment::log_path(&dir, bases[1]);
            let mut bytes = std::fs::read(&victim).unwrap();
            bytes[batch.len() + 50] ^= 0x10;
            std::fs::write(&victim, bytes).unwrap();
            std::fs::remove_file(dir.join(checkpoint::CHECKPOINT_FILE)).unwrap();

            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            assert_eq!(log.log_end_offset(), bases[1] + 5);
            assert_eq!(read_all(&log).await.len() as i64, bases[1] / 5 + 1);
            bases.truncate(2);
            assert_eq!(segment_bases(&dir).unwrap(), bases);
            assert_eq!(segment_files(&dir, "log"), 2);
        });
    }

    #[test]
    fn a_crash_keeps_what_was_acknowledged_and_scans_only_the_tail() {
        with_dir(|dir| async move {
            let batch = sample_batch(5, Compression::Gzip);
            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            for _ in 0..30 {
                log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                    .await
                    .unwrap();
            }
            log.checkpoint().await.unwrap();
            let active = *segment_bases(&dir).unwrap().last().unwrap();
            let active_size = std::fs::metadata(segment::log_path(&dir, active))
                .unwrap()
                .len();
            let segments = log.segment_count();
            drop(log);

            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            assert_eq!(log.log_end_offset(), 150);
            assert_eq!(log.segment_count(), segments);
            assert_eq!(read_all(&log).await.len(), 30);
            let scanned = log.recovery_scanned_bytes();
            assert!(scanned > 0);
            assert_eq!(scanned, active_size, "only the active segment is scanned");
        });
    }

    #[test]
    fn a_damaged_index_or_checkpoint_means_a_scan_not_a_failure() {
        with_dir(|dir| async move {
            let sent = vec![sample_batch(5, Compression::None); 30];
            write_log(dir.clone(), &sent).await;
            let bases = segment_bases(&dir).unwrap();
            let index = segment::index_path(&dir, bases[1]);
            let mut bytes = std::fs::read(&index).unwrap();
            bytes.pop();
            std::fs::write(&index, bytes).unwrap();
            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            assert!(log.recovery_scanned_bytes() > 0);
            assert_eq!(read_all(&log).await.len(), 30);
            log.close().await.unwrap();

            std::fs::write(
                dir.join(checkpoint::CHECKPOINT_FILE),
                "shoal-checkpoint 1\nnonsense",
            )
            .unwrap();
            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            assert_eq!(log.log_end_offset(), 150);
            assert_eq!(read_all(&log).await.len(), 30);
            log.close().await.unwrap();
            let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
            assert_eq!(log.recovery_scanned_bytes(), 0);
        });
    }
}
