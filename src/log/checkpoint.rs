//! `shoal.checkpoint`: the few numbers a partition needs at start that the
//! segments cannot tell cheaply. Format in the module doc of `log`.

use std::path::Path;

use glommio::io::{BufferedFile, Directory, OpenOptions};

use super::LogError;

pub const CHECKPOINT_FILE: &str = "shoal.checkpoint";
pub const CHECKPOINT_TMP_FILE: &str = "shoal.checkpoint.tmp";
const VERSION_LINE: &str = "shoal-checkpoint 1";
/// A checkpoint is five short lines; anything longer is not ours.
const CHECKPOINT_BYTES_MAX: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub leader_epoch: i32,
}

impl Checkpoint {
    fn encode(&self) -> String {
        format!(
            "{VERSION_LINE}\nrecovery_point {}\nlog_start_offset {}\nhigh_watermark {}\nleader_epoch {}\n",
            self.recovery_point, self.log_start_offset, self.high_watermark, self.leader_epoch
        )
    }

    fn decode(text: &str) -> Result<Checkpoint, String> {
        let mut fields: [Option<i64>; 4] = [None; 4];
        for (key, value) in numbered_lines(text, VERSION_LINE)? {
            let slot = match key {
                "recovery_point" => 0,
                "log_start_offset" => 1,
                "high_watermark" => 2,
                "leader_epoch" => 3,
                _ => return Err(format!("unknown key {key:?}")),
            };
            fields[slot] = Some(value);
        }
        let [Some(recovery_point), Some(log_start_offset), Some(high_watermark), Some(epoch)] =
            fields
        else {
            return Err("missing key".into());
        };
        let leader_epoch = i32::try_from(epoch).map_err(|_| "leader_epoch out of range")?;
        if recovery_point < 0 || log_start_offset < 0 || high_watermark < 0 {
            return Err("negative offset".into());
        }
        Ok(Checkpoint {
            recovery_point,
            log_start_offset,
            high_watermark,
            leader_epoch,
        })
    }
}

/// The `key value` lines after `version_line`, each value an i64.
fn numbered_lines<'a>(text: &'a str, version_line: &str) -> Result<Vec<(&'a str, i64)>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(version_line) {
        return Err("unknown version line".into());
    }
    lines
        .map(|line| {
            let (key, value) = line
                .split_once(' ')
                .ok_or_else(|| format!("malformed line {line:?}"))?;
            let value = value
                .parse()
                .map_err(|_| format!("malformed value in {line:?}"))?;
            Ok((key, value))
        })
        .collect()
}

/// Reads the checkpoint of `dir`; `Ok(None)` when there is none yet (or
/// something far too large to be one: recovery then scans everything).
pub async fn read(dir: &Path) -> Result<Option<Checkpoint>, LogError> {
    let path = dir.join(CHECKPOINT_FILE);
    let Some(bytes) = read_whole(&path, CHECKPOINT_BYTES_MAX as u64).await? else {
        return Ok(None);
    };
    let corrupt = |reason: String| LogError::Corrupt {
        path: path.clone(),
        position: 0,
        reason,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| corrupt("not utf-8".into()))?;
    Checkpoint::decode(text).map(Some).map_err(corrupt)
}

/// The whole file at `path` if it exists and is at most `max_bytes` long
/// (the small files beside the segments: checkpoint, indexes).
pub async fn read_whole(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, LogError> {
    let file = match BufferedFile::open(path).await {
        Ok(file) => file,
        Err(e) => {
            let e: std::io::Error = e.into();
            if e.kind() == std::io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(e.into());
        }
    };
    let size = file.file_size().await?;
    let mut out = Vec::new();
    if size <= max_bytes {
        while (out.len() as u64) < size {
            let chunk = file
                .read_at(out.len() as u64, (size - out.len() as u64) as usize)
                .await?;
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
    }
    file.close().await?;
    Ok((size <= max_bytes && out.len() as u64 == size).then_some(out))
}

/// Replaces the checkpoint of `dir` atomically: a crash leaves either the old
/// or the new one, never a mix.
pub async fn write(dir: &Path, checkpoint: &Checkpoint) -> Result<(), LogError> {
    replace(
        dir,
        CHECKPOINT_FILE,
        CHECKPOINT_TMP_FILE,
        checkpoint.encode().into_bytes(),
    )
    .await
}

/// Replaces `dir/name` with `bytes` atomically, through `dir/tmp_name`.
pub(super) async fn replace(
    dir: &Path,
    name: &str,
    tmp_name: &str,
    bytes: Vec<u8>,
) -> Result<(), LogError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(dir.join(tmp_name))
        .await?;
    let len = bytes.len();
    let written = file.write_at(bytes, 0).await?;
    if written != len {
        return Err(LogError::Io(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "short checkpoint write",
        )));
    }
    file.fdatasync().await?;
    file.rename(dir.join(name)).await?;
    file.close().await?;
    sync_dir(dir).await
}

/// fsyncs directory `dir`, making the renames and removals in it durable.
pub async fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let directory = Directory::open(dir).await?;
    directory.sync().await?;
    directory.close().await?;
    Ok(())
}

/// `shoal.cleaner`: where the log cleaner stands, Kafka's
/// `cleaner-offset-checkpoint` for one partition.
pub const CLEANER_FILE: &str = "shoal.cleaner";
pub const CLEANER_TMP_FILE: &str = "shoal.cleaner.tmp";
const CLEANER_VERSION_LINE: &str = "shoal-cleaner 1";

/// ```text
/// shoal-cleaner 1
/// cleaner_offset 5000
/// tombstone_horizon_ms 1767225600000
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerCheckpoint {
    /// Everything below this offset has been cleaned (the dirty section
    /// starts here).
    pub cleaner_offset: i64,
    /// Earliest delete horizon of a tombstone in the cleaned section:
    /// from then on a pass can drop it. `i64::MAX` when there is none.
    pub tombstone_horizon_ms: i64,
}

impl CleanerCheckpoint {
    fn encode(&self) -> String {
        format!(
            "{CLEANER_VERSION_LINE}\ncleaner_offset {}\ntombstone_horizon_ms {}\n",
            self.cleaner_offset, self.tombstone_horizon_ms
        )
    }

    fn decode(text: &str) -> Result<CleanerCheckpoint, String> {
        let (mut offset, mut horizon) = (None, None);
        for (key, value) in numbered_lines(text, CLEANER_VERSION_LINE)? {
            match key {
                "cleaner_offset" if value >= 0 => offset = Some(value),
                "tombstone_horizon_ms" => horizon = Some(value),
                _ => return Err(format!("unexpected {key} {value}")),
            }
        }
        match (offset, horizon) {
            (Some(cleaner_offset), Some(tombstone_horizon_ms)) => Ok(CleanerCheckpoint {
                cleaner_offset,
                tombstone_horizon_ms,
            }),
            _ => Err("missing key".into()),
        }
    }
}

/// The cleaner checkpoint of `dir`, if there is a readable one. Without one
/// the next pass cleans the whole log: slower, never wrong.
pub async fn read_cleaner(dir: &Path) -> Result<Option<CleanerCheckpoint>, LogError> {
    let path = dir.join(CLEANER_FILE);
    let Some(bytes) = read_whole(&path, CHECKPOINT_BYTES_MAX as u64).await? else {
        return Ok(None);
    };
    let decoded = std::str::from_utf8(&bytes)
        .map_err(|_| "not utf-8".to_string())
        .and_then(CleanerCheckpoint::decode);
    match decoded {
        Ok(checkpoint) => Ok(Some(checkpoint)),
        Err(reason) => {
            ::log::warn!("{}: ignoring: {reason}", path.display());
            Ok(None)
        }
    }
}

pub async fn write_cleaner(dir: &Path, checkpoint: &CleanerCheckpoint) -> Result<(), LogError> {
    replace(
        dir,
        CLEANER_FILE,
        CLEANER_TMP_FILE,
        checkpoint.encode().into_bytes(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard;

    #[test]
    fn round_trip_and_refusals() {
        let cp = Checkpoint {
            recovery_point: 120,
            log_start_offset: 3,
            high_watermark: 119,
            leader_epoch: 2,
        };
        assert_eq!(Checkpoint::decode(&cp.encode()), Ok(cp));
        assert!(Checkpoint::decode("shoal-checkpoint 2\n").is_err());
        assert!(Checkpoint::decode("shoal-checkpoint 1\nrecovery_point 1\n").is_err());
        assert!(Checkpoint::decode(&cp.encode().replace("120", "x")).is_err());
        assert!(Checkpoint::decode(&cp.encode().replace("120", "-1")).is_err());
    }

    #[test]
    fn cleaner_checkpoint_round_trips() {
        let cp = CleanerCheckpoint {
            cleaner_offset: 5000,
            tombstone_horizon_ms: i64::MAX,
        };
        assert_eq!(CleanerCheckpoint::decode(&cp.encode()), Ok(cp));
        assert!(CleanerCheckpoint::decode("shoal-cleaner 1\ncleaner_offset 1\n").is_err());
        assert!(CleanerCheckpoint::decode(&cp.encode().replace("5000", "-1")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        shard::block_on(move || async move {
            assert_eq!(read_cleaner(&path).await.unwrap(), None);
            write_cleaner(&path, &cp).await.unwrap();
            assert_eq!(read_cleaner(&path).await.unwrap(), Some(cp));
            std::fs::write(path.join(CLEANER_FILE), "garbage").unwrap();
            assert_eq!(read_cleaner(&path).await.unwrap(), None);
        });
    }

    #[test]
    fn written_then_read_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        shard::block_on(move || async move {
            assert_eq!(read(&path).await.unwrap(), None);
            let cp = Checkpoint {
                recovery_point: 7,
                log_start_offset: 0,
                high_watermark: 7,
                leader_epoch: 0,
            };
            write(&path, &cp).await.unwrap();
            write(&path, &cp).await.unwrap();
            assert_eq!(read(&path).await.unwrap(), Some(cp));
            assert!(!path.join(CHECKPOINT_TMP_FILE).exists());
        });
    }
}
