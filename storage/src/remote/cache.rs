//! The local cache of what queries read from the bucket.
//!
//! One budget (`storage.object_store.cache_size`, bytes) covers two kinds
//! of entries, least recently used first out:
//!
//! - **pages** of block and split files fetched by range GETs (256 KiB
//!   each), kept as files in `cache_dir` so that they outlive a restart, with
//!   the hottest also in memory;
//! - **local copies** of blocks and splits already in the bucket: a block is
//!   published on local disk and uploaded, and from then on its local copy is
//!   only a cache. When the budget is exceeded the copy is marked evicted;
//!   its store deletes it at the next maintenance, and the engine reopens the
//!   block from the bucket (see `ObjectBlockStore::take_evicted`).
//!
//! Blocks are immutable and their ids never reused, so a cached page is
//! never stale; a page file that cannot be read is a miss.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::warn;

use super::RemoteStats;

/// A page of a file: the object's path and the page number.
pub(crate) type PageKey = (Arc<str>, u64);

/// What the budget holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Entry {
    /// A page file in the cache directory, by its file name.
    Page(String),
    /// The local copy of block `id` of `kind`, already in the bucket.
    Local { kind: String, id: String },
}

#[derive(Debug, Default)]
struct Inner {
    /// Entry -> bytes and last use.
    entries: HashMap<Entry, (u64, u64)>,
    /// Last use -> entry.
    order: BTreeMap<u64, Entry>,
    tick: u64,
    bytes: u64,
    /// Local copies the budget pushed out, by kind: their stores delete them.
    evicted: HashMap<String, Vec<String>>,
}

impl Inner {
    fn touch(&mut self, entry: &Entry) -> bool {
        self.tick += 1;
        let tick = self.tick;
        let Some((_, used)) = self.entries.get_mut(entry) else {
            return false;
        };
        let old = std::mem::replace(used, tick);
        self.order.remove(&old);
        self.order.insert(tick, entry.clone());
        true
    }

    fn insert(&mut self, entry: Entry, bytes: u64) {
        self.remove(&entry);
        self.tick += 1;
        self.entries.insert(entry.clone(), (bytes, self.tick));
        self.order.insert(self.tick, entry);
        self.bytes += bytes;
    }

    fn remove(&mut self, entry: &Entry) -> bool {
        match self.entries.remove(entry) {
            Some((bytes, tick)) => {
                self.order.remove(&tick);
                self.bytes -= bytes;
                true
            }
            None => false,
        }
    }

    /// Pushes out the least recently used entries until the budget holds;
    /// returns the page files to delete.
    fn evict(&mut self, capacity: u64) -> Vec<String> {
        let mut doomed = Vec::new();
        while self.bytes > capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((bytes, _)) = self.entries.remove(&oldest) {
                self.bytes -= bytes;
            }
            match oldest {
                Entry::Page(name) => doomed.push(name),
                Entry::Local { kind, id } => self.evicted.entry(kind).or_default().push(id),
            }
        }
        doomed
    }
}

/// The cache: pages on disk (and the hottest in memory) and the accounting
/// of local copies, under one budget.
#[derive(Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
    capacity: u64,
    memory: MemoryPages,
    inner: Mutex<Inner>,
    /// Names temporary files apart.
    next_tmp: AtomicU64,
    /// `cache_bytes` and `cache_evictions` for `/metrics`.
    stats: Arc<RemoteStats>,
}

const TMP_PREFIX: &str = ".tmp-";

/// A file name for a page of the object at `path`: `%` and `/` escaped, so
/// two objects never share a name.
fn page_file(path: &str, page: u64) -> String {
    let mut name = String::with_capacity(path.len() + 12);
    for c in path.chars() {
        match c {
            '%' => name.push_str("%25"),
            '/' => name.push_str("%2F"),
            c => name.push(c),
        }
    }
    name.push('.');
    name.push_str(&page.to_string());
    name
}

impl Cache {
    /// Opens (creating) the cache in `dir`, keeping the pages a previous run
    /// left there (oldest first out).
    pub(crate) fn open(dir: &Path, capacity: u64, stats: Arc<RemoteStats>) -> io::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("storage.object_store.cache_dir {}: {e}", dir.display()),
            )
        })?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let meta = entry.metadata()?;
            if meta.is_file() {
                found.push((meta.modified().ok(), name, meta.len()));
            }
        }
        found.sort();
        let mut inner = Inner::default();
        for (_, name, len) in found {
            inner.insert(Entry::Page(name), len);
        }
        let cache = Self {
            dir: dir.to_owned(),
            capacity,
            // The hottest pages skip the file system: a quarter of the
            // budget, at most 64 MiB of memory.
            memory: MemoryPages::new((capacity / 4).min(64 << 20)),
            inner: Mutex::new(inner),
            next_tmp: AtomicU64::new(0),
            stats,
        };
        cache.settle();
        Ok(cache)
    }

    /// Evicts down to the budget and updates the gauge.
    fn settle(&self) {
        let (doomed, bytes, evictions) = {
            let mut inner = self.inner.lock().expect("cache lock");
            let before = inner.entries.len();
            let doomed = inner.evict(self.capacity);
            (doomed, inner.bytes, before - inner.entries.len())
        };
        for name in doomed {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        self.stats.cache_bytes.store(bytes, Ordering::Relaxed);
        self.stats
            .cache_evictions
            .fetch_add(evictions as u64, Ordering::Relaxed);
    }

    /// A cached page.
    pub(crate) fn get(&self, key: &PageKey) -> Option<Arc<Vec<u8>>> {
        if let Some(page) = self.memory.get(key) {
            return Some(page);
        }
        let entry = Entry::Page(page_file(&key.0, key.1));
        if !self.inner.lock().expect("cache lock").touch(&entry) {
            return None;
        }
        let Entry::Page(name) = &entry else {
            unreachable!("a page entry")
        };
        match std::fs::read(self.dir.join(name)) {
            Ok(bytes) => {
                let page = Arc::new(bytes);
                self.memory.put(key.clone(), page.clone());
                Some(page)
            }
            Err(_) => {
                self.inner.lock().expect("cache lock").remove(&entry);
                None
            }
        }
    }

    /// Whether a page is cached (without reading it).
    pub(crate) fn contains(&self, key: &PageKey) -> bool {
        self.memory.contains(key)
            || self
                .inner
                .lock()
                .expect("cache lock")
                .entries
                .contains_key(&Entry::Page(page_file(&key.0, key.1)))
    }

    /// Keeps a fetched page. A page that cannot be written (a full disk)
    /// is only kept in memory.
    pub(crate) fn put(&self, key: PageKey, page: Arc<Vec<u8>>) {
        let name = page_file(&key.0, key.1);
        let len = page.len() as u64;
        self.memory.put(key, page.clone());
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{}",
            self.next_tmp.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::write(&tmp, page.as_slice())
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(&name)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            warn!(dir = %self.dir.display(), error = %e, "cannot write to the object store cache");
            return;
        }
        self.inner
            .lock()
            .expect("cache lock")
            .insert(Entry::Page(name), len);
        self.settle();
    }

    /// Counts the local copy of block `id` of `kind` (in the bucket now)
    /// against the budget.
    pub(crate) fn add_local(&self, kind: &str, id: &str, bytes: u64) {
        self.inner.lock().expect("cache lock").insert(
            Entry::Local {
                kind: kind.to_owned(),
                id: id.to_owned(),
            },
            bytes,
        );
        self.settle();
    }

    /// Stops counting the local copy of block `id` (deleted).
    pub(crate) fn remove_local(&self, kind: &str, id: &str) {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.remove(&Entry::Local {
            kind: kind.to_owned(),
            id: id.to_owned(),
        });
        if let Some(ids) = inner.evicted.get_mut(kind) {
            ids.retain(|e| e != id);
        }
        self.stats.cache_bytes.store(inner.bytes, Ordering::Relaxed);
    }

    /// Bytes held: pages and local copies.
    #[cfg(test)]
    fn held(&self) -> u64 {
        self.inner.lock().expect("cache lock").bytes
    }

    /// Local copies of `kind` the budget pushed out since the last call.
    pub(crate) fn take_evicted(&self, kind: &str) -> Vec<String> {
        self.inner
            .lock()
            .expect("cache lock")
            .evicted
            .remove(kind)
            .unwrap_or_default()
    }
}

/// The hottest pages in memory, least recently used first out, bounded by
/// bytes.
#[derive(Debug)]
struct MemoryPages {
    capacity: u64,
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    pages: HashMap<PageKey, (Arc<Vec<u8>>, u64)>,
    order: BTreeMap<u64, PageKey>,
    tick: u64,
    bytes: u64,
}

impl MemoryPages {
    fn new(capacity: u64) -> Self {
        Self {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn contains(&self, key: &PageKey) -> bool {
        self.inner
            .lock()
            .expect("cache lock")
            .pages
            .contains_key(key)
    }

    fn get(&self, key: &PageKey) -> Option<Arc<Vec<u8>>> {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.tick += 1;
        let tick = inner.tick;
        let (page, used) = inner.pages.get_mut(key)?;
        let (page, old) = (page.clone(), std::mem::replace(used, tick));
        inner.order.remove(&old);
        inner.order.insert(tick, key.clone());
        Some(page)
    }

    fn put(&self, key: PageKey, page: Arc<Vec<u8>>) {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.tick += 1;
        let tick = inner.tick;
        inner.bytes += page.len() as u64;
        if let Some((old_page, old_tick)) = inner.pages.insert(key.clone(), (page, tick)) {
            inner.bytes -= old_page.len() as u64;
            inner.order.remove(&old_tick);
        }
        inner.order.insert(tick, key);
        while inner.bytes > self.capacity {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some((page, _)) = inner.pages.remove(&oldest) {
                inner.bytes -= page.len() as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str, page: u64) -> PageKey {
        (Arc::from(path), page)
    }

    #[test]
    fn pages_outlive_a_restart_and_the_budget_holds() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 10, Arc::default()).unwrap();
        cache.put(key("team/metrics/b1/chunks", 0), Arc::new(vec![1; 4]));
        cache.put(key("team/metrics/b1/chunks", 1), Arc::new(vec![2; 4]));
        assert_eq!(
            *cache.get(&key("team/metrics/b1/chunks", 0)).unwrap(),
            [1; 4]
        );
        // Over budget: the least recently used page (page 1) goes.
        cache.put(key("team/metrics/b2/chunks", 0), Arc::new(vec![3; 4]));
        assert_eq!(cache.held(), 8);
        drop(cache);
        let cache = Cache::open(dir.path(), 10, Arc::default()).unwrap();
        assert_eq!(
            *cache.get(&key("team/metrics/b1/chunks", 0)).unwrap(),
            [1; 4]
        );
        assert_eq!(
            *cache.get(&key("team/metrics/b2/chunks", 0)).unwrap(),
            [3; 4]
        );
        assert!(cache.get(&key("team/metrics/b1/chunks", 1)).is_none());
    }

    #[test]
    fn local_copies_share_the_budget_and_are_handed_back_when_pushed_out() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 100, Arc::default()).unwrap();
        cache.add_local("metrics", "b1", 60);
        cache.add_local("logs", "s1", 30);
        assert!(cache.take_evicted("metrics").is_empty());
        cache.put(key("p", 0), Arc::new(vec![0; 20]));
        assert_eq!(cache.take_evicted("metrics"), ["b1"]);
        assert!(cache.take_evicted("metrics").is_empty());
        cache.remove_local("logs", "s1");
        assert_eq!(cache.held(), 20);
        assert!(cache.take_evicted("logs").is_empty());
    }

    #[test]
    fn page_names_do_not_collide() {
        assert_ne!(page_file("a/b", 0), page_file("a%2Fb", 0));
        assert_ne!(page_file("a.1", 0), page_file("a", 10));
    }
}
