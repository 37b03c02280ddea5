//! Where immutable blocks live: one narrow interface over local disk
//! ([`LocalBlockStore`]) and object storage (`remote::ObjectBlockStore`).
//!
//! A block is a set of named files under an id. It is built in a local staging
//! directory and handed over whole: a reader sees all of a block or none of it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

/// A file of a block, read by offset: a local file, or ranges of an object
/// in object storage.
pub trait BlockFile: Send + Sync + std::fmt::Debug {
    /// Exactly `len` bytes from `offset`.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// As [`BlockFile::read_at`], borrowed where the file already holds
    /// the bytes in memory (a mapped file): a query reads thousands of
    /// chunk records, each no copy then.
    fn read_borrowed(&self, offset: u64, len: usize) -> io::Result<Cow<'_, [u8]>> {
        self.read_at(offset, len).map(Cow::Owned)
    }
    /// Fetches the `[from, to)` ranges ahead of reads, all at once (a remote
    /// file; nothing to do for a local one).
    fn prefetch(&self, _ranges: &[(u64, u64)]) -> io::Result<()> {
        Ok(())
    }
}

impl BlockFile for File {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

/// A local block file mapped into memory: a read copies from the map,
/// without a system call (a query reads thousands of chunk records).
#[derive(Debug)]
struct MappedFile {
    map: memmap2::Mmap,
}

impl MappedFile {
    /// Maps `file`; `None` when it cannot be (an empty file, for one).
    fn map(file: &File) -> Option<Self> {
        // SAFETY: block files are immutable once published: nothing writes
        // or truncates them while the engine runs, and deleting one
        // (compaction, eviction) leaves the mapping valid. Like every file a
        // process maps (tantivy maps the log splits the same way), it must
        // not be altered by anyone else.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
        Some(Self { map })
    }
}

impl BlockFile for MappedFile {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.read_borrowed(offset, len).map(Cow::into_owned)
    }

    fn read_borrowed(&self, offset: u64, len: usize) -> io::Result<Cow<'_, [u8]>> {
        usize::try_from(offset)
            .ok()
            .and_then(|start| self.map.get(start..start.checked_add(len)?))
            .map(Cow::Borrowed)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a read past the end of a block file",
                )
            })
    }
}

/// Immutable block storage.
pub trait BlockStore: Send + Sync + std::fmt::Debug {
    /// Ids of every complete block.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Publishes the files of `staging` (a local directory) as block `id`,
    /// atomically. `staging` is consumed.
    fn publish(&self, id: &str, staging: &Path) -> io::Result<()>;
    /// A whole file of a block.
    fn read(&self, id: &str, file: &str) -> io::Result<Vec<u8>>;
    /// Part of a file of a block.
    fn read_range(&self, id: &str, file: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// A file of a block, open: reads through it keep working after the
    /// block is deleted (compaction replaces blocks while queries read them).
    fn open_file(&self, id: &str, file: &str) -> io::Result<Arc<dyn BlockFile>>;
    /// Total bytes of a block.
    fn size(&self, id: &str) -> io::Result<u64>;
    /// Deletes a block; deleting a missing block is not an error.
    fn delete(&self, id: &str) -> io::Result<()>;
    /// A local directory where a new block may be staged.
    fn staging_dir(&self, id: &str) -> io::Result<PathBuf>;
    /// The local directory holding a published block's files; not found
    /// for a block only in object storage.
    fn local_dir(&self, id: &str) -> io::Result<PathBuf>;
    /// A block as a tantivy directory (splits): mapped into memory from
    /// local disk, or read by ranges from object storage.
    fn directory(&self, id: &str) -> io::Result<Box<dyn tantivy::Directory>> {
        mmap_directory(&self.local_dir(id)?)
    }
    /// Blocks whose local copy was dropped since the last call (the copy was
    /// only a cache of a block in object storage): their readers should
    /// reopen them, so that the space is freed.
    fn take_evicted(&self) -> Vec<String> {
        Vec::new()
    }
    /// Published blocks not yet where they are durable beyond this machine
    /// (the object store's upload queue); always 0 for local disk.
    fn backlog(&self) -> usize {
        0
    }
}

/// A local block directory for tantivy, mapped into memory.
pub(crate) fn mmap_directory(dir: &Path) -> io::Result<Box<dyn tantivy::Directory>> {
    tantivy::directory::MmapDirectory::open(dir)
        .map(|d| Box::new(d) as Box<dyn tantivy::Directory>)
        .map_err(|e| io::Error::other(format!("{}: {e}", dir.display())))
}

/// Blocks as directories under `<data>/blocks/`.
#[derive(Debug)]
pub struct LocalBlockStore {
    dir: PathBuf,
    open_files: Mutex<HashMap<(String, String), Arc<File>>>,
}

const STAGING_PREFIX: &str = ".staging-";
const DELETING_PREFIX: &str = ".deleting-";

impl LocalBlockStore {
    /// Opens (creating) `dir`, clearing what a crash left half-done.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(STAGING_PREFIX) || name.starts_with(DELETING_PREFIX) {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            open_files: Mutex::new(HashMap::new()),
        })
    }

    fn file(&self, id: &str, file: &str) -> io::Result<Arc<File>> {
        let key = (id.to_owned(), file.to_owned());
        let mut open = self.open_files.lock().expect("open files lock");
        if let Some(f) = open.get(&key) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.dir.join(id).join(file))?);
        open.insert(key, f.clone());
        Ok(f)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl BlockStore for LocalBlockStore {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.file_type()?.is_dir() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn publish(&self, id: &str, staging: &Path) -> io::Result<()> {
        for entry in fs::read_dir(staging)? {
            File::open(entry?.path())?.sync_all()?;
        }
        sync_dir(staging)?;
        fs::rename(staging, self.dir.join(id))?;
        sync_dir(&self.dir)
    }

    fn read(&self, id: &str, file: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(id).join(file))
    }

    fn open_file(&self, id: &str, file: &str) -> io::Result<Arc<dyn BlockFile>> {
        let f = self.file(id, file)?;
        Ok(match MappedFile::map(&f) {
            Some(mapped) => Arc::new(mapped),
            None => f,
        })
    }

    fn read_range(&self, id: &str, file: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let f = self.file(id, file)?;
        let mut buf = vec![0; len];
        f.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn size(&self, id: &str) -> io::Result<u64> {
        let mut total = 0;
        for entry in fs::read_dir(self.dir.join(id))? {
            total += entry?.metadata()?.len();
        }
        Ok(total)
    }

    fn delete(&self, id: &str) -> io::Result<()> {
        self.open_files
            .lock()
            .expect("open files lock")
            .retain(|(block, _), _| block != id);
        let path = self.dir.join(id);
        if !path.exists() {
            return Ok(());
        }
        // Rename first so a crash mid-delete never leaves a half block visible.
        let doomed = self.dir.join(format!("{DELETING_PREFIX}{id}"));
        fs::rename(&path, &doomed)?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(doomed)
    }

    fn local_dir(&self, id: &str) -> io::Result<PathBuf> {
        let path = self.dir.join(id);
        if path.is_dir() {
            Ok(path)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no block {id} in {}", self.dir.display()),
            ))
        }
    }

    fn staging_dir(&self, id: &str) -> io::Result<PathBuf> {
        let path = self.dir.join(format!("{STAGING_PREFIX}{id}"));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::create_dir_all(&path)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_block_file_reads_what_the_file_holds_and_refuses_past_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlockStore::open(dir.path()).unwrap();
        let staging = store.staging_dir("b1").unwrap();
        fs::create_dir_all(&staging).unwrap();
        let bytes: Vec<u8> = (0..=255).collect();
        fs::write(staging.join("chunks"), &bytes).unwrap();
        fs::write(staging.join("empty"), b"").unwrap();
        store.publish("b1", &staging).unwrap();
        let chunks = store.open_file("b1", "chunks").unwrap();
        assert_eq!(chunks.read_at(10, 5).unwrap(), &bytes[10..15]);
        assert_eq!(chunks.read_at(0, 256).unwrap(), bytes);
        for (offset, len) in [(250, 7), (256, 1), (u64::MAX, 1), (1, usize::MAX)] {
            let err = chunks.read_at(offset, len).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{offset} {len}");
        }
        // Deleting the block (compaction) leaves an open file readable.
        store.delete("b1").unwrap();
        assert_eq!(chunks.read_at(100, 2).unwrap(), &bytes[100..102]);
        // An empty file cannot be mapped; it is read as a file.
        let store = LocalBlockStore::open(dir.path()).unwrap();
        let staging = store.staging_dir("b2").unwrap();
        fs::create_dir_all(&staging).unwrap();
        fs::write(staging.join("empty"), b"").unwrap();
        store.publish("b2", &staging).unwrap();
        let empty = store.open_file("b2", "empty").unwrap();
        assert_eq!(empty.read_at(0, 0).unwrap(), Vec::<u8>::new());
        assert!(empty.read_at(0, 1).is_err());
    }
}
