//! The filesystem a data directory lies on, as statvfs tells it: what
//! DescribeLogDirs reports and what the controller checks before it
//! deletes on a full disk.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The size of a filesystem and what an unprivileged writer may still use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeBytes {
    pub total: u64,
    pub usable: u64,
}

/// The sizes of the filesystem holding `path`; None when statvfs fails.
pub fn volume_bytes(path: &Path) -> Option<VolumeBytes> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stats` is written by the call
    // before it is read, which happens only when the call succeeded.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    let block_bytes = stats.f_frsize as u64;
    Some(VolumeBytes {
        total: (stats.f_blocks as u64).saturating_mul(block_bytes),
        usable: (stats.f_bavail as u64).saturating_mul(block_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_has_a_volume_and_a_missing_path_none() {
        let dir = tempfile::tempdir().unwrap();
        let volume = volume_bytes(dir.path()).expect("statvfs of a temp dir");
        assert!(volume.total > 0 && volume.usable <= volume.total);
        assert_eq!(volume_bytes(&dir.path().join("missing")), None);
    }
}
