//! A split in the bucket as a read-only tantivy directory: every file is
//! read by ranges through the cache, so a search fetches the term
//! dictionary blocks, postings and documents it needs, never the split.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    Directory, DirectoryLock, FileHandle, Lock, OwnedBytes, WatchCallback, WatchHandle, WritePtr,
};

use super::RemoteFile;
use crate::block_store::BlockFile as _;

impl tantivy::HasLen for RemoteFile {
    fn len(&self) -> usize {
        usize::try_from(self.len).unwrap_or(usize::MAX)
    }
}

impl FileHandle for RemoteFile {
    fn read_bytes(&self, range: std::ops::Range<usize>) -> io::Result<OwnedBytes> {
        Ok(OwnedBytes::new(
            self.read_at(range.start as u64, range.len())?,
        ))
    }
}

/// The files of one split in the bucket, by name.
#[derive(Debug, Clone)]
pub(crate) struct RemoteDirectory {
    files: Arc<HashMap<PathBuf, Arc<RemoteFile>>>,
}

impl RemoteDirectory {
    pub(crate) fn new(files: impl IntoIterator<Item = (String, Arc<RemoteFile>)>) -> Self {
        Self {
            files: Arc::new(
                files
                    .into_iter()
                    .map(|(name, file)| (PathBuf::from(name), file))
                    .collect(),
            ),
        }
    }
}

fn read_only(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{}: a split in the object store is read-only",
            path.display()
        ),
    )
}

impl Directory for RemoteDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        match self.files.get(path) {
            Some(file) => Ok(file.clone()),
            None => Err(OpenReadError::FileDoesNotExist(path.to_owned())),
        }
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::IoError {
            io_error: Arc::new(read_only(path)),
            filepath: path.to_owned(),
        })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        Ok(self.files.contains_key(path))
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::wrap_io_error(
            read_only(path),
            path.to_owned(),
        ))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let file = self
            .files
            .get(path)
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_owned()))?;
        file.read_at(0, tantivy::HasLen::len(file.as_ref()))
            .map_err(|e| OpenReadError::wrap_io_error(e, path.to_owned()))
    }

    fn atomic_write(&self, path: &Path, _data: &[u8]) -> io::Result<()> {
        Err(read_only(path))
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    /// Nothing writes here, so readers need no lock.
    fn acquire_lock(&self, _lock: &Lock) -> Result<DirectoryLock, LockError> {
        Ok(DirectoryLock::from(Box::new(())))
    }

    /// Splits never change.
    fn watch(&self, _callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(WatchHandle::empty())
    }
}
