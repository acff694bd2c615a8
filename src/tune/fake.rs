//! A crafted `/proc` and `/sys` tree in a temporary directory, for the
//! checks' unit tests.

use std::fs;
use std::path::PathBuf;

use super::Host;

pub(super) struct FakeRoot {
    dir: tempfile::TempDir,
}

impl FakeRoot {
    pub fn new() -> FakeRoot {
        let dir = tempfile::tempdir().expect("a temp dir");
        fs::create_dir(dir.path().join("data")).expect("the data dir");
        FakeRoot { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file, creating its directories.
    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
        fs::write(path, format!("{text}\n")).expect("a fake file");
    }

    pub fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).expect("a fake file")
    }

    /// A relative symlink at `relative` pointing to `target`, as sysfs has.
    pub fn symlink(&self, relative: &str, target: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
        std::os::unix::fs::symlink(target, path).expect("a symlink");
    }

    /// A host of 2 shards on cores 0 and 1 whose data directory is `data/`
    /// in this tree, with io_uring available.
    pub fn host(&self) -> Host {
        Host {
            root: self.dir.path().to_path_buf(),
            data_dir: self.path("data"),
            shards: 2,
            shard_cores: vec![0, 1],
            probe_io_uring: || Ok(()),
        }
    }
}
