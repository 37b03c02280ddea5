//! The engine's write-ahead log: one file of CRC-framed records, each with
//! the sequence number the engine gave it. An append is one write; the file
//! is emptied once every record in it is committed to the indexes.
//!
//! Frame: `len: u32 LE | crc32(seq ++ payload): u32 LE | seq: u64 LE | payload`.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub(crate) fn io_err(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("{context} {}", path.display());
    move |source| Error::Io { context, source }
}

#[derive(Debug)]
pub(crate) struct Wal {
    path: PathBuf,
    file: File,
    /// Records written since the file was last emptied.
    pub(crate) pending: usize,
}

/// A record's sequence number and its bytes.
pub(crate) type Frame = (u64, Vec<u8>);

/// Appends one frame to `out`.
pub(crate) fn frame(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

impl Wal {
    /// Opens (creating) the file and returns its whole frames; a torn tail
    /// (a write cut short by a crash, never acknowledged) is cut off.
    pub(crate) fn open(path: &Path) -> Result<(Self, Vec<Frame>)> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_err("open", path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err("read", path))?;
        let (frames, valid) = decode(&bytes);
        if valid < bytes.len() {
            file.set_len(valid as u64)
                .map_err(io_err("truncate", path))?;
        }
        let pending = frames.len();
        Ok((
            Self {
                path: path.to_owned(),
                file,
                pending,
            },
            frames,
        ))
    }

    /// Writes `frames` (built with [`frame`]) in one write.
    pub(crate) fn write(&mut self, frames: &[u8], records: usize) -> Result<()> {
        let before = self
            .file
            .metadata()
            .map_err(io_err("stat", &self.path))?
            .len();
        if let Err(err) = self.file.write_all(frames) {
            // A write cut short (a full disk) must not leave half a frame for
            // the next one to follow: reading stops at the first bad frame.
            let _ = self.file.set_len(before);
            return Err(io_err("write", &self.path)(err));
        }
        self.pending += records;
        Ok(())
    }

    /// Empties the file: everything in it is committed elsewhere.
    pub(crate) fn clear(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .map_err(io_err("truncate", &self.path))?;
        self.file.sync_all().map_err(io_err("fsync", &self.path))?;
        self.pending = 0;
        Ok(())
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(io_err("fsync", &self.path))
    }
}

/// Reads a WAL file without changing it: its whole frames and how many
/// bytes follow them (a torn tail).
pub(crate) fn read(path: &Path) -> Result<(Vec<Frame>, usize)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let (frames, valid) = decode(&bytes);
    Ok((frames, bytes.len() - valid))
}

/// The frames of a WAL and the length of its valid prefix.
fn decode(bytes: &[u8]) -> (Vec<Frame>, usize) {
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 16 <= bytes.len() {
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let len = word(at) as usize;
        let crc = word(at + 4);
        let Some(body) = bytes.get(at + 8..at + 16 + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let seq = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
        frames.push((seq, body[8..].to_vec()));
        at += 16 + len;
    }
    (frames, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        {
            let (mut wal, frames) = Wal::open(&path).unwrap();
            assert!(frames.is_empty());
            let mut out = Vec::new();
            frame(7, b"first", &mut out);
            frame(8, b"", &mut out);
            wal.write(&out, 2).unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(&[3, 0, 0, 0, 1, 2, 3]);
        std::fs::write(&path, &bytes).unwrap();
        let (wal, frames) = Wal::open(&path).unwrap();
        assert_eq!(frames, [(7, b"first".to_vec()), (8, Vec::new())]);
        assert_eq!(wal.pending, 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, whole);
        // A flipped bit ends the valid prefix there.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[17] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (_, frames) = Wal::open(&path).unwrap();
        assert!(frames.is_empty());
    }
}
