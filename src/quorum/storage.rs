//! The Raft log's durable storage, `raft::Storage` for `RawNode`, in
//! `<data dir>/__cluster_metadata-0/` (Kafka's directory for the metadata
//! log).
//!
//! One file, `raft.log`, of frames: the payload's length (u32), its CRC32C
//! (u32), then the payload, whose first byte says what it is: an entry, the
//! hard state, the conf state, or a snapshot. Reopening replays the frames
//! in order with the rules the live calls use: an entry at index i replaces
//! every entry from i on (the truncation of a conflicting suffix needs no
//! frame of its own), the last hard state and conf state win, a snapshot
//! drops the entries it covers. The first frame that is short or fails its
//! CRC is a torn write of a crash: it and everything after it are cut off.
//! Compaction writes the surviving state to `raft.log.tmp`, syncs it and
//! renames it over `raft.log`, so the file never holds more than one
//! snapshot and the entries after it.
//!
//! Invariant: every call that changes state returns only after the file is
//! synced (`fdatasync`), so a caller that persists a `Ready`'s entries and
//! hard state here and then sends its messages never acknowledges what a
//! crash could lose. Reads serve from memory.
//!
//! The writes are blocking `std::fs` calls. They are control-plane writes
//! (a few small frames per metadata change, none on the data path), and
//! `RawNode`'s `Storage` is a synchronous trait, so an async file would not
//! shorten the ready loop; `a_synced_append_stall_is_measured` prints the
//! stall one append costs on the machine running the tests.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage};

/// Kafka's directory of the metadata log's one partition.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";
const LOG_FILE: &str = "raft.log";
const LOG_FILE_TMP: &str = "raft.log.tmp";

/// A frame's length and CRC32C.
const FRAME_HEADER_BYTES: usize = 8;
/// The largest frame read back: a snapshot holds the whole image, which
/// for the clusters shoal serves is far below this; a length beyond it is
/// a torn or corrupt frame, refused before anything is allocated for it.
pub const FRAME_BYTES_MAX: usize = 256 << 20;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_CONF_STATE: u8 = 3;
const KIND_SNAPSHOT: u8 = 4;

#[derive(Debug)]
pub enum StoreError {
    Io(io::Error),
    /// Entries that would leave a gap after the last index.
    Gap {
        last_index: u64,
        first_new: u64,
    },
    /// Entries or a snapshot at or below what a snapshot already covers.
    Compacted {
        snapshot_index: u64,
        index: u64,
    },
    /// A compaction past the last entry.
    BeyondLast {
        last_index: u64,
        index: u64,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(error) => write!(f, "metadata log: {error}"),
            StoreError::Gap {
                last_index,
                first_new,
            } => write!(
                f,
                "metadata log: entry {first_new} after last index {last_index}"
            ),
            StoreError::Compacted {
                snapshot_index,
                index,
            } => write!(
                f,
                "metadata log: index {index} is covered by the snapshot at {snapshot_index}"
            ),
            StoreError::BeyondLast { last_index, index } => {
                write!(
                    f,
                    "metadata log: index {index} is past last index {last_index}"
                )
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<io::Error> for StoreError {
    fn from(error: io::Error) -> StoreError {
        StoreError::Io(error)
    }
}

/// What the file holds, kept in memory; the same for the live calls and
/// the replay of the file.
#[derive(Default)]
struct State {
    hard_state: HardState,
    conf_state: ConfState,
    /// The last snapshot: its metadata's index and term are where the
    /// entries start (index + 1).
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl State {
    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |entry| entry.index)
    }

    fn check_append(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index < self.first_index() {
            return Err(StoreError::Compacted {
                snapshot_index: self.snapshot_index(),
                index: first.index,
            });
        }
        if first.index > self.last_index() + 1 {
            return Err(StoreError::Gap {
                last_index: self.last_index(),
                first_new: first.index,
            });
        }
        Ok(())
    }

    /// Raft's append: the new entries replace any from their first index on.
    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let keep = (first.index - self.first_index()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    /// Installs a snapshot: the entries it covers go; later ones stay if
    /// the snapshot's own term agrees with the log's at its index (a
    /// compaction), else all go (a snapshot from the leader replaces the
    /// log).
    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        let agrees = self
            .entry(meta.index)
            .is_some_and(|entry| entry.term == meta.term);
        if agrees {
            let drop = (meta.index + 1 - self.first_index()) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.conf_state = meta.get_conf_state().clone();
        if self.hard_state.commit < meta.index {
            self.hard_state.commit = meta.index;
        }
        if self.hard_state.term < meta.term {
            self.hard_state.term = meta.term;
        }
        self.snapshot = snapshot;
    }

    fn entry(&self, index: u64) -> Option<&Entry> {
        let offset = index.checked_sub(self.first_index())?;
        self.entries.get(usize::try_from(offset).ok()?)
    }
}

/// The durable Raft log of the metadata partition.
pub struct RaftLogStore {
    dir: PathBuf,
    file: File,
    state: State,
    /// A write or sync failed: the file may end in a partial frame that
    /// later frames would follow and a reopen would cut off with them, and
    /// a failed sync may have dropped dirty pages. Every later write is
    /// refused (fail-stop, as Kafka halts on a metadata log error) until
    /// the store is reopened, which cuts the tail.
    failed: bool,
}

impl RaftLogStore {
    /// Opens (or creates) the log under `data_dir`, replaying what a crash
    /// left: a torn tail is cut off and logged.
    pub fn open(data_dir: &Path) -> Result<RaftLogStore, StoreError> {
        let dir = data_dir.join(METADATA_LOG_DIR);
        fs::create_dir_all(&dir)?;
        // A compaction that crashed before its rename left only a temp file.
        let _ = fs::remove_file(dir.join(LOG_FILE_TMP));
        let path = dir.join(LOG_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let mut state = State::default();
        let valid = replay(&bytes, &mut state);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if valid < bytes.len() {
            log::warn!(
                "{}: cutting {} bytes of a torn or corrupt tail at offset {valid}",
                path.display(),
                bytes.len() - valid
            );
            file.set_len(valid as u64)?;
            file.sync_data()?;
        }
        sync_dir(&dir)?;
        Ok(RaftLogStore {
            dir,
            file,
            state,
            failed: false,
        })
    }

    /// Persists a `Ready`'s entries and hard state with one sync; only
    /// then may the caller send the messages that acknowledge them.
    pub fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StoreError> {
        self.state.check_append(entries)?;
        let mut buf = BytesMut::new();
        for entry in entries {
            put_frame(&mut buf, |payload| put_entry(payload, entry));
        }
        if let Some(hard_state) = hard_state {
            put_frame(&mut buf, |payload| put_hard_state(payload, hard_state));
        }
        self.write_synced(&buf)?;
        self.state.append(entries);
        if let Some(hard_state) = hard_state {
            self.state.hard_state = hard_state.clone();
        }
        Ok(())
    }

    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.persist(entries, None)
    }

    pub fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError> {
        self.persist(&[], Some(hard_state))
    }

    /// The commit index a `Ready` or `LightReady` reported.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        let mut hard_state = self.state.hard_state.clone();
        hard_state.commit = commit;
        self.set_hard_state(&hard_state)
    }

    pub fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), StoreError> {
        let mut buf = BytesMut::new();
        put_frame(&mut buf, |payload| put_conf_state(payload, conf_state));
        self.write_synced(&buf)?;
        self.state.conf_state = conf_state.clone();
        Ok(())
    }

    /// Installs a snapshot received from the leader (a `Ready`'s), or one
    /// taken here of the applied state (a compaction), and rewrites the
    /// file without the entries it covers.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        let index = snapshot.get_metadata().index;
        if index <= self.state.snapshot_index() {
            return Err(StoreError::Compacted {
                snapshot_index: self.state.snapshot_index(),
                index,
            });
        }
        let mut next = State {
            hard_state: self.state.hard_state.clone(),
            conf_state: self.state.conf_state.clone(),
            snapshot: self.state.snapshot.clone(),
            entries: self.state.entries.clone(),
        };
        next.install_snapshot(snapshot);
        self.rewrite(&next)?;
        self.state = next;
        Ok(())
    }

    /// A compaction: a snapshot of the applied state at `index` (an entry
    /// of the log), its `data` the records that rebuild the image.
    pub fn compact(&mut self, index: u64, data: Bytes) -> Result<(), StoreError> {
        let term = match self.state.entry(index) {
            Some(entry) => entry.term,
            None if index > self.state.last_index() => {
                return Err(StoreError::BeyondLast {
                    last_index: self.state.last_index(),
                    index,
                })
            }
            None => {
                return Err(StoreError::Compacted {
                    snapshot_index: self.state.snapshot_index(),
                    index,
                })
            }
        };
        let mut snapshot = Snapshot::default();
        snapshot.set_data(data);
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.state.conf_state.clone());
        self.apply_snapshot(snapshot)
    }

    /// The last snapshot (empty metadata if none).
    pub fn last_snapshot(&self) -> &Snapshot {
        &self.state.snapshot
    }

    pub fn hard_state(&self) -> &HardState {
        &self.state.hard_state
    }

    fn write_synced(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.check_not_failed()?;
        let written = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        self.failed = written.is_err();
        Ok(written?)
    }

    fn check_not_failed(&self) -> Result<(), StoreError> {
        if self.failed {
            return Err(StoreError::Io(io::Error::other(
                "an earlier write failed; reopen the metadata log",
            )));
        }
        Ok(())
    }

    /// Writes `state` whole to the temp file, syncs it and renames it over
    /// the log: a crash leaves the old file or the new, never a mix.
    fn rewrite(&mut self, state: &State) -> Result<(), StoreError> {
        self.check_not_failed()?;
        let rewritten = self.write_and_rename(state);
        self.failed = rewritten.is_err();
        rewritten
    }

    fn write_and_rename(&mut self, state: &State) -> Result<(), StoreError> {
        let mut buf = BytesMut::new();
        put_frame(&mut buf, |payload| put_snapshot(payload, &state.snapshot));
        put_frame(&mut buf, |payload| {
            put_conf_state(payload, &state.conf_state)
        });
        for entry in &state.entries {
            put_frame(&mut buf, |payload| put_entry(payload, entry));
        }
        put_frame(&mut buf, |payload| {
            put_hard_state(payload, &state.hard_state)
        });
        let tmp = self.dir.join(LOG_FILE_TMP);
        let mut file = File::create(&tmp)?;
        file.write_all(&buf)?;
        file.sync_all()?;
        let path = self.dir.join(LOG_FILE);
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Storage for RaftLogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.state.hard_state.clone(),
            self.state.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.state.first_index() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.state.last_index() + 1 || low > high {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let offset = self.state.first_index();
        let mut entries =
            self.state.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let meta = self.state.snapshot.get_metadata();
        if index == meta.index {
            return Ok(meta.term);
        }
        if index < meta.index {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        self.state
            .entry(index)
            .map(|entry| entry.term)
            .ok_or(raft::Error::Store(raft::StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.state.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.state.last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.state.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.state.snapshot.clone())
    }
}

fn put_frame(buf: &mut BytesMut, write: impl FnOnce(&mut BytesMut)) {
    let mut payload = BytesMut::new();
    write(&mut payload);
    buf.put_u32(payload.len() as u32);
    buf.put_u32(crc32c::crc32c(&payload));
    buf.put_slice(&payload);
}

fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_u32(bytes.len() as u32);
    buf.put_slice(bytes);
}

fn put_ids(buf: &mut BytesMut, ids: &[u64]) {
    buf.put_u32(ids.len() as u32);
    for id in ids {
        buf.put_u64(*id);
    }
}

fn put_entry(buf: &mut BytesMut, entry: &Entry) {
    buf.put_u8(KIND_ENTRY);
    buf.put_u64(entry.index);
    buf.put_u64(entry.term);
    buf.put_u8(match entry.get_entry_type() {
        EntryType::EntryNormal => 0,
        EntryType::EntryConfChange => 1,
        EntryType::EntryConfChangeV2 => 2,
    });
    put_bytes(buf, &entry.data);
    put_bytes(buf, &entry.context);
}

fn put_hard_state(buf: &mut BytesMut, hard_state: &HardState) {
    buf.put_u8(KIND_HARD_STATE);
    buf.put_u64(hard_state.term);
    buf.put_u64(hard_state.vote);
    buf.put_u64(hard_state.commit);
}

fn put_conf_state_body(buf: &mut BytesMut, conf_state: &ConfState) {
    put_ids(buf, conf_state.get_voters());
    put_ids(buf, conf_state.get_learners());
    put_ids(buf, conf_state.get_voters_outgoing());
    put_ids(buf, conf_state.get_learners_next());
    buf.put_u8(u8::from(conf_state.auto_leave));
}

fn put_conf_state(buf: &mut BytesMut, conf_state: &ConfState) {
    buf.put_u8(KIND_CONF_STATE);
    put_conf_state_body(buf, conf_state);
}

fn put_snapshot(buf: &mut BytesMut, snapshot: &Snapshot) {
    buf.put_u8(KIND_SNAPSHOT);
    let meta = snapshot.get_metadata();
    buf.put_u64(meta.index);
    buf.put_u64(meta.term);
    put_conf_state_body(buf, meta.get_conf_state());
    put_bytes(buf, &snapshot.data);
}

/// Replays the frames into `state`; returns the length of the valid
/// prefix (where a torn or corrupt frame starts, or the end).
fn replay(bytes: &[u8], state: &mut State) -> usize {
    let mut offset = 0;
    while let Some(payload) = frame_at(bytes, offset) {
        if apply_frame(payload, state).is_none() {
            break;
        }
        offset += FRAME_HEADER_BYTES + payload.len();
    }
    offset
}

fn frame_at(bytes: &[u8], offset: usize) -> Option<&[u8]> {
    let mut header = bytes.get(offset..offset.checked_add(FRAME_HEADER_BYTES)?)?;
    let len = header.get_u32() as usize;
    let crc = header.get_u32();
    if len > FRAME_BYTES_MAX {
        return None;
    }
    let start = offset + FRAME_HEADER_BYTES;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (crc32c::crc32c(payload) == crc).then_some(payload)
}

/// Applies one frame the CRC passed; None if it does not parse or does
/// not follow (a frame this code did not write), which ends the replay.
fn apply_frame(mut payload: &[u8], state: &mut State) -> Option<()> {
    let kind = take_u8(&mut payload)?;
    match kind {
        KIND_ENTRY => {
            let mut entry = Entry::default();
            entry.set_index(take_u64(&mut payload)?);
            entry.set_term(take_u64(&mut payload)?);
            entry.set_entry_type(match take_u8(&mut payload)? {
                0 => EntryType::EntryNormal,
                1 => EntryType::EntryConfChange,
                2 => EntryType::EntryConfChangeV2,
                _ => return None,
            });
            entry.set_data(take_bytes(&mut payload)?);
            entry.set_context(take_bytes(&mut payload)?);
            let entries = [entry];
            state.check_append(&entries).ok()?;
            state.append(&entries);
        }
        KIND_HARD_STATE => {
            let mut hard_state = HardState::default();
            hard_state.set_term(take_u64(&mut payload)?);
            hard_state.set_vote(take_u64(&mut payload)?);
            hard_state.set_commit(take_u64(&mut payload)?);
            state.hard_state = hard_state;
        }
        KIND_CONF_STATE => state.conf_state = take_conf_state(&mut payload)?,
        KIND_SNAPSHOT => {
            let mut snapshot = Snapshot::default();
            let meta = snapshot.mut_metadata();
            meta.set_index(take_u64(&mut payload)?);
            meta.set_term(take_u64(&mut payload)?);
            meta.set_conf_state(take_conf_state(&mut payload)?);
            snapshot.set_data(take_bytes(&mut payload)?);
            // The snapshot frame leads a rewritten file: it is the start.
            *state = State::default();
            state.install_snapshot(snapshot);
        }
        _ => return None,
    }
    payload.is_empty().then_some(())
}

fn take_u8(payload: &mut &[u8]) -> Option<u8> {
    let (&byte, rest) = payload.split_first()?;
    *payload = rest;
    Some(byte)
}

fn take_u64(payload: &mut &[u8]) -> Option<u64> {
    let (head, rest) = payload.split_first_chunk::<8>()?;
    *payload = rest;
    Some(u64::from_be_bytes(*head))
}

fn take_u32(payload: &mut &[u8]) -> Option<u32> {
    let (head, rest) = payload.split_first_chunk::<4>()?;
    *payload = rest;
    Some(u32::from_be_bytes(*head))
}

fn take_bytes(payload: &mut &[u8]) -> Option<Bytes> {
    let len = take_u32(payload)? as usize;
    let bytes = payload.get(..len)?;
    *payload = &payload[len..];
    Some(Bytes::copy_from_slice(bytes))
}

fn take_ids(payload: &mut &[u8]) -> Option<Vec<u64>> {
    let len = take_u32(payload)? as usize;
    // Each id takes 8 bytes: a count beyond what is left is corrupt.
    if len > payload.len() / 8 {
        return None;
    }
    (0..len).map(|_| take_u64(payload)).collect()
}

fn take_conf_state(payload: &mut &[u8]) -> Option<ConfState> {
    let mut conf_state = ConfState::default();
    conf_state.set_voters(take_ids(payload)?);
    conf_state.set_learners(take_ids(payload)?);
    conf_state.set_voters_outgoing(take_ids(payload)?);
    conf_state.set_learners_next(take_ids(payload)?);
    conf_state.set_auto_leave(take_u8(payload)? != 0);
    Some(conf_state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        let mut entry = Entry::default();
        entry.set_index(index);
        entry.set_term(term);
        entry.set_data(Bytes::copy_from_slice(data.as_bytes()));
        entry
    }

    fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
        let mut hard_state = HardState::default();
        hard_state.set_term(term);
        hard_state.set_vote(vote);
        hard_state.set_commit(commit);
        hard_state
    }

    fn voters(ids: Vec<u64>) -> ConfState {
        let mut conf_state = ConfState::default();
        conf_state.set_voters(ids);
        conf_state
    }

    fn all(store: &RaftLogStore) -> Vec<Entry> {
        let (first, last) = (store.first_index().unwrap(), store.last_index().unwrap());
        store
            .entries(first, last + 1, None, GetEntriesContext::empty(false))
            .unwrap()
    }

    fn log_path(dir: &Path) -> PathBuf {
        dir.join(METADATA_LOG_DIR).join(LOG_FILE)
    }

    #[test]
    fn a_reopened_log_has_its_entries_hard_state_and_conf_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RaftLogStore::open(dir.path()).unwrap();
        store.set_conf_state(&voters(vec![1])).unwrap();
        store
            .persist(
                &[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")],
                Some(&hard_state(1, 1, 2)),
            )
            .unwrap();
        // A new leader's entries replace the conflicting suffix from 3 on.
        store
            .persist(
                &[entry(3, 2, "C"), entry(4, 2, "D")],
                Some(&hard_state(2, 1, 3)),
            )
            .unwrap();
        let expected = all(&store);
        drop(store);
        let store = RaftLogStore::open(dir.path()).unwrap();
        assert_eq!(all(&store), expected);
        assert_eq!(
            expected
                .iter()
                .map(|e| (e.index, e.term))
                .collect::<Vec<_>>(),
            vec![(1, 1), (2, 1), (3, 2), (4, 2)]
        );
        let state = store.initial_state().unwrap();
        assert_eq!(state.hard_state, hard_state(2, 1, 3));
        assert_eq!(state.conf_state, voters(vec![1]));
        assert_eq!(store.term(3).unwrap(), 2);
        assert!(store.term(5).is_err());
    }

    #[test]
    fn a_torn_last_entry_is_cut_off_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RaftLogStore::open(dir.path()).unwrap();
        store.append(&[entry(1, 1, "a"), entry(2, 1, "b")]).unwrap();
        drop(store);
        let path = log_path(dir.path());
        let whole = fs::metadata(&path).unwrap().len();
        // The crash wrote the last frame's header and part of its payload.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(whole - 3)
            .unwrap();
        let mut store = RaftLogStore::open(dir.path()).unwrap();
        assert_eq!(store.last_index().unwrap(), 1);
        store.append(&[entry(2, 1, "B")]).unwrap();
        drop(store);
        let store = RaftLogStore::open(dir.path()).unwrap();
        assert_eq!(all(&store)[1].data, Bytes::from_static(b"B"));
    }

    #[test]
    fn a_corrupt_byte_ends_the_log_at_the_frame_it_hits() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RaftLogStore::open(dir.path()).unwrap();
        store
            .append(&[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")])
            .unwrap();
        drop(store);
        let path = log_path(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let frame = bytes.len() / 3;
        bytes[frame + FRAME_HEADER_BYTES + 2] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let store = RaftLogStore::open(dir.path()).unwrap();
        assert_eq!(store.last_index().unwrap(), 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), frame as u64);
    }

    #[test]
    fn compaction_keeps_the_snapshot_and_later_entries_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RaftLogStore::open(dir.path()).unwrap();
        store.set_conf_state(&voters(vec![1])).unwrap();
        let entries: Vec<Entry> = (1..=5).map(|i| entry(i, 1, "x")).collect();
        store.persist(&entries, Some(&hard_state(1, 1, 4))).unwrap();
        store.compact(3, Bytes::from_static(b"image")).unwrap();
        assert!(matches!(
            store.compact(2, Bytes::new()),
            Err(StoreError::Compacted { .. })
        ));
        assert!(matches!(
            store.append(&[entry(3, 1, "y")]),
            Err(StoreError::Compacted { .. })
        ));
        assert!(matches!(
            store.append(&[entry(9, 1, "y")]),
            Err(StoreError::Gap { .. })
        ));
        drop(store);
        let store = RaftLogStore::open(dir.path()).unwrap();
        assert_eq!(store.first_index().unwrap(), 4);
        assert_eq!(store.last_index().unwrap(), 5);
        assert_eq!(store.term(3).unwrap(), 1);
        assert!(matches!(
            store.entries(2, 5, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(raft::StorageError::Compacted))
        ));
        let snapshot = store.snapshot(3, 0).unwrap();
        assert_eq!(snapshot.get_metadata().index, 3);
        assert_eq!(snapshot.data, Bytes::from_static(b"image"));
        assert_eq!(snapshot.get_metadata().get_conf_state(), &voters(vec![1]));
        assert_eq!(store.hard_state(), &hard_state(1, 1, 4));
    }

    #[test]
    fn a_leaders_snapshot_past_the_log_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RaftLogStore::open(dir.path()).unwrap();
        store.append(&[entry(1, 1, "a"), entry(2, 1, "b")]).unwrap();
        let mut snapshot = Snapshot::default();
        snapshot.set_data(Bytes::from_static(b"image"));
        snapshot.mut_metadata().index = 10;
        snapshot.mut_metadata().term = 3;
        snapshot
            .mut_metadata()
            .set_conf_state(voters(vec![1, 2, 3]));
        store.apply_snapshot(snapshot).unwrap();
        drop(store);
        let store = RaftLogStore::open(dir.path()).unwrap();
        assert_eq!(
            (store.first_index().unwrap(), store.last_index().unwrap()),
            (11, 10)
        );
        let state = store.initial_state().unwrap();
        assert_eq!((state.hard_state.term, state.hard_state.commit), (3, 10));
        assert_eq!(state.conf_state, voters(vec![1, 2, 3]));
    }

    /// Not a timing assert: prints what one synced append costs, the stall
    /// shard 0 takes per metadata change (`--nocapture` shows it).
    #[test]
    fn a_synced_append_stall_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RaftLogStore::open(dir.path()).unwrap();
        const APPENDS: u64 = 20;
        let start = Instant::now();
        for index in 1..=APPENDS {
            store
                .persist(&[entry(index, 1, "record")], Some(&hard_state(1, 1, index)))
                .unwrap();
        }
        println!(
            "one synced append of the metadata log: {:?}",
            start.elapsed() / APPENDS as u32
        );
        assert_eq!(store.last_index().unwrap(), APPENDS);
    }
}
