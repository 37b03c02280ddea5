//! Small named documents that must survive a crash whole: alert states,
//! silences, the notification outbox. Each is written to a temporary file,
//! fsynced, renamed over the old one and its directory fsynced, so a reader
//! after `kill -9` finds the old version or the new one, never half of one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A directory of named documents; names are `a-z A-Z 0-9 . _ -` with `/`
/// between levels.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

fn invalid(name: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{name:?} is not a valid state name"),
    )
}

impl StateDir {
    /// Opens (creating) `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, name: &str) -> std::io::Result<PathBuf> {
        let ok = !name.is_empty()
            && name.split('/').all(|part| {
                !part.is_empty()
                    && !part.starts_with('.')
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if ok {
            Ok(self.dir.join(name))
        } else {
            Err(invalid(name))
        }
    }

    /// Replaces the document `name` with `bytes`, durably.
    pub fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(name)?;
        let parent = path.parent().unwrap_or(&self.dir).to_owned();
        std::fs::create_dir_all(&parent)?;
        let staging = parent.join(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
        ));
        let mut file = std::fs::File::create(&staging)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&staging, &path)?;
        std::fs::File::open(&parent)?.sync_all()
    }

    /// The document `name`, if there is one.
    pub fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(name)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the document `name` (nothing when there is none).
    pub fn delete(&self, name: &str) -> std::io::Result<()> {
        let path = self.path(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => std::fs::File::open(path.parent().unwrap_or(&self.dir))?.sync_all(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The names under the level `prefix` (which ends with `/`, or is empty), sorted.
    pub fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let dir = match prefix.strip_suffix('/') {
            Some(level) => self.path(level)?,
            None if prefix.is_empty() => self.dir.clone(),
            None => return Err(invalid(prefix)),
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.file_type()?.is_file() {
                names.push(format!("{prefix}{name}"));
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_replaced_whole_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        state.put("state.json", b"{\"a\":1}").unwrap();
        state.put("state.json", b"{\"a\":2}").unwrap();
        state.put("outbox/1-0", b"one").unwrap();
        state.put("outbox/1-1", b"two").unwrap();
        assert_eq!(state.get("state.json").unwrap().unwrap(), b"{\"a\":2}");
        assert_eq!(state.list("outbox/").unwrap(), ["outbox/1-0", "outbox/1-1"]);
        state.delete("outbox/1-0").unwrap();
        state.delete("outbox/1-0").unwrap();
        assert_eq!(state.list("outbox/").unwrap(), ["outbox/1-1"]);
        assert_eq!(state.get("missing").unwrap(), None);
        assert_eq!(state.list("nothing/").unwrap(), Vec::<String>::new());
        for bad in ["../escape", "/abs", "a//b", ".hidden", ""] {
            assert!(state.put(bad, b"x").is_err(), "{bad}");
        }
    }
}
