//! Sealed blocks in S3-compatible object storage.
//!
//! [`ObjectBlockStore`] is a [`BlockStore`] over a local one: a block is
//! published on local disk first (so nothing waits on the network and a
//! crash loses nothing the WAL gave up), then uploaded by a background
//! thread, file by file under `<prefix>/<kind>/<id>/`, and made visible by
//! a manifest `<prefix>/<kind>/<id>.json` written last with a conditional
//! put: a block without its manifest is never listed, so a half upload is
//! never seen. Deleting removes the manifest first, and the files after a
//! grace, so a query that opened the block still reads it. Uploads and deletes run
//! in order from one queue, so a compacted block is in the bucket before its
//! parents leave it. While the store is down the queue waits and retries
//! with backoff; ingest and queries over local blocks go on.
//!
//! At open, the bucket's manifests join the local blocks: a node whose disk
//! was lost finds its history again, and local blocks without a manifest
//! (a crash between publish and upload) are queued again. Once uploaded, a
//! block's local copy is only cache. A block not on local disk is read from
//! the bucket by 256 KiB pages (`RemoteFile`): the pages a read needs that
//! the cache lacks are fetched together, and a query prefetches all the
//! chunks it will decode at once; a split is a read-only tantivy directory
//! over such files (`directory`). `cache` holds the pages and the
//! accounting of local copies under one budget. A read the store cannot
//! answer is a [`RemoteUnavailable`] error, which the server answers with
//! 503 naming the store.
//!
//! This room talks to the store through the `object_store` crate's async
//! API from synchronous code: every call is spawned on a private runtime and
//! awaited through a channel, which works from any thread.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, RetryConfig,
};
use tracing::{info, warn};

use crate::block_store::{BlockFile as _, BlockStore, LocalBlockStore};

mod cache;
mod directory;

/// Where the bucket is and how to reach it (`storage.object_store`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// `s3://bucket/prefix`.
    pub url: String,
    /// An S3-compatible endpoint (MinIO, SeaweedFS, Ceph RGW); AWS when empty.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Both empty: the usual `AWS_*` environment variables.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Bytes of local cache (LRU): pages fetched from the bucket and the
    /// local copies of blocks already uploaded; 1 GiB when unset.
    #[serde(default)]
    pub cache_size: Option<u64>,
    /// Where fetched pages are kept; `<data-dir>/cache` when unset.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

/// The cache budget when `cache_size` is unset.
pub const DEFAULT_CACHE_SIZE: u64 = 1 << 30;

/// The error of a store that could not be reached or answered otherwise
/// than "not found": the server answers 503 naming the store.
#[derive(Debug)]
pub struct RemoteUnavailable(pub String);

impl std::fmt::Display for RemoteUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RemoteUnavailable {}

/// How a [`RemoteUnavailable`] message begins.
pub const UNAVAILABLE: &str = "the object store is unavailable";

/// Whether `err` (or what it wraps) is a [`RemoteUnavailable`].
pub fn is_unavailable(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<RemoteUnavailable>())
}

/// Counters for `/metrics` (`sextant_object_store_*`).
#[derive(Debug, Default)]
pub struct RemoteStats {
    pub uploads: AtomicU64,
    pub uploaded_bytes: AtomicU64,
    pub upload_failures: AtomicU64,
    pub downloads: AtomicU64,
    /// Pages of block files fetched from the store for queries (cache
    /// misses; hits are not counted).
    pub range_reads: AtomicU64,
    pub downloaded_bytes: AtomicU64,
    pub deletes: AtomicU64,
    /// Blocks published locally and not yet in the bucket.
    pub backlog: AtomicU64,
    /// Bytes the local cache holds: fetched pages and local copies of
    /// uploaded blocks.
    pub cache_bytes: AtomicU64,
    /// Cache entries pushed out by the budget.
    pub cache_evictions: AtomicU64,
}

/// A connection to one bucket and prefix.
pub struct RemoteStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The runtime every request runs on, whatever thread asks (taken only
    /// by `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    /// What errors name: the URL and endpoint.
    name: String,
    pub stats: Arc<RemoteStats>,
    /// Pages fetched for queries and the local copies of uploaded blocks.
    cache: cache::Cache,
}

impl Drop for RemoteStore {
    fn drop(&mut self) {
        // The last owner may be an async task: a runtime may not be dropped
        // (which blocks) there, but it may be shut down in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn io_error(what: impl std::fmt::Display, err: object_store::Error) -> io::Error {
    let kind = match err {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::ErrorKind::AlreadyExists
        }
        _ => {
            return io::Error::other(RemoteUnavailable(format!("{UNAVAILABLE}: {what}: {err}")));
        }
    };
    io::Error::new(kind, format!("{what}: {err}"))
}

impl RemoteStore {
    /// Connects and lists the prefix once, so that an unreachable endpoint,
    /// wrong credentials or a missing bucket stop the start with a message
    /// that says which.
    pub fn connect(config: &ObjectStoreConfig, default_cache_dir: &FsPath) -> io::Result<Self> {
        // reqwest builds its TLS config even for http:// endpoints; ring is
        // the one provider in the build.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rest = config.url.strip_prefix("s3://").ok_or_else(|| {
            io::Error::other(format!(
                "storage.object_store.url {:?} must be s3://bucket/prefix",
                config.url
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(io::Error::other(format!(
                "storage.object_store.url {:?} names no bucket",
                config.url
            )));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(config.region.clone().unwrap_or_else(|| "us-east-1".into()))
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_timeout(Duration::from_secs(60)),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let name = match &config.endpoint {
            Some(endpoint) => format!("{} at {endpoint}", config.url),
            None => config.url.clone(),
        };
        let store = builder
            .build()
            .map_err(|e| io::Error::other(format!("object store {name}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("object-store")
            .enable_all()
            .build()?;
        let stats = Arc::new(RemoteStats::default());
        let cache = cache::Cache::open(
            config.cache_dir.as_deref().unwrap_or(default_cache_dir),
            config.cache_size.unwrap_or(DEFAULT_CACHE_SIZE),
            stats.clone(),
        )?;
        let remote = Self {
            store: Arc::new(store),
            prefix: Path::from(prefix.trim_matches('/')),
            runtime: Some(runtime),
            name,
            stats,
            cache,
        };
        remote.check_reachable()?;
        info!(store = %remote.name, "object store reached");
        Ok(remote)
    }

    /// Lists the prefix: the start-up check.
    fn check_reachable(&self) -> io::Result<()> {
        let store = self.store.clone();
        let prefix = self.prefix.clone();
        self.run(async move { store.list_with_delimiter(Some(&prefix)).await })
            .map(drop)
            .map_err(|e| {
                // A list's errors reach us as generic S3 errors: the status
                // and S3's error code tell which.
                let text = e.to_string();
                let says = |codes: &[&str]| codes.iter().any(|c| text.contains(c));
                let why = match &e {
                    object_store::Error::NotFound { .. } => "the bucket does not exist",
                    object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. } => "the credentials were refused",
                    _ if says(&["NoSuchBucket", "404 Not Found"]) => "the bucket does not exist",
                    _ if says(&[
                        "SignatureDoesNotMatch",
                        "InvalidAccessKeyId",
                        "AccessDenied",
                        "403 Forbidden",
                    ]) =>
                    {
                        "the credentials were refused"
                    }
                    _ => "it cannot be reached",
                };
                io::Error::other(format!("object store {}: {why}: {e}", self.name))
            })
    }

    /// Runs `future` on the store's runtime and waits for it.
    fn run<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .spawn(async move {
                let _ = tx.send(future.await);
            });
        rx.recv()
            .expect("the object store runtime dropped a request")
    }

    fn path(&self, parts: &[&str]) -> Path {
        let mut path = self.prefix.clone();
        // A part may hold several segments (`metrics/p3`, a cluster
        // partition's blocks).
        for part in parts {
            for segment in part.split('/') {
                path = path.join(segment);
            }
        }
        path
    }

    fn put(&self, path: Path, bytes: Vec<u8>, mode: PutMode) -> io::Result<()> {
        let store = self.store.clone();
        let what = format!("upload {path} to {}", self.name);
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.run(async move {
            store
                .put_opts(&path, PutPayload::from(bytes), options)
                .await
        })
        .map(drop)
        .map_err(|e| io_error(what, e))
    }

    /// Uploads a local file: whole when small, in parts when large, so a
    /// split of gigabytes never sits in memory (an unfinished multipart
    /// upload is invisible, like a missing manifest).
    fn put_file(&self, path: Path, file: &FsPath) -> io::Result<u64> {
        const PART: usize = 16 << 20;
        let size = std::fs::metadata(file)?.len();
        if size <= PART as u64 {
            return self
                .put(path, std::fs::read(file)?, PutMode::Overwrite)
                .map(|()| size);
        }
        let store = self.store.clone();
        let what = format!("upload {path} to {}", self.name);
        let file = file.to_owned();
        self.run(async move {
            let upload = store
                .put_multipart(&path)
                .await
                .map_err(|e| io_error(&what, e))?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
            let mut source = std::fs::File::open(&file)?;
            let mut buffer = vec![0; PART];
            loop {
                let n = read_full(&mut source, &mut buffer)?;
                if n == 0 {
                    break;
                }
                writer
                    .wait_for_capacity(4)
                    .await
                    .map_err(|e| io_error(&what, e))?;
                writer.write(&buffer[..n]);
            }
            writer.finish().await.map_err(|e| io_error(&what, e))?;
            Ok(size)
        })
    }

    fn get(&self, path: Path) -> io::Result<Vec<u8>> {
        let store = self.store.clone();
        let what = format!("download {path} from {}", self.name);
        self.run(async move { store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| io_error(what, e))
    }

    /// Several ranges of one object at once (the crate merges close ones
    /// and fetches the rest in parallel): one round trip, not one each.
    fn get_ranges(
        &self,
        path: Path,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> io::Result<Vec<bytes::Bytes>> {
        let store = self.store.clone();
        let what = format!("read {} ranges of {path} from {}", ranges.len(), self.name);
        self.run(async move { store.get_ranges(&path, &ranges).await })
            .map_err(|e| io_error(what, e))
    }

    fn delete(&self, path: Path) -> io::Result<()> {
        let store = self.store.clone();
        let what = format!("delete {path} from {}", self.name);
        match self.run(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(what, e)),
        }
    }

    /// Keys under `parts`, relative to it, sorted (S3-compatible stores do
    /// not all list in byte order).
    fn list(&self, parts: &[&str]) -> io::Result<Vec<String>> {
        Ok(self
            .list_sized(parts)?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }
}

/// Reads are of whole pages, so a chunk's length prefix and the chunk
/// after it (two reads) are one request, and neighbours come along.
const PAGE: u64 = 256 * 1024;

/// A block file in the bucket, read by ranges through the cache.
#[derive(Debug)]
pub(crate) struct RemoteFile {
    remote: Arc<RemoteStore>,
    path: Path,
    /// The cache's name for this file.
    key: Arc<str>,
    len: u64,
}

impl RemoteFile {
    /// Fetches `pages` together (in one round trip) into the cache.
    fn fetch(&self, pages: &[u64]) -> io::Result<Vec<Arc<Vec<u8>>>> {
        let ranges = pages
            .iter()
            .map(|page| page * PAGE..((page + 1) * PAGE).min(self.len))
            .collect();
        let fetched = self.remote.get_ranges(self.path.clone(), ranges)?;
        let stats = &self.remote.stats;
        Ok(pages
            .iter()
            .zip(fetched)
            .map(|(page, bytes)| {
                stats.range_reads.fetch_add(1, Ordering::Relaxed);
                stats
                    .downloaded_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let bytes = Arc::new(bytes.to_vec());
                self.remote
                    .cache
                    .put((self.key.clone(), *page), bytes.clone());
                bytes
            })
            .collect())
    }

    /// Pages `first..=last` of the file: from the cache, the missing ones
    /// fetched together.
    fn pages(&self, first: u64, last: u64) -> io::Result<Vec<Arc<Vec<u8>>>> {
        let mut pages: Vec<Option<Arc<Vec<u8>>>> = (first..=last)
            .map(|page| self.remote.cache.get(&(self.key.clone(), page)))
            .collect();
        let missing: Vec<u64> = (first..=last)
            .zip(&pages)
            .filter(|(_, cached)| cached.is_none())
            .map(|(page, _)| page)
            .collect();
        if !missing.is_empty() {
            for (page, bytes) in missing.iter().zip(self.fetch(&missing)?) {
                pages[(page - first) as usize] = Some(bytes);
            }
        }
        Ok(pages.into_iter().flatten().collect())
    }
}

impl crate::block_store::BlockFile for RemoteFile {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = offset + len as u64;
        if end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: read past the end", self.path),
            ));
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let (first, last) = (offset / PAGE, (end - 1) / PAGE);
        let pages = self.pages(first, last)?;
        let mut out = Vec::with_capacity(len);
        for (page, bytes) in (first..=last).zip(&pages) {
            let start = page * PAGE;
            let from = offset.saturating_sub(start) as usize;
            let to = ((end - start) as usize).min(bytes.len());
            out.extend_from_slice(&bytes[from..to]);
        }
        Ok(out)
    }

    fn prefetch(&self, ranges: &[(u64, u64)]) -> io::Result<()> {
        let mut wanted: Vec<u64> = ranges
            .iter()
            .filter(|(from, to)| from < to && *from < self.len)
            .flat_map(|&(from, to)| from / PAGE..=(to.min(self.len) - 1) / PAGE)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let missing: Vec<u64> = wanted
            .into_iter()
            .filter(|page| !self.remote.cache.contains(&(self.key.clone(), *page)))
            .collect();
        if !missing.is_empty() {
            self.fetch(&missing)?;
        }
        Ok(())
    }
}

/// Reads until `buffer` is full or the file ends.
fn read_full(file: &mut std::fs::File, buffer: &mut [u8]) -> io::Result<usize> {
    use std::io::Read as _;
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

impl RemoteStore {
    /// A store in memory, for the crate's tests.
    #[cfg(test)]
    pub(crate) fn in_memory(cache_dir: &FsPath, cache_size: u64) -> Self {
        let stats = Arc::new(RemoteStats::default());
        Self {
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: Path::from("team"),
            runtime: Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("a runtime"),
            ),
            name: "memory".into(),
            cache: cache::Cache::open(cache_dir, cache_size, stats.clone()).expect("a cache"),
            stats,
        }
    }
}

impl RemoteStore {
    /// Keys under `parts` with their sizes, relative and sorted.
    fn list_sized(&self, parts: &[&str]) -> io::Result<Vec<(String, u64)>> {
        let store = self.store.clone();
        let base = self.path(parts);
        let what = format!("list {base} in {}", self.name);
        let listed = {
            let base = base.clone();
            self.run(async move {
                store
                    .list(Some(&base))
                    .map_ok(|meta| (meta.location, meta.size))
                    .try_collect::<Vec<_>>()
                    .await
            })
        }
        .map_err(|e| io_error(what, e))?;
        let mut keys: Vec<(String, u64)> = listed
            .iter()
            .filter_map(|(p, size)| {
                let parts: Vec<String> = p
                    .prefix_match(&base)?
                    .map(|p| p.as_ref().to_owned())
                    .collect();
                Some((parts.join("/"), *size))
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// `sextant check-data` for the bucket: every manifest's files there at
    /// the sizes it names, every metric block downloaded and read back whole
    /// (as local blocks are checked), and files without a manifest noted (an
    /// upload a crash cut short; the next start uploads the block again).
    pub fn check_data(&self, report: &mut crate::CheckReport) {
        for kind in ["metrics", "logs", "traces"] {
            let keys = match self.list_sized(&[kind]) {
                Ok(keys) => keys,
                Err(e) => return report.problem(format!("{}: {e}", self.name)),
            };
            // A cluster's partitions keep theirs under `<kind>/p<N>/`.
            let is_partition = |dir: &str| {
                dir.strip_prefix('p')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            };
            let mut partitions: std::collections::BTreeMap<&str, Vec<(String, u64)>> =
                std::collections::BTreeMap::new();
            let mut own = Vec::new();
            for (key, size) in &keys {
                match key.split_once('/') {
                    Some((dir, rest)) if is_partition(dir) && rest.contains(['/', '.']) => {
                        partitions
                            .entry(dir)
                            .or_default()
                            .push((rest.to_owned(), *size));
                    }
                    _ => own.push((key.clone(), *size)),
                }
            }
            for (dir, keys) in partitions {
                self.check_kind(&format!("{kind}/{dir}"), &keys, report);
            }
            self.check_kind(kind, &own, report);
        }
    }

    /// The blocks of `kind` (`metrics`, `logs/p3`) given its keys.
    fn check_kind(&self, kind: &str, keys: &[(String, u64)], report: &mut crate::CheckReport) {
        let sizes: std::collections::HashMap<&str, u64> =
            keys.iter().map(|(k, s)| (k.as_str(), *s)).collect();
        let manifests: BTreeSet<&str> = keys
            .iter()
            .filter_map(|(k, _)| k.strip_suffix(".json"))
            .filter(|id| !id.contains('/'))
            .collect();
        for (key, _) in keys {
            if let Some((id, _)) = key.split_once('/')
                && !manifests.contains(id)
            {
                report.note(format!(
                    "{}/{kind}/{key}: no manifest (an upload cut short, retried at the next start; or a deleted block's files awaiting removal)",
                    self.prefix
                ));
            }
        }
        for id in manifests {
            let where_ = format!("{}/{kind}/{id}", self.prefix);
            match self.check_block(kind, id, &sizes) {
                Ok(line) => report.checked(format!("{where_}: {line}")),
                // A running server compacts and expires blocks while the
                // check reads the bucket: a block whose manifest is gone
                // since the listing was deleted, not damaged.
                Err(_)
                    if self
                        .get(self.path(&[kind, &format!("{id}.json")]))
                        .is_err_and(|e| e.kind() == io::ErrorKind::NotFound) =>
                {
                    report.note(format!(
                        "{where_}: deleted while the check ran (compacted or expired)"
                    ));
                }
                Err(e) => report.problem(format!("{where_}: {e}")),
            }
        }
    }

    fn check_block(
        &self,
        kind: &str,
        id: &str,
        sizes: &std::collections::HashMap<&str, u64>,
    ) -> Result<String, String> {
        let manifest: Manifest = serde_json::from_slice(
            &self
                .get(self.path(&[kind, &format!("{id}.json")]))
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("manifest is not JSON: {e}"))?;
        let mut total = 0;
        for (file, size) in &manifest.files {
            match sizes.get(format!("{id}/{file}").as_str()) {
                None => return Err(format!("{file} is missing")),
                Some(found) if found != size => {
                    return Err(format!("{file} is {found} bytes, the manifest says {size}"));
                }
                Some(_) => total += size,
            }
        }
        if !(kind == "metrics" || kind.starts_with("metrics/")) {
            return Ok(format!("{} files, {total} bytes", manifest.files.len()));
        }
        // A metric block is read back whole, from a scratch copy.
        let scratch =
            std::env::temp_dir().join(format!("sextant-check-{}-{id}", std::process::id()));
        let result = (|| {
            let local: Arc<dyn BlockStore> =
                Arc::new(LocalBlockStore::open(&scratch).map_err(|e| e.to_string())?);
            let staging = local.staging_dir(id).map_err(|e| e.to_string())?;
            for (file, _) in &manifest.files {
                let bytes = self
                    .get(self.path(&[kind, id, file]))
                    .map_err(|e| e.to_string())?;
                std::fs::write(staging.join(file), bytes).map_err(|e| e.to_string())?;
            }
            local.publish(id, &staging).map_err(|e| e.to_string())?;
            crate::check::check_block(&local, id)
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }
}

/// What a manifest says: the block's files and their sizes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Manifest {
    files: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    Upload(String),
    /// The manifest, in order with the uploads.
    Delete(String),
    /// The files, after the grace (from `Queue::doomed`).
    DeleteFiles(String),
}

#[derive(Debug, Default)]
struct Queue {
    tasks: VecDeque<Task>,
    /// Files of deleted blocks (their manifests gone) and when they go:
    /// a query that opened the block before its delete still reads them.
    doomed: Vec<(String, std::time::Instant)>,
    stopped: bool,
}

/// How long a deleted block's files stay in the bucket after its manifest
/// is gone: longer than any query may read it.
pub const FILE_GRACE: Duration = Duration::from_secs(300);

/// A [`BlockStore`] whose blocks also live in object storage.
#[derive(Debug)]
pub struct ObjectBlockStore {
    local: Arc<LocalBlockStore>,
    shared: Arc<Shared>,
    /// Manifests of blocks read from the bucket.
    manifests: Mutex<std::collections::HashMap<String, Arc<Manifest>>>,
}

#[derive(Debug)]
struct Shared {
    local: Arc<LocalBlockStore>,
    remote: Arc<RemoteStore>,
    /// `metrics`, `logs` or `traces`.
    kind: String,
    /// Blocks whose manifest is in the bucket.
    remote_ids: Mutex<BTreeSet<String>>,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// How long a deleted block's files outlive its manifest.
    grace: Duration,
}

impl ObjectBlockStore {
    /// Opens the local store in `dir` and joins it with the bucket's blocks
    /// of `kind`; starts the uploader.
    pub fn open(dir: &FsPath, remote: Arc<RemoteStore>, kind: &str) -> io::Result<Self> {
        Self::open_with_grace(dir, remote, kind, FILE_GRACE)
    }

    /// As [`ObjectBlockStore::open`], keeping a deleted block's files for
    /// `grace` after its manifest goes.
    pub fn open_with_grace(
        dir: &FsPath,
        remote: Arc<RemoteStore>,
        kind: &str,
        grace: Duration,
    ) -> io::Result<Self> {
        let local = Arc::new(LocalBlockStore::open(dir)?);
        let keys = remote.list(&[kind])?;
        let remote_ids: BTreeSet<String> = keys
            .iter()
            .filter_map(|key| key.strip_suffix(".json"))
            .filter(|id| !id.contains('/'))
            .map(str::to_owned)
            .collect();
        let local_ids: BTreeSet<String> = local.list()?.into_iter().collect();
        let mut queue = Queue::default();
        // Files without a manifest and without a local block: a delete whose
        // files a stop cut short. Nobody reads them now; they go at once.
        let orphans: BTreeSet<&str> = keys
            .iter()
            .filter_map(|key| key.split_once('/').map(|(id, _)| id))
            .filter(|id| !remote_ids.contains(*id) && !local_ids.contains(*id))
            .collect();
        let now = std::time::Instant::now();
        queue
            .doomed
            .extend(orphans.into_iter().map(|id| (id.to_owned(), now)));
        for id in local_ids {
            if remote_ids.contains(&id) {
                // In the bucket: the local copy is cache.
                remote.cache.add_local(kind, &id, local.size(&id)?);
            } else {
                queue.tasks.push_back(Task::Upload(id));
            }
        }
        remote
            .stats
            .backlog
            .store(queue.tasks.len() as u64, Ordering::Relaxed);
        info!(
            kind,
            in_bucket = remote_ids.len(),
            to_upload = queue.tasks.len(),
            "object store blocks"
        );
        let shared = Arc::new(Shared {
            local: local.clone(),
            remote,
            kind: kind.to_owned(),
            remote_ids: Mutex::new(remote_ids),
            queue: Mutex::new(queue),
            wake: Condvar::new(),
            grace,
        });
        {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("upload-{kind}"))
                .spawn(move || shared.run())?;
        }
        Ok(Self {
            local,
            shared,
            manifests: Mutex::default(),
        })
    }

    /// File `file` of block `id` in the bucket, read by ranges through the
    /// cache.
    fn remote_file(&self, id: &str, file: &str) -> io::Result<Arc<RemoteFile>> {
        let manifest = self.manifest(id)?;
        let len = manifest
            .files
            .iter()
            .find(|(name, _)| name == file)
            .map(|(_, size)| *size)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("block {id} has no {file}"))
            })?;
        let remote = self.shared.remote.clone();
        let path = remote.path(&[&self.shared.kind, id, file]);
        Ok(Arc::new(RemoteFile {
            key: Arc::from(path.as_ref()),
            path,
            remote,
            len,
        }))
    }

    /// Blocks not yet in the bucket.
    pub fn backlog(&self) -> usize {
        let queue = self.shared.queue.lock().expect("queue lock");
        queue
            .tasks
            .iter()
            .filter(|t| matches!(t, Task::Upload(_)))
            .count()
    }

    /// Block `id`'s manifest from the bucket.
    /// Blocks are immutable, so each manifest is fetched once.
    fn manifest(&self, id: &str) -> io::Result<Arc<Manifest>> {
        if let Some(manifest) = self.manifests.lock().expect("manifests lock").get(id) {
            return Ok(manifest.clone());
        }
        let remote = &self.shared.remote;
        let kind = &self.shared.kind;
        let manifest: Arc<Manifest> = Arc::new(
            serde_json::from_slice(&remote.get(remote.path(&[kind, &format!("{id}.json")]))?)
                .map_err(|e| io::Error::other(format!("manifest of block {id}: {e}")))?,
        );
        self.manifests
            .lock()
            .expect("manifests lock")
            .insert(id.to_owned(), manifest.clone());
        Ok(manifest)
    }
}

impl Drop for ObjectBlockStore {
    fn drop(&mut self) {
        // The uploader stops at its next task; one in flight is not waited
        // for (a stop must not wait on a slow store): its block has no
        // manifest yet, and the next start uploads it again.
        self.shared.queue.lock().expect("queue lock").stopped = true;
        self.shared.wake.notify_all();
    }
}

impl Shared {
    fn push(&self, task: Task) {
        let mut queue = self.queue.lock().expect("queue lock");
        if matches!(task, Task::Upload(_)) {
            self.remote.stats.backlog.fetch_add(1, Ordering::Relaxed);
        }
        queue.tasks.push_back(task);
        self.wake.notify_all();
    }

    /// The uploader: one task at a time, in order; a failure is retried
    /// with backoff until it succeeds or the store is dropped.
    fn run(&self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let task = {
                let mut queue = self.queue.lock().expect("queue lock");
                loop {
                    if queue.stopped {
                        return;
                    }
                    let now = std::time::Instant::now();
                    if let Some(i) = queue.doomed.iter().position(|(_, due)| *due <= now) {
                        break Task::DeleteFiles(queue.doomed[i].0.clone());
                    }
                    if let Some(task) = queue.tasks.front() {
                        break task.clone();
                    }
                    queue = match queue.doomed.iter().map(|(_, due)| *due).min() {
                        Some(due) => {
                            self.wake
                                .wait_timeout(queue, due.saturating_duration_since(now))
                                .expect("queue lock")
                                .0
                        }
                        None => self.wake.wait(queue).expect("queue lock"),
                    };
                }
            };
            let done = match &task {
                Task::Upload(id) => self.upload(id),
                Task::Delete(id) => self.delete_remote(id),
                Task::DeleteFiles(id) => self.delete_files(id),
            };
            match done {
                Ok(()) => {
                    backoff = Duration::from_millis(500);
                    let mut queue = self.queue.lock().expect("queue lock");
                    match &task {
                        Task::DeleteFiles(id) => queue.doomed.retain(|(d, _)| d != id),
                        Task::Upload(_) => {
                            queue.tasks.pop_front();
                            self.remote.stats.backlog.fetch_sub(1, Ordering::Relaxed);
                        }
                        Task::Delete(id) => {
                            queue.tasks.pop_front();
                            let due = std::time::Instant::now() + self.grace;
                            queue.doomed.push((id.clone(), due));
                        }
                    }
                }
                Err(e) => {
                    self.remote
                        .stats
                        .upload_failures
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(kind = %self.kind, error = %e, retry_in_ms = backoff.as_millis() as u64, "object store write failed; retrying");
                    let queue = self.queue.lock().expect("queue lock");
                    let _ = self.wake.wait_timeout(queue, backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn upload(&self, id: &str) -> io::Result<()> {
        let dir = match self.local.local_dir(id) {
            Ok(dir) => dir,
            // Deleted locally before it was uploaded (compacted or expired).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            files.push(entry.file_name().to_string_lossy().into_owned());
        }
        files.sort();
        let mut manifest = Manifest { files: Vec::new() };
        for file in files {
            let size = match self
                .remote
                .put_file(self.remote.path(&[&self.kind, id, &file]), &dir.join(&file))
            {
                Ok(size) => size,
                // Deleted locally meanwhile (compacted or expired).
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            self.remote
                .stats
                .uploaded_bytes
                .fetch_add(size, Ordering::Relaxed);
            manifest.files.push((file, size));
        }
        let body = serde_json::to_vec(&manifest).expect("a manifest serialises");
        match self.remote.put(
            self.remote.path(&[&self.kind, &format!("{id}.json")]),
            body,
            PutMode::Create,
        ) {
            // A crash after the manifest, before the queue moved on.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
        self.remote.stats.uploads.fetch_add(1, Ordering::Relaxed);
        self.remote_ids
            .lock()
            .expect("remote ids lock")
            .insert(id.to_owned());
        // From now on the local copy is cache.
        let total = manifest.files.iter().map(|(_, size)| size).sum();
        self.remote.cache.add_local(&self.kind, id, total);
        Ok(())
    }

    /// Deletes block `id`'s manifest: from then on the block is not there
    /// for anyone who has not opened it. Its files follow after the grace.
    fn delete_remote(&self, id: &str) -> io::Result<()> {
        self.remote
            .delete(self.remote.path(&[&self.kind, &format!("{id}.json")]))?;
        self.remote_ids.lock().expect("remote ids lock").remove(id);
        self.remote.stats.deletes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn delete_files(&self, id: &str) -> io::Result<()> {
        for file in self.remote.list(&[&self.kind, id])? {
            self.remote
                .delete(self.remote.path(&[&self.kind, id, &file]))?;
        }
        Ok(())
    }
}

impl BlockStore for ObjectBlockStore {
    fn backlog(&self) -> usize {
        ObjectBlockStore::backlog(self)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut ids: BTreeSet<String> = self.local.list()?.into_iter().collect();
        ids.extend(
            self.shared
                .remote_ids
                .lock()
                .expect("remote ids lock")
                .iter()
                .cloned(),
        );
        Ok(ids.into_iter().collect())
    }

    fn publish(&self, id: &str, staging: &FsPath) -> io::Result<()> {
        self.local.publish(id, staging)?;
        self.shared.push(Task::Upload(id.to_owned()));
        Ok(())
    }

    fn read(&self, id: &str, file: &str) -> io::Result<Vec<u8>> {
        if self.local.local_dir(id).is_ok() {
            return self.local.read(id, file);
        }
        let file = self.remote_file(id, file)?;
        file.read_at(0, file.len as usize)
    }

    fn read_range(&self, id: &str, file: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.open_file(id, file)?.read_at(offset, len)
    }

    fn open_file(
        &self,
        id: &str,
        file: &str,
    ) -> io::Result<Arc<dyn crate::block_store::BlockFile>> {
        if self.local.local_dir(id).is_ok() {
            return self.local.open_file(id, file);
        }
        // Not here: read from the bucket by ranges, never whole.
        Ok(self.remote_file(id, file)?)
    }

    fn size(&self, id: &str) -> io::Result<u64> {
        if self.local.local_dir(id).is_ok() {
            return self.local.size(id);
        }
        Ok(self.manifest(id)?.files.iter().map(|(_, size)| size).sum())
    }

    fn delete(&self, id: &str) -> io::Result<()> {
        self.manifests.lock().expect("manifests lock").remove(id);
        self.shared.remote.cache.remove_local(&self.shared.kind, id);
        self.local.delete(id)?;
        self.shared.push(Task::Delete(id.to_owned()));
        Ok(())
    }

    fn staging_dir(&self, id: &str) -> io::Result<PathBuf> {
        self.local.staging_dir(id)
    }

    fn local_dir(&self, id: &str) -> io::Result<PathBuf> {
        self.local.local_dir(id)
    }

    fn directory(&self, id: &str) -> io::Result<Box<dyn tantivy::Directory>> {
        if let Ok(dir) = self.local.local_dir(id) {
            return crate::block_store::mmap_directory(&dir);
        }
        let manifest = self.manifest(id)?;
        let files = manifest
            .files
            .iter()
            .map(|(name, _)| Ok((name.clone(), self.remote_file(id, name)?)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Box::new(directory::RemoteDirectory::new(files)))
    }

    fn take_evicted(&self) -> Vec<String> {
        let ids = self.shared.remote.cache.take_evicted(&self.shared.kind);
        let mut gone = Vec::new();
        for id in ids {
            // Readers that hold the copy open keep reading it; its engine
            // reopens the block from the bucket.
            match self.local.delete(&id) {
                Ok(()) => gone.push(id),
                Err(e) => {
                    warn!(kind = %self.shared.kind, block = %id, error = %e, "cannot drop a cached local copy");
                }
            }
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote_in_memory() -> Arc<RemoteStore> {
        remote_in_memory_with(tempfile::tempdir().unwrap().keep(), 1 << 20)
    }

    fn remote_in_memory_with(cache_dir: PathBuf, cache_size: u64) -> Arc<RemoteStore> {
        Arc::new(RemoteStore::in_memory(&cache_dir, cache_size))
    }

    fn stage(store: &ObjectBlockStore, id: &str, body: &[u8]) {
        let staging = store.staging_dir(id).unwrap();
        std::fs::write(staging.join("chunks"), body).unwrap();
        std::fs::write(staging.join("meta.json"), b"{}").unwrap();
        store.publish(id, &staging).unwrap();
    }

    fn wait_for(what: &str, check: impl Fn() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{what} did not happen");
    }

    #[test]
    fn blocks_upload_behind_a_manifest_and_come_back_on_an_empty_disk() {
        let remote = remote_in_memory();
        let first = tempfile::tempdir().unwrap();
        let store = ObjectBlockStore::open_with_grace(
            first.path(),
            remote.clone(),
            "metrics",
            Duration::ZERO,
        )
        .unwrap();
        stage(&store, "b1", b"chunk bytes");
        stage(&store, "b2", b"more bytes");
        wait_for("two uploads", || store.backlog() == 0);
        assert_eq!(
            remote.list(&["metrics"]).unwrap(),
            [
                "b1.json",
                "b1/chunks",
                "b1/meta.json",
                "b2.json",
                "b2/chunks",
                "b2/meta.json"
            ]
        );
        store.delete("b1").unwrap();
        wait_for("the delete", || {
            remote.list(&["metrics"]).unwrap().len() == 3
        });
        drop(store);
        // Another disk: the bucket's blocks are listed and read back.
        let second = tempfile::tempdir().unwrap();
        let store = ObjectBlockStore::open(second.path(), remote.clone(), "metrics").unwrap();
        assert_eq!(store.list().unwrap(), ["b2"]);
        assert_eq!(store.read("b2", "meta.json").unwrap(), b"{}");
        let chunks = store.open_file("b2", "chunks").unwrap();
        assert_eq!(chunks.read_at(5, 5).unwrap(), b"bytes");
        assert_eq!(chunks.read_at(0, 4).unwrap(), b"more");
        assert!(chunks.read_at(8, 5).is_err(), "past the end");
        // A range read (a page, cached) each for meta.json and chunks, and
        // nothing downloaded to disk.
        assert_eq!(remote.stats.range_reads.load(Ordering::Relaxed), 2);
        assert!(second.path().join("b2").read_dir().is_err());
        assert!(store.local_dir("b2").is_err(), "not downloaded");
    }

    #[test]
    fn local_copies_of_uploaded_blocks_are_cache_and_go_when_the_budget_says() {
        let cache_dir = tempfile::tempdir().unwrap();
        // Room for one block's copy, not two.
        let remote = remote_in_memory_with(cache_dir.path().to_owned(), 20);
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectBlockStore::open(dir.path(), remote, "metrics").unwrap();
        stage(&store, "b1", b"first block");
        wait_for("the upload", || store.backlog() == 0);
        assert!(store.take_evicted().is_empty());
        let held = store.open_file("b1", "chunks").unwrap();
        stage(&store, "b2", b"second block");
        wait_for("the upload", || store.backlog() == 0);
        assert_eq!(store.take_evicted(), ["b1"]);
        assert!(store.local_dir("b1").is_err(), "the copy is gone");
        assert!(store.local_dir("b2").is_ok());
        // A reader that held the copy open still reads it; a new one reads
        // the bucket.
        assert_eq!(held.read_at(0, 5).unwrap(), b"first");
        assert_eq!(
            store
                .open_file("b1", "chunks")
                .unwrap()
                .read_at(6, 5)
                .unwrap(),
            b"block"
        );
        assert_eq!(store.list().unwrap(), ["b1", "b2"]);
    }

    #[test]
    fn a_split_is_searched_from_the_bucket_by_ranges() {
        use tantivy::schema::{STORED, Schema, TEXT};
        let mut builder = Schema::builder();
        let body = builder.add_text_field("body", TEXT | STORED);
        let schema = builder.build();
        let remote = remote_in_memory();
        let first = tempfile::tempdir().unwrap();
        let store = ObjectBlockStore::open(first.path(), remote.clone(), "logs").unwrap();
        let staging = store.staging_dir("s1").unwrap();
        {
            let index = tantivy::Index::create_in_dir(&staging, schema).unwrap();
            let mut writer: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
            for n in 0..2000 {
                writer
                    .add_document(tantivy::doc!(body => format!("request req-{n} served")))
                    .unwrap();
            }
            writer.commit().unwrap();
            writer.wait_merging_threads().unwrap();
        }
        let lock = staging.join(".tantivy-writer.lock");
        let _ = std::fs::remove_file(lock);
        store.publish("s1", &staging).unwrap();
        wait_for("the upload", || store.backlog() == 0);
        drop(store);

        let second = tempfile::tempdir().unwrap();
        let store = ObjectBlockStore::open(second.path(), remote.clone(), "logs").unwrap();
        let index = tantivy::Index::open(store.directory("s1").unwrap()).unwrap();
        let searcher = index.reader().unwrap().searcher();
        let query = tantivy::query::TermQuery::new(
            tantivy::Term::from_field_text(body, "1234"),
            tantivy::schema::IndexRecordOption::Basic,
        );
        let top = searcher
            .search(
                &query,
                &tantivy::collector::TopDocs::with_limit(5).order_by_score(),
            )
            .unwrap();
        assert_eq!(top.len(), 1);
        let doc: tantivy::TantivyDocument = searcher.doc(top[0].1).unwrap();
        assert_eq!(
            doc.get_first(body)
                .and_then(|v| tantivy::schema::Value::as_str(&v)),
            Some("request req-1234 served")
        );
        assert!(store.local_dir("s1").is_err(), "not downloaded");
        assert!(remote.stats.range_reads.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_deleted_blocks_files_outlive_its_manifest_for_readers_and_go_later() {
        let remote = remote_in_memory();
        let dir = tempfile::tempdir().unwrap();
        let grace = Duration::from_millis(300);
        let store = ObjectBlockStore::open_with_grace(dir.path(), remote.clone(), "metrics", grace)
            .unwrap();
        stage(&store, "b1", b"chunk bytes");
        wait_for("the upload", || store.backlog() == 0);
        drop(store);
        // Another disk: the block is read from the bucket, and a reader
        // opens it before compaction deletes it.
        let other = tempfile::tempdir().unwrap();
        let store =
            ObjectBlockStore::open_with_grace(other.path(), remote.clone(), "metrics", grace)
                .unwrap();
        let held = store.open_file("b1", "chunks").unwrap();
        store.delete("b1").unwrap();
        wait_for("the manifest gone", || {
            !remote
                .list(&["metrics"])
                .unwrap()
                .contains(&"b1.json".to_owned())
        });
        assert_eq!(
            held.read_at(6, 5).unwrap(),
            b"bytes",
            "read within the grace"
        );
        assert!(store.list().unwrap().is_empty());
        wait_for("the files gone", || {
            remote.list(&["metrics"]).unwrap().is_empty()
        });
        drop(store);

        // A stop before the grace ran out leaves files without a manifest:
        // the next open removes them.
        remote
            .put(
                remote.path(&["metrics", "b9", "chunks"]),
                b"left".to_vec(),
                PutMode::Overwrite,
            )
            .unwrap();
        let store =
            ObjectBlockStore::open_with_grace(other.path(), remote.clone(), "metrics", grace)
                .unwrap();
        wait_for("the orphan swept", || {
            remote.list(&["metrics"]).unwrap().is_empty()
        });
        drop(store);
    }

    #[test]
    fn a_block_published_before_a_crash_is_uploaded_at_the_next_open() {
        let remote = remote_in_memory();
        let dir = tempfile::tempdir().unwrap();
        let local = LocalBlockStore::open(dir.path()).unwrap();
        let staging = local.staging_dir("b1").unwrap();
        std::fs::write(staging.join("chunks"), b"x").unwrap();
        local.publish("b1", &staging).unwrap();
        drop(local);
        let store = ObjectBlockStore::open(dir.path(), remote.clone(), "metrics").unwrap();
        wait_for("the upload", || store.backlog() == 0);
        assert!(
            remote
                .list(&["metrics"])
                .unwrap()
                .contains(&"b1.json".to_owned())
        );
    }
}
