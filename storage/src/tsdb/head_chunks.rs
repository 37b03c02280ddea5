//! Sealed head chunks on disk, out of the heap, as Prometheus keeps its
//! `chunks_head`: a series keeps only where each sealed chunk is.
//!
//! Chunks go into segment files under `<metrics>/chunks_head/`, appended in
//! batches (one write for every chunk a batch of samples sealed), and are
//! read through a memory map of the segment: no copy, no system call, and
//! the pages are the kernel's to drop. A segment is deleted when the last
//! chunk in it is dropped: every chunk holds its segment.
//!
//! The files are a cache of what the WAL holds, not a second log: they are
//! not synced, and the ones a previous run left are deleted on open, since
//! the WAL replay seals its chunks again.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A segment holds at most this many bytes (chunk offsets are 32-bit).
const SEGMENT_BYTES: u64 = 256 << 20;

/// Chunks are copied into one buffer of about this size per write.
const WRITE_BYTES: usize = 4 << 20;

/// The bytes of a sealed chunk: in memory, or in a segment file.
#[derive(Debug, Clone)]
pub(crate) enum ChunkBytes {
    Mem(Box<[u8]>),
    File {
        segment: Arc<Segment>,
        offset: u32,
        len: u32,
    },
}

impl ChunkBytes {
    /// The bytes, read from the segment file when they are there.
    pub fn read(&self) -> io::Result<Cow<'_, [u8]>> {
        match self {
            Self::Mem(bytes) => Ok(Cow::Borrowed(bytes)),
            Self::File {
                segment,
                offset,
                len,
            } => segment
                .map
                .get(*offset as usize..*offset as usize + *len as usize)
                .map(Cow::Borrowed)
                .ok_or_else(|| io::Error::other("a head chunk past its segment's end")),
        }
    }

    /// The bytes when they are in memory (not yet written out).
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Self::Mem(bytes) => Some(bytes),
            Self::File { .. } => None,
        }
    }
}

/// One segment file, as long as what is written to it, mapped [`SEGMENT_BYTES`]
/// long from the start; deleted when the last chunk in it goes.
#[derive(Debug)]
pub(crate) struct Segment {
    file: File,
    map: memmap2::Mmap,
    path: PathBuf,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %err, "could not delete a head chunk segment");
        }
    }
}

/// The segment files sealed chunks are written to.
#[derive(Debug)]
pub(crate) struct ChunkFiles {
    dir: PathBuf,
    /// The segment written to, and how many bytes it holds.
    current: Option<(Arc<Segment>, u64)>,
    next_seq: u64,
}

impl ChunkFiles {
    /// Opens `dir`, deleting the segments a previous run left there.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            current: None,
            next_seq: 0,
        })
    }

    /// Writes `chunks` (in-memory bytes each) and returns where each went,
    /// in order. Nothing is returned for any of them when a write fails.
    pub fn write(&mut self, chunks: &[&[u8]]) -> io::Result<Vec<ChunkBytes>> {
        let mut placed = Vec::with_capacity(chunks.len());
        let mut buf = Vec::new();
        let mut i = 0;
        while i < chunks.len() {
            let (segment, start) = self.segment_with_room(chunks[i].len() as u64)?;
            // The run of chunks that fits in this segment and one write.
            buf.clear();
            let mut end = start;
            while i < chunks.len()
                && end + chunks[i].len() as u64 <= SEGMENT_BYTES
                && (buf.is_empty() || buf.len() + chunks[i].len() <= WRITE_BYTES)
            {
                let len = chunks[i].len() as u32;
                placed.push(ChunkBytes::File {
                    segment: segment.clone(),
                    offset: end as u32,
                    len,
                });
                buf.extend_from_slice(chunks[i]);
                end += u64::from(len);
                i += 1;
            }
            segment.file.write_all_at(&buf, start)?;
            self.current = Some((segment, end));
        }
        Ok(placed)
    }

    /// The current segment if `len` more bytes fit in it, else a new one.
    fn segment_with_room(&mut self, len: u64) -> io::Result<(Arc<Segment>, u64)> {
        if let Some((segment, used)) = &self.current
            && used + len <= SEGMENT_BYTES
        {
            return Ok((segment.clone(), *used));
        }
        if len > SEGMENT_BYTES {
            return Err(io::Error::other("a chunk larger than a head chunk segment"));
        }
        let path = self.dir.join(format!("{:08}", self.next_seq));
        self.next_seq += 1;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        // SAFETY: the file is this engine's own, created just now in its
        // data directory and never truncated while mapped. The map reaches
        // past the file's end, but a chunk is read only where it was
        // written (a chunk is placed after its write succeeded), so no read
        // passes the end, and nothing is written where a chunk was placed
        // (appends go past `current`). Like every file a process maps (as
        // the block index readers do through tantivy), it must not be
        // altered by anyone else while the server runs.
        #[allow(unsafe_code)]
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(SEGMENT_BYTES as usize)
                .map(&file)?
        };
        Ok((Arc::new(Segment { file, map, path }), 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn chunks_read_back_and_a_segment_goes_with_its_last_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunks_head");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("00000007"), b"left by a previous run").unwrap();
        let mut files = ChunkFiles::open(&path).unwrap();
        assert_eq!(files_in(&path), 0, "leftovers are deleted on open");
        let a = vec![1u8; 100];
        let b = vec![2u8; 7];
        let placed = files.write(&[&a, &b]).unwrap();
        assert_eq!(placed.len(), 2);
        assert_eq!(&*placed[0].read().unwrap(), &a[..]);
        assert_eq!(&*placed[1].read().unwrap(), &b[..]);
        assert!(placed[0].in_memory().is_none());
        let more = files.write(&[&b]).unwrap();
        assert_eq!(&*more[0].read().unwrap(), &b[..]);
        assert_eq!(files_in(&path), 1, "one segment holds all three");
        // Another segment once this one is full; the first goes with its chunks.
        files.current.as_mut().unwrap().1 = SEGMENT_BYTES - 3;
        let next = files.write(&[&a]).unwrap();
        assert_eq!(&*next[0].read().unwrap(), &a[..]);
        assert_eq!(files_in(&path), 2);
        drop(placed);
        assert_eq!(files_in(&path), 2, "a chunk in the first is still held");
        drop(more);
        assert_eq!(
            files_in(&path),
            1,
            "the first segment goes with its last chunk"
        );
        drop(next);
        assert_eq!(
            files_in(&path),
            1,
            "the current segment stays while written to"
        );
        drop(files);
        assert_eq!(files_in(&path), 0);
    }
}
