//! Both ends of the metadata log's fetch (`fetch.rs`), without IO: what a
//! voter answers an observer from its node (`answer`), and what an
//! observer makes of the answers (`Observed`).
//!
//! A voter serves only what it has applied, so whatever voter answers,
//! the entries are committed ones and never change: an observer may ask
//! any voter and move between them. An observer behind the voter's
//! compaction (its index before the first entry the log still holds) gets
//! the voter's image whole instead.
//!
//! Invariant: `Observed`'s image is the replay of a voter's snapshot and
//! the committed entries after it up to `index`, in order, applied with
//! the voter's own code (`node::apply_records`); anything else an answer
//! carries is refused, the image untouched.

use std::sync::Arc;

use raft::eraftpb::EntryType;
use raft::{GetEntriesContext, Storage};

use super::fetch::{Fetched, FetchedEntry, ANSWER_BYTES_MAX};
use super::node::{apply_records, encode_records, image_of_records};
use super::QuorumNode;
use crate::metadata::image::MetadataImage;

/// Why a voter cannot answer a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeError {
    /// The image is larger than a frame holds: the known gap of
    /// snapshots that travel whole (`wire::CONTROLLER_FRAME_BYTES_MAX`).
    TooLarge { size_bytes: usize },
    /// The log does not give the entries it should hold.
    Log(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::TooLarge { size_bytes } => write!(
                f,
                "a metadata answer of {size_bytes} bytes, over the {ANSWER_BYTES_MAX} a frame holds"
            ),
            ServeError::Log(error) => write!(f, "metadata log: {error}"),
        }
    }
}

/// What `node` answers an observer that applied through `after`: the
/// applied entries after it, contiguous, at least one and within
/// `max_bytes` of records (capped at `ANSWER_BYTES_MAX`); the image when
/// the log no longer holds the entry after `after`; None when nothing
/// was applied after it (the fetch waits). Runs between ready rounds.
pub fn answer(
    node: &QuorumNode,
    after: u64,
    max_bytes: usize,
) -> Result<Option<Fetched>, ServeError> {
    let applied = node.applied();
    if after >= applied {
        return Ok(None);
    }
    let log = node.log();
    let first = log
        .first_index()
        .map_err(|error| ServeError::Log(error.to_string()))?;
    if after + 1 < first {
        let records = encode_records(&node.image().snapshot_records());
        if records.len() > ANSWER_BYTES_MAX {
            return Err(ServeError::TooLarge {
                size_bytes: records.len(),
            });
        }
        return Ok(Some(Fetched::Snapshot(FetchedEntry {
            index: applied,
            records,
        })));
    }
    let max_bytes = max_bytes.min(ANSWER_BYTES_MAX);
    let entries = log
        .entries(
            after + 1,
            applied + 1,
            max_bytes as u64,
            GetEntriesContext::empty(false),
        )
        .map_err(|error| ServeError::Log(error.to_string()))?;
    let mut fetched = Vec::with_capacity(entries.len());
    let mut size_bytes = 0;
    for entry in entries {
        let records = if entry.get_entry_type() == EntryType::EntryNormal {
            entry.data
        } else {
            // A configuration change: no records, only its index.
            Default::default()
        };
        size_bytes += records.len();
        if size_bytes > max_bytes && !fetched.is_empty() {
            break;
        }
        if records.len() > ANSWER_BYTES_MAX {
            return Err(ServeError::TooLarge {
                size_bytes: records.len(),
            });
        }
        fetched.push(FetchedEntry {
            index: entry.index,
            records,
        });
    }
    if fetched.first().map(|entry| entry.index) != Some(after + 1) {
        return Err(ServeError::Log(format!(
            "entries from {} asked, {:?} given",
            after + 1,
            fetched.first().map(|entry| entry.index)
        )));
    }
    Ok(Some(Fetched::Entries(fetched)))
}

/// Why an answer was refused by an observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObserveError {
    /// Entries that do not follow the index applied, or a snapshot older
    /// than it.
    OutOfOrder { applied: u64, given: u64 },
    /// A snapshot that does not replay.
    Corrupt(String),
}

impl std::fmt::Display for ObserveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObserveError::OutOfOrder { applied, given } => write!(
                f,
                "metadata entry {given} answered to an observer that applied {applied}"
            ),
            ObserveError::Corrupt(error) => write!(f, "metadata snapshot: {error}"),
        }
    }
}

/// An observer's copy of the committed metadata: the image through `index`.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub index: u64,
    pub image: Arc<MetadataImage>,
}

impl Observed {
    /// Applies a voter's answer; true when the image or its index moved.
    /// Entries are checked whole before any is applied.
    pub fn take(&mut self, fetched: Fetched) -> Result<bool, ObserveError> {
        match fetched {
            Fetched::Entries(entries) => {
                for (expected, entry) in (self.index + 1..).zip(&entries) {
                    if entry.index != expected {
                        return Err(ObserveError::OutOfOrder {
                            applied: self.index,
                            given: entry.index,
                        });
                    }
                }
                let Some(last) = entries.last().map(|entry| entry.index) else {
                    return Ok(false);
                };
                let image = Arc::make_mut(&mut self.image);
                for entry in &entries {
                    apply_records(image, entry.index, &entry.records);
                }
                self.index = last;
                Ok(true)
            }
            Fetched::Snapshot(snapshot) => {
                if snapshot.index < self.index {
                    return Err(ObserveError::OutOfOrder {
                        applied: self.index,
                        given: snapshot.index,
                    });
                }
                let image = image_of_records(&snapshot.records)
                    .map_err(|error| ObserveError::Corrupt(error.to_string()))?;
                self.image = Arc::new(image);
                self.index = snapshot.index;
                Ok(true)
            }
        }
    }
}
