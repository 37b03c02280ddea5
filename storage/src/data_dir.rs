//! The data directory and its lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const LOCK_FILE: &str = "LOCK";

/// An open data directory, locked for this process until dropped.
///
/// The lock is an advisory `flock` on `<dir>/LOCK`, so the kernel releases it
/// when the process dies, even by `kill -9`: a crash never leaves a stale lock.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    // Held only for its lock.
    _lock: File,
}

impl DataDir {
    /// Creates `path` if needed and takes its lock.
    ///
    /// Fails with [`Error::DataDirLocked`] when another process holds it.
    pub fn open(path: &Path) -> Result<Self> {
        let io_err = |source| Error::DataDir {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io_err)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join(LOCK_FILE))
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = lock.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!(" (pid {pid})"),
                    Err(_) => String::new(),
                };
                return Err(Error::DataDirLocked {
                    path: path.to_owned(),
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_err(source)),
        }
        // Record who holds it, for the error message a second process prints.
        lock.set_len(0).map_err(io_err)?;
        lock.seek(SeekFrom::Start(0)).map_err(io_err)?;
        writeln!(lock, "{}", std::process::id()).map_err(io_err)?;
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/data");
        let first = DataDir::open(&dir).unwrap();
        assert_eq!(first.path(), dir);
        let err = DataDir::open(&dir).unwrap_err().to_string();
        assert!(err.contains("already in use"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DataDir::open(&dir).unwrap();
    }

    #[test]
    fn a_file_in_the_way_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("data");
        std::fs::write(&file, b"not a directory").unwrap();
        let err = DataDir::open(&file).unwrap_err().to_string();
        assert!(err.contains("cannot use data directory"), "{err}");
    }
}
