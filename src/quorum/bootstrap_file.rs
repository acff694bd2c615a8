//! The records `shoal storage format` leaves for the first leader of a
//! quorum of several voters (Kafka's `bootstrap.checkpoint`): the SCRAM
//! credentials of `--add-scram`, so that a cluster whose every listener
//! needs a login (SASL_SSL between brokers too) has its users, the
//! brokers' own among them, from its first moment. A sole voter commits
//! them at format time instead (`QuorumNode::start_blocking`).
//!
//! The leader proposes them with the `metadata.version` record, once per
//! cluster: only a log without that record gets them
//! (`QuorumNode::bootstrap_records`). As with Kafka, every controller is
//! formatted with the same `--add-scram` arguments, since any may lead
//! first.
//!
//! Invariant: the file is written whole or not at all (a temporary file,
//! fsynced, renamed, the directory fsynced), read against
//! `BOOTSTRAP_FILE_BYTES_MAX`, and a file that does not decode stops the
//! start rather than being skipped.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::node::{decode_records, encode_records, QuorumError};
use super::storage::METADATA_LOG_DIR;
use crate::metadata::records::MetadataRecord;

/// The file's name in the metadata log's directory.
pub const BOOTSTRAP_FILE: &str = "bootstrap.records";
/// The largest file read: a SCRAM credential is about 200 bytes, so this
/// holds thousands of users.
const BOOTSTRAP_FILE_BYTES_MAX: u64 = 1 << 20;

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(METADATA_LOG_DIR).join(BOOTSTRAP_FILE)
}

/// Writes `records` for the first leader of `data_dir`'s quorum.
pub fn write(data_dir: &Path, records: &[MetadataRecord]) -> io::Result<()> {
    let target = path(data_dir);
    let dir = data_dir.join(METADATA_LOG_DIR);
    fs::create_dir_all(&dir)?;
    let temporary = dir.join(format!("{BOOTSTRAP_FILE}.tmp"));
    let mut file = fs::File::create(&temporary)?;
    file.write_all(&encode_records(records))?;
    file.sync_all()?;
    fs::rename(&temporary, &target)?;
    fs::File::open(&dir)?.sync_all()
}

/// The records `write` left under `data_dir`; none without a file.
pub fn read(data_dir: &Path) -> Result<Vec<MetadataRecord>, QuorumError> {
    let corrupt = |why: String| QuorumError::Corrupt(format!("{BOOTSTRAP_FILE}: {why}"));
    let file = match fs::File::open(path(data_dir)) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(corrupt(error.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(BOOTSTRAP_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| corrupt(error.to_string()))?;
    if bytes.len() as u64 > BOOTSTRAP_FILE_BYTES_MAX {
        return Err(corrupt(format!(
            "larger than {BOOTSTRAP_FILE_BYTES_MAX} bytes"
        )));
    }
    decode_records(&bytes).map_err(|error| corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::UserScramCredentialRecord;

    fn credential(name: &str) -> MetadataRecord {
        let mechanism = crate::config::SaslMechanism::ScramSha512;
        MetadataRecord::UserScramCredential(UserScramCredentialRecord {
            name: name.to_string(),
            mechanism: 2,
            credential: crate::security::sasl::scram::credential_from_password(
                mechanism,
                "secret",
                b"salt-salt",
                4096,
            ),
        })
    }

    #[test]
    fn records_written_are_read_back_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), Vec::new());
        let records = vec![credential("broker"), credential("alice")];
        write(dir.path(), &records).unwrap();
        assert_eq!(read(dir.path()).unwrap(), records);
    }

    #[test]
    fn a_damaged_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[credential("broker")]).unwrap();
        let file = path(dir.path());
        let mut bytes = fs::read(&file).unwrap();
        bytes.truncate(bytes.len() - 3);
        fs::write(&file, &bytes).unwrap();
        assert!(matches!(read(dir.path()), Err(QuorumError::Corrupt(_))));
        fs::write(&file, vec![0xff; (BOOTSTRAP_FILE_BYTES_MAX + 1) as usize]).unwrap();
        assert!(read(dir.path()).is_err());
    }
}
