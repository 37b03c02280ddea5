//! A time-partitioned full-text engine over tantivy: the log store uses it
//! and spans will too. Records are partitioned by their day (UTC):
//!
//! - An append is framed into the engine's write-ahead log (`<dir>/wal`)
//!   with a sequence number, in one write, and only then indexed. Nothing is
//!   acknowledged before it is in the WAL.
//! - Each day being written has an *active* partition: a tantivy index under
//!   `<dir>/active/<day>-<n>/`. A commit (every second in the server) commits
//!   every active partition, recording in each commit's payload the last
//!   sequence number it covers, then empties the WAL. After a crash the WAL's
//!   records that a partition's payload does not cover are indexed again, so
//!   nothing acknowledged is lost and nothing is indexed twice.
//! - Once its day is over and it has been idle for a while, a partition is
//!   *sealed*: merged into one segment and published as an immutable split
//!   through the same [`BlockStore`] as metric blocks (`<dir>/splits/`). Late
//!   records for a sealed day open a new active partition for that day.
//! - Retention deletes whole partitions whose day has passed out of the
//!   window; a time-bounded search skips partitions outside its range.
//!
//! Every schema has a fast `timestamp` (i64 µs) and a fast `seq` (u64, the
//! WAL sequence number, unique): hits sort by `(timestamp, seq)`, so pages
//! never overlap, and a live tail follows `seq`, not the records' own clocks.

pub(crate) mod collect;
mod wal;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tantivy::collector::Count;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery};
use tantivy::schema::Schema;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use collect::HitKey;
use collect::{TimestampBuckets, TopKeys, merge_counts, sort_keys};
use wal::{Wal, io_err};

use crate::block_store::{BlockStore, LocalBlockStore};
use crate::{Error, Result};

const DAY_US: i64 = 86_400 * 1_000_000;

/// Tantivy's smallest writer budget per indexing thread.
const MIN_WRITER_MEMORY: usize = 15 * 1024 * 1024;

/// Segments of an active partition with more records than this merge no
/// further: at a few tens of thousands of records a second, one merge of
/// sixteen one-second segments passes it, so a record is rewritten once.
const MAX_DOCS_BEFORE_MERGE: usize = 500_000;

/// Segments of a size merged at once while a partition is written.
const MERGE_WIDTH: usize = 16;

/// What a kind of record (logs, spans) tells the engine.
pub(crate) trait Kind: Send + Sync + 'static {
    type Record: Send + Sync;
    /// The schema: it has a fast i64 `timestamp` and a fast u64 `seq`.
    fn schema(&self) -> Schema;
    fn timestamp_us(&self, record: &Self::Record) -> i64;
    /// The document to index for `record` (the engine adds `seq`);
    /// `encoded` is the record as [`Kind::encode`] wrote it, for a kind that
    /// stores it whole.
    fn document(&self, record: &Self::Record, encoded: &[u8]) -> TantivyDocument;
    /// The record as the WAL keeps it.
    fn encode(&self, record: &Self::Record, out: &mut Vec<u8>);
    fn decode(&self, bytes: &[u8]) -> Option<Self::Record>;
    /// The zstd level of the document store (`None`: zstd's default, 3).
    fn docstore_level(&self) -> Option<i32> {
        None
    }
}

/// How the engine partitions, seals and forgets.
#[derive(Debug, Clone)]
pub struct SplitConfig {
    /// Partitions whose whole day is older than this are deleted.
    pub retention_us: i64,
    /// Memory tantivy may use for records not yet committed, in the
    /// partition of the current day; older days get tantivy's minimum.
    pub writer_memory: usize,
    /// A partition whose day has ended is sealed once it has taken no
    /// record for this long.
    pub seal_idle_us: i64,
    /// Sealed splits also kept in object storage, under the prefix's
    /// `logs/` or `traces/` (the engine directory's name).
    pub remote: Option<Arc<crate::remote::RemoteStore>>,
    /// Where in the bucket the splits go (`logs/p3`, a cluster partition);
    /// the engine directory's name when unset.
    pub remote_kind: Option<String>,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            retention_us: 7 * DAY_US,
            writer_memory: 64 * 1024 * 1024,
            seal_idle_us: 10 * 60 * 1_000_000,
            remote: None,
            remote_kind: None,
        }
    }
}

/// A searchable partition, active or sealed.
pub(crate) struct Part {
    id: String,
    day: i64,
    index: Index,
    reader: IndexReader,
    /// Oldest and newest timestamps indexed (`i64::MAX`/`i64::MIN` when empty).
    min_us: AtomicI64,
    max_us: AtomicI64,
}

impl Part {
    fn open(id: &str, day: i64, index: Index) -> Result<Self> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_err)?;
        let part = Self {
            id: id.to_owned(),
            day,
            index,
            reader,
            min_us: AtomicI64::new(i64::MAX),
            max_us: AtomicI64::new(i64::MIN),
        };
        for segment in part.reader.searcher().segment_readers() {
            let column = segment.fast_fields().i64("timestamp").map_err(index_err)?;
            if segment.num_docs() > 0 {
                part.widen(column.min_value(), column.max_value());
            }
        }
        Ok(part)
    }

    fn widen(&self, min_us: i64, max_us: i64) {
        self.min_us.fetch_min(min_us, Ordering::Relaxed);
        self.max_us.fetch_max(max_us, Ordering::Relaxed);
    }

    fn overlaps(&self, start_us: i64, end_us: i64) -> bool {
        self.min_us.load(Ordering::Relaxed) < end_us
            && self.max_us.load(Ordering::Relaxed) >= start_us
    }

    pub(crate) fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }
}

struct Active {
    part: Arc<Part>,
    writer: Mutex<IndexWriter>,
    /// Records added since its last commit.
    pending: AtomicUsize,
    /// Wall clock of its last append, µs.
    last_append_us: AtomicI64,
}

#[derive(Default)]
struct Parts {
    active: BTreeMap<i64, Arc<Active>>,
    /// Active partitions being merged and published: still searched.
    sealing: Vec<Arc<Part>>,
    /// Older active partitions of a day that has a newer one (a crash cut
    /// their sealing short): searched, and sealed at the next maintenance.
    leftover: Vec<Arc<Active>>,
    sealed: Vec<Arc<Part>>,
}

struct WalState {
    wal: Wal,
    next_seq: u64,
    /// An index write or commit failed (a full disk): the writers are rolled
    /// back and the WAL indexed again before anything else is indexed.
    needs_recovery: bool,
}

/// The engine.
pub(crate) struct Engine<K: Kind> {
    kind: K,
    schema: Schema,
    dir: PathBuf,
    config: SplitConfig,
    blocks: Arc<dyn BlockStore>,
    /// Lock order: `wal`, then `parts`, then a writer.
    wal: Mutex<WalState>,
    parts: RwLock<Parts>,
    /// Every record with a sequence number at or below this is searchable.
    visible_seq: AtomicU64,
}

pub(crate) fn index_err(err: impl std::fmt::Display) -> Error {
    Error::Index(err.to_string())
}

/// Opens sealed split `id`: mapped from local disk, or read by ranges from
/// object storage.
fn open_split(blocks: &dyn BlockStore, id: &str, splits_dir: &Path) -> Result<Index> {
    let directory = blocks
        .directory(id)
        .map_err(io_err("open split", &splits_dir.join(id)))?;
    Index::open(directory).map_err(index_err)
}

fn settings(level: Option<i32>) -> tantivy::IndexSettings {
    // zstd over large doc-store blocks: records repeat themselves, and a
    // search reads few documents.
    tantivy::IndexSettings {
        docstore_blocksize: 256 * 1024,
        docstore_compression: tantivy::store::Compressor::Zstd(tantivy::store::ZstdCompressor {
            compression_level: level,
        }),
        ..tantivy::IndexSettings::default()
    }
}

fn day_of(timestamp_us: i64) -> i64 {
    timestamp_us.div_euclid(DAY_US)
}

/// `20261128-1`: the day's date, then which partition of that day.
fn part_id(day: i64, n: u32) -> String {
    let (y, m, d) = sextant_model::time::civil_from_days(day);
    format!("{y:04}{m:02}{d:02}-{n}")
}

/// The day and number of a partition id.
fn parse_part_id(id: &str) -> Option<(i64, u32)> {
    let (date, n) = id.split_once('-')?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = date[..4].parse().ok()?;
    let m: i64 = date[4..6].parse().ok()?;
    let d: i64 = date[6..].parse().ok()?;
    Some((
        sextant_model::time::days_from_civil(y, m, d),
        n.parse().ok()?,
    ))
}

/// Checks an engine's directory without changing it: the WAL's frames
/// (each must decode; a torn tail is what a crash leaves), and every sealed
/// and active partition (tantivy's checksums of each file, then every stored
/// document read back).
pub(crate) fn check(
    dir: &Path,
    decodes: impl Fn(&[u8]) -> bool,
    report: &mut crate::check::CheckReport,
) {
    let wal_path = dir.join("wal");
    match wal::read(&wal_path) {
        Ok((frames, torn)) => {
            let bad = frames.iter().filter(|(_, p)| !decodes(p)).count();
            if bad > 0 {
                report.problem(format!(
                    "{}: {bad} of {} records do not decode",
                    wal_path.display(),
                    frames.len()
                ));
            }
            if torn > 0 {
                report.note(format!(
                    "{}: {torn} bytes after the last whole record are a torn write; they are cut off at the next start",
                    wal_path.display()
                ));
            }
            report.checked(format!(
                "{}: {} records not yet committed to a partition",
                wal_path.display(),
                frames.len()
            ));
        }
        Err(e) => report.problem(e.to_string()),
    }
    for (kind, sub) in [("sealed", "splits"), ("active", "active")] {
        let parent = dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        let mut ids: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| parse_part_id(n).is_some())
            })
            .collect();
        ids.sort();
        for path in ids {
            match check_partition(&path) {
                Ok(docs) => report.checked(format!(
                    "{}: {kind} partition, {docs} documents",
                    path.display()
                )),
                Err(e) => report.problem(format!("{}: {e}", path.display())),
            }
        }
    }
}

fn check_partition(path: &Path) -> std::result::Result<u64, String> {
    let index = Index::open_in_dir(path).map_err(|e| format!("does not open: {e}"))?;
    let damaged = index
        .validate_checksum()
        .map_err(|e| format!("checksums unreadable: {e}"))?;
    if !damaged.is_empty() {
        let mut names: Vec<String> = damaged.iter().map(|p| p.display().to_string()).collect();
        names.sort();
        return Err(format!("checksum mismatch in {}", names.join(", ")));
    }
    payload_seq(&index).map_err(|e| format!("commit payload unreadable: {e}"))?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(|e| format!("no reader: {e}"))?;
    let searcher = reader.searcher();
    let mut docs = 0u64;
    for segment in searcher.segment_readers() {
        let store = segment
            .get_store_reader(1)
            .map_err(|e| format!("segment {}: {e}", segment.segment_id().uuid_string()))?;
        let mut read = 0u32;
        for doc in store.iter::<TantivyDocument>(segment.alive_bitset()) {
            doc.map_err(|e| {
                format!(
                    "segment {}: document {read}: {e}",
                    segment.segment_id().uuid_string()
                )
            })?;
            read += 1;
        }
        if read != segment.num_docs() {
            return Err(format!(
                "segment {}: {read} stored documents, {} alive",
                segment.segment_id().uuid_string(),
                segment.num_docs()
            ));
        }
        docs += u64::from(read);
    }
    Ok(docs)
}

fn payload_seq(index: &Index) -> Result<Option<u64>> {
    Ok(index
        .load_metas()
        .map_err(index_err)?
        .payload
        .and_then(|p| p.parse().ok()))
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl<K: Kind> Engine<K> {
    /// Opens (or creates) the engine in `dir`, indexing what the WAL holds
    /// beyond each partition's last commit.
    pub(crate) fn open(dir: &Path, kind: K, config: SplitConfig) -> Result<Self> {
        let schema = kind.schema();
        let active_dir = dir.join("active");
        std::fs::create_dir_all(&active_dir).map_err(io_err("create", &active_dir))?;
        let splits_dir = dir.join("splits");
        let blocks: Arc<dyn BlockStore> = match &config.remote {
            Some(remote) => {
                let kind_name = config.remote_kind.clone().unwrap_or_else(|| {
                    dir.file_name()
                        .map_or_else(|| "splits".into(), |n| n.to_string_lossy().into_owned())
                });
                Arc::new(
                    crate::remote::ObjectBlockStore::open(&splits_dir, remote.clone(), &kind_name)
                        .map_err(io_err("open the split store", &splits_dir))?,
                )
            }
            None => Arc::new(
                LocalBlockStore::open(&splits_dir)
                    .map_err(io_err("open the split store", &splits_dir))?,
            ),
        };
        let mut parts = Parts::default();
        let mut next_seq = 1;
        let sealed_ids = blocks.list().map_err(io_err("list", &splits_dir))?;
        let named: Vec<(i64, &String)> = sealed_ids
            .iter()
            .filter_map(|id| Some((parse_part_id(id)?.0, id)))
            .collect();
        // Several at a time: a split only in the bucket costs a few requests.
        const OPENERS: usize = 8;
        let opened: Vec<Result<(Index, Part)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = named
                .chunks(named.len().div_ceil(OPENERS).max(1))
                .map(|batch| {
                    let (blocks, splits_dir) = (&blocks, &splits_dir);
                    scope.spawn(move || {
                        batch
                            .iter()
                            .map(|&(day, id)| {
                                let index = open_split(blocks.as_ref(), id, splits_dir)?;
                                let part = Part::open(id, day, index.clone())?;
                                Ok((index, part))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a split opener panicked"))
                .collect()
        });
        for split in opened {
            let (index, part) = split?;
            if let Some(seq) = payload_seq(&index)? {
                next_seq = next_seq.max(seq + 1);
            }
            parts.sealed.push(Arc::new(part));
        }
        let entries = std::fs::read_dir(&active_dir).map_err(io_err("list", &active_dir))?;
        let mut found: Vec<(i64, u32, String, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &active_dir))?;
            let id = entry.file_name().to_string_lossy().into_owned();
            let Some((day, n)) = parse_part_id(&id) else {
                continue;
            };
            if sealed_ids.contains(&id) {
                // Published before a crash cut the clean-up short.
                std::fs::remove_dir_all(entry.path()).map_err(io_err("remove", &entry.path()))?;
                continue;
            }
            found.push((day, n, id, entry.path()));
        }
        found.sort();
        for (day, _, id, path) in found {
            let active = Arc::new(open_active(
                &schema,
                kind.docstore_level(),
                &path,
                &id,
                day,
                &config,
            )?);
            let seq = payload_seq(&active.part.index)?.unwrap_or(0);
            next_seq = next_seq.max(seq + 1);
            if let Some(older) = parts.active.insert(day, active) {
                // A crash while the older was being sealed: it is sealed at
                // the next maintenance; the newer one takes the day's records.
                parts.leftover.push(older);
            }
        }
        // Committed-through sequence numbers of the days' active partitions.
        let covered: BTreeMap<i64, u64> = parts
            .active
            .iter()
            .map(|(day, a)| Ok((*day, payload_seq(&a.part.index)?.unwrap_or(0))))
            .collect::<Result<_>>()?;
        let (wal, frames) = Wal::open(&dir.join("wal"))?;
        let engine = Self {
            kind,
            schema,
            dir: dir.to_owned(),
            config,
            blocks,
            wal: Mutex::new(WalState {
                wal,
                next_seq,
                needs_recovery: false,
            }),
            parts: RwLock::new(parts),
            visible_seq: AtomicU64::new(0),
        };
        {
            let mut state = engine.wal.lock().expect("wal lock");
            for (seq, payload) in frames {
                state.next_seq = state.next_seq.max(seq + 1);
                let Some(record) = engine.kind.decode(&payload) else {
                    continue;
                };
                let day = day_of(engine.kind.timestamp_us(&record));
                if covered.get(&day).is_some_and(|&through| seq <= through) {
                    continue;
                }
                let t = engine.kind.timestamp_us(&record);
                engine.index([(seq, t, engine.kind.document(&record, &payload))])?;
            }
            let last = state.next_seq - 1;
            engine.commit_locked(&mut state)?;
            engine.visible_seq.store(last, Ordering::Release);
        }
        Ok(engine)
    }

    pub(crate) fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Makes `records` durable (framed into the WAL in one write) and indexes
    /// them; they are searchable after the next [`Engine::commit`].
    /// Documents and WAL payloads are made before the WAL lock is taken, so
    /// concurrent appenders do that work in parallel.
    pub(crate) fn append(&self, records: &[K::Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut payloads = Vec::with_capacity(records.len() * 256);
        let mut ends = Vec::with_capacity(records.len());
        let mut docs = Vec::with_capacity(records.len());
        for record in records {
            let start = payloads.len();
            self.kind.encode(record, &mut payloads);
            ends.push(payloads.len());
            let doc = self.kind.document(record, &payloads[start..]);
            docs.push((self.kind.timestamp_us(record), doc));
        }
        let mut frames = Vec::with_capacity(payloads.len() + records.len() * 16);
        let mut state = self.wal.lock().expect("wal lock");
        if state.needs_recovery {
            self.recover_locked(&mut state).map_err(|e| {
                Error::Unavailable(format!(
                    "the index is recovering from a failed write and cannot take more yet; retry shortly ({e})"
                ))
            })?;
        }
        let first = state.next_seq;
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            wal::frame(first + i as u64, &payloads[start..end], &mut frames);
            start = end;
        }
        state.wal.write(&frames, records.len())?;
        state.next_seq += records.len() as u64;
        let numbered = docs
            .into_iter()
            .enumerate()
            .map(|(i, (t, doc))| (first + i as u64, t, doc));
        if let Err(err) = self.index(numbered) {
            // The records are in the WAL, so they are kept: the next commit
            // rolls the writers back and indexes the WAL again.
            tracing::warn!(error = %err, "indexing failed; the WAL is indexed again at the next commit");
            state.needs_recovery = true;
        }
        Ok(())
    }

    /// Adds documents `(seq, timestamp, doc)` to the active partitions of
    /// their days (the WAL lock is held, so a commit covers exactly the WAL).
    fn index(&self, docs: impl IntoIterator<Item = (u64, i64, TantivyDocument)>) -> Result<()> {
        let seq_field = self.schema.get_field("seq").expect("seq field");
        let mut by_day: BTreeMap<i64, Vec<(i64, TantivyDocument)>> = BTreeMap::new();
        for (seq, t, mut doc) in docs {
            doc.add_u64(seq_field, seq);
            by_day.entry(day_of(t)).or_default().push((t, doc));
        }
        let now = now_us();
        for (day, docs) in by_day {
            let active = self.active_for(day)?;
            let (mut min_us, mut max_us) = (i64::MAX, i64::MIN);
            let count = docs.len();
            let writer = active.writer.lock().expect("writer lock");
            for (t, doc) in docs {
                min_us = min_us.min(t);
                max_us = max_us.max(t);
                writer.add_document(doc).map_err(index_err)?;
            }
            drop(writer);
            active.part.widen(min_us, max_us);
            active.pending.fetch_add(count, Ordering::Relaxed);
            active.last_append_us.store(now, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The active partition of `day`, opened if there is none.
    fn active_for(&self, day: i64) -> Result<Arc<Active>> {
        if let Some(active) = self.parts.read().expect("parts lock").active.get(&day) {
            return Ok(active.clone());
        }
        let mut parts = self.parts.write().expect("parts lock");
        if let Some(active) = parts.active.get(&day) {
            return Ok(active.clone());
        }
        let n = parts
            .sealed
            .iter()
            .chain(&parts.sealing)
            .filter(|p| p.day == day)
            .filter_map(|p| parse_part_id(&p.id).map(|(_, n)| n))
            .max()
            .unwrap_or(0)
            + 1;
        let id = part_id(day, n);
        let path = self.dir.join("active").join(&id);
        let active = Arc::new(open_active(
            &self.schema,
            self.kind.docstore_level(),
            &path,
            &id,
            day,
            &self.config,
        )?);
        parts.active.insert(day, active.clone());
        Ok(active)
    }

    /// Commits every active partition with new records (they become
    /// searchable) and empties the WAL they now cover.
    pub(crate) fn commit(&self) -> Result<()> {
        let mut state = self.wal.lock().expect("wal lock");
        let last = state.next_seq - 1;
        self.commit_locked(&mut state)?;
        self.visible_seq.store(last, Ordering::Release);
        Ok(())
    }

    fn commit_locked(&self, state: &mut WalState) -> Result<()> {
        if state.needs_recovery {
            self.recover_locked(state)?;
        }
        if state.wal.pending == 0 {
            return Ok(());
        }
        let through = (state.next_seq - 1).to_string();
        let actives: Vec<Arc<Active>> = self
            .parts
            .read()
            .expect("parts lock")
            .active
            .values()
            .cloned()
            .collect();
        for active in actives {
            if active.pending.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut writer = active.writer.lock().expect("writer lock");
            let committed = writer.prepare_commit().and_then(|mut prepared| {
                prepared.set_payload(&through);
                prepared.commit()
            });
            drop(writer);
            if let Err(err) = committed {
                // The WAL stays: the next commit recovers from it.
                state.needs_recovery = true;
                return Err(index_err(err));
            }
            active.pending.store(0, Ordering::Relaxed);
            active.part.reader.reload().map_err(index_err)?;
        }
        state.wal.clear()
    }

    /// After a failed commit (a full disk, say) a writer's uncommitted
    /// documents are in an unknown state, and tantivy may have stopped the
    /// writer. Every active writer is rolled back to its last commit and
    /// what the WAL holds beyond that commit is indexed again: the WAL is the
    /// record of what was acknowledged. Until this succeeds, appends are
    /// refused and the WAL is not emptied.
    fn recover_locked(&self, state: &mut WalState) -> Result<()> {
        let actives: Vec<(i64, Arc<Active>)> = self
            .parts
            .read()
            .expect("parts lock")
            .active
            .iter()
            .map(|(day, a)| (*day, a.clone()))
            .collect();
        let mut covered = BTreeMap::new();
        for (day, active) in &actives {
            active
                .writer
                .lock()
                .expect("writer lock")
                .rollback()
                .map_err(index_err)?;
            active.pending.store(0, Ordering::Relaxed);
            covered.insert(*day, payload_seq(&active.part.index)?.unwrap_or(0));
        }
        let (frames, _) = wal::read(&self.dir.join("wal"))?;
        let docs = frames.into_iter().filter_map(|(seq, payload)| {
            let record = self.kind.decode(&payload)?;
            let t = self.kind.timestamp_us(&record);
            if covered
                .get(&day_of(t))
                .is_some_and(|&through| seq <= through)
            {
                return None;
            }
            Some((seq, t, self.kind.document(&record, &payload)))
        });
        self.index(docs)?;
        state.needs_recovery = false;
        tracing::info!(
            partitions = actives.len(),
            "index writers rolled back after a failed commit; the WAL is indexed again"
        );
        Ok(())
    }

    /// Fsyncs the WAL.
    pub(crate) fn sync(&self) -> Result<()> {
        self.wal.lock().expect("wal lock").wal.sync()
    }

    /// Deletes partitions that retention has passed and seals finished ones.
    /// Run it now and then (every minute in the server).
    /// How often [`Engine::maintain`] should run: every minute, or twice
    /// per `seal_idle` when that is shorter, so splits seal on time.
    pub(crate) fn maintenance_interval(&self) -> std::time::Duration {
        let idle = std::time::Duration::from_micros(self.config.seal_idle_us.max(0) as u64);
        std::time::Duration::from_secs(60)
            .min(idle / 2)
            .max(std::time::Duration::from_secs(1))
    }

    pub(crate) fn maintain(&self) -> Result<()> {
        self.maintain_at(now_us())
    }

    /// The time (µs) before which every record appended is in a sealed
    /// split that has left this machine: the start of the oldest day still
    /// written or being sealed; `None` while a sealed split waits for its
    /// upload.
    pub(crate) fn durable_before_us(&self) -> Option<i64> {
        if self.blocks.backlog() > 0 {
            return None;
        }
        let parts = self.parts.read().expect("parts lock");
        let oldest = parts
            .active
            .keys()
            .copied()
            .chain(parts.leftover.iter().map(|a| a.part.day))
            .chain(parts.sealing.iter().map(|p| p.day))
            .min();
        Some(oldest.map_or(i64::MAX, |day| day.saturating_mul(DAY_US)))
    }

    /// [`Engine::maintain`] with `now_us` as the clock for days and retention.
    pub(crate) fn maintain_at(&self, now_us: i64) -> Result<()> {
        let cutoff = now_us - self.config.retention_us;
        let expired = |day: i64| (day + 1) * DAY_US <= cutoff;
        // Retention first: an expired day is not worth sealing.
        let (doomed_sealed, doomed_active) = {
            let mut parts = self.parts.write().expect("parts lock");
            let (gone, kept): (Vec<_>, Vec<_>) =
                parts.sealed.drain(..).partition(|p| expired(p.day));
            parts.sealed = kept;
            let days: Vec<i64> = parts
                .active
                .keys()
                .copied()
                .filter(|&d| expired(d))
                .collect();
            let mut actives: Vec<Arc<Active>> = days
                .into_iter()
                .filter_map(|d| parts.active.remove(&d))
                .collect();
            let (stale, fresh): (Vec<_>, Vec<_>) =
                parts.leftover.drain(..).partition(|a| expired(a.part.day));
            parts.leftover = fresh;
            actives.extend(stale);
            (gone, actives)
        };
        for part in doomed_sealed {
            let id = part.id.clone();
            drop(part);
            self.blocks
                .delete(&id)
                .map_err(io_err("delete split", &self.dir.join("splits").join(&id)))?;
        }
        for active in doomed_active {
            let path = self.dir.join("active").join(&active.part.id);
            drop(active);
            std::fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        }
        // Idleness is wall-clock time since the last append, whatever `now_us` says.
        let wall = self::now_us();
        let finished: Vec<i64> = {
            let parts = self.parts.read().expect("parts lock");
            parts
                .active
                .iter()
                .filter(|(day, active)| {
                    (**day + 1) * DAY_US <= now_us
                        && wall - active.last_append_us.load(Ordering::Relaxed)
                            >= self.config.seal_idle_us
                })
                .map(|(day, _)| *day)
                .collect()
        };
        for day in finished {
            self.seal(day)?;
        }
        let leftover: Vec<Arc<Active>> = {
            let mut parts = self.parts.write().expect("parts lock");
            let leftover: Vec<Arc<Active>> = parts.leftover.drain(..).collect();
            parts
                .sealing
                .extend(leftover.iter().map(|a| a.part.clone()));
            leftover
        };
        for active in leftover {
            self.finish_seal(active)?;
        }
        self.reopen_evicted()
    }

    /// Merges the active partition of `day` into one segment and publishes
    /// it as an immutable split. It stays searchable throughout.
    fn seal(&self, day: i64) -> Result<()> {
        let active = {
            let mut state = self.wal.lock().expect("wal lock");
            let last = state.next_seq - 1;
            self.commit_locked(&mut state)?;
            self.visible_seq.store(last, Ordering::Release);
            let mut parts = self.parts.write().expect("parts lock");
            let Some(active) = parts.active.remove(&day) else {
                return Ok(());
            };
            parts.sealing.push(active.part.clone());
            active
        };
        self.finish_seal(active)
    }

    /// Publishes a partition already moved to `sealing` and swaps it for the split.
    fn finish_seal(&self, active: Arc<Active>) -> Result<()> {
        let result = self.publish(&active);
        let mut parts = self.parts.write().expect("parts lock");
        parts.sealing.retain(|p| !Arc::ptr_eq(p, &active.part));
        match result {
            Ok(sealed) => {
                parts.sealed.push(Arc::new(sealed));
                drop(parts);
                let path = self.dir.join("active").join(&active.part.id);
                drop(active);
                std::fs::remove_dir_all(&path).map_err(io_err("remove", &path))
            }
            Err(err) => {
                // Still a good partition: sealing is tried again later.
                parts.leftover.push(active);
                Err(err)
            }
        }
    }

    fn publish(&self, active: &Active) -> Result<Part> {
        let part = &active.part;
        let mut writer = active.writer.lock().expect("writer lock");
        let segments = part.index.searchable_segment_ids().map_err(index_err)?;
        if segments.len() > 1 {
            writer.merge(&segments).wait().map_err(index_err)?;
        }
        let live = part.index.searchable_segment_ids().map_err(index_err)?;
        drop(writer);
        let source = self.dir.join("active").join(&part.id);
        let staging = self
            .blocks
            .staging_dir(&part.id)
            .map_err(io_err("stage split", &source))?;
        let prefixes: Vec<String> = live.iter().map(|s| s.uuid_string()).collect();
        let entries = std::fs::read_dir(&source).map_err(io_err("list", &source))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &source))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "meta.json" || prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                let to = staging.join(&name);
                if std::fs::hard_link(entry.path(), &to).is_err() {
                    std::fs::copy(entry.path(), &to).map_err(io_err("copy", &entry.path()))?;
                }
            }
        }
        self.blocks
            .publish(&part.id, &staging)
            .map_err(io_err("publish split", &staging))?;
        let index = open_split(self.blocks.as_ref(), &part.id, &self.dir.join("splits"))?;
        Part::open(&part.id, part.day, index)
    }

    /// Reopens the splits whose local copies the object store's cache
    /// dropped: from the bucket now, so the copies' space is freed once
    /// the searches that hold them end.
    fn reopen_evicted(&self) -> Result<()> {
        let evicted = self.blocks.take_evicted();
        if evicted.is_empty() {
            return Ok(());
        }
        let splits_dir = self.dir.join("splits");
        for id in evicted {
            let Some(day) = self
                .parts
                .read()
                .expect("parts lock")
                .sealed
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.day)
            else {
                continue;
            };
            let part = Arc::new(Part::open(
                &id,
                day,
                open_split(self.blocks.as_ref(), &id, &splits_dir)?,
            )?);
            let mut parts = self.parts.write().expect("parts lock");
            if let Some(slot) = parts.sealed.iter_mut().find(|p| p.id == id) {
                *slot = part;
            }
        }
        Ok(())
    }

    /// Partitions that may hold records in `[start_us, end_us)`.
    pub(crate) fn parts_in(&self, start_us: i64, end_us: i64) -> Vec<Arc<Part>> {
        let parts = self.parts.read().expect("parts lock");
        parts
            .active
            .values()
            .chain(&parts.leftover)
            .map(|a| &a.part)
            .chain(&parts.sealing)
            .chain(&parts.sealed)
            .filter(|p| p.overlaps(start_us, end_us))
            .cloned()
            .collect()
    }

    /// Ids of the sealed splits, oldest first.
    pub(crate) fn sealed_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .parts
            .read()
            .expect("parts lock")
            .sealed
            .iter()
            .map(|p| p.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Ids of the active partitions.
    pub(crate) fn active_ids(&self) -> Vec<String> {
        self.parts
            .read()
            .expect("parts lock")
            .active
            .values()
            .map(|a| a.part.id.clone())
            .collect()
    }

    /// Calls `f` with a searcher of every partition that may hold records in `[start_us, end_us)`.
    pub(crate) fn each_part(
        &self,
        start_us: i64,
        end_us: i64,
        mut f: impl FnMut(&tantivy::Searcher) -> Result<()>,
    ) -> Result<()> {
        for part in self.parts_in(start_us, end_us) {
            f(&part.searcher())?;
        }
        Ok(())
    }

    /// `query` limited to records in `[start_us, end_us)`.
    pub(crate) fn time_filter(
        &self,
        query: Box<dyn Query>,
        start_us: i64,
        end_us: i64,
    ) -> Box<dyn Query> {
        let field = self.schema.get_field("timestamp").expect("timestamp field");
        let range = RangeQuery::new(
            Bound::Included(Term::from_field_i64(field, start_us)),
            Bound::Excluded(Term::from_field_i64(field, end_us)),
        );
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, query),
            (Occur::Must, Box::new(range)),
        ]))
    }

    /// Matches of `query` in `[start_us, end_us)`: how many there are, and
    /// the first `limit` in time order after `after`, with their documents.
    pub(crate) fn search(
        &self,
        query: Box<dyn Query>,
        start_us: i64,
        end_us: i64,
        limit: usize,
        ascending: bool,
        after: Option<HitKey>,
    ) -> Result<(usize, Vec<(HitKey, TantivyDocument)>)> {
        let filter = self.time_filter(query, start_us, end_us);
        let top = TopKeys {
            limit,
            ascending,
            after,
        };
        let mut total = 0;
        let mut candidates = Vec::new();
        let parts = self.parts_in(start_us, end_us);
        let searchers: Vec<tantivy::Searcher> = parts.iter().map(|p| p.searcher()).collect();
        for (i, searcher) in searchers.iter().enumerate() {
            let (count, hits) = searcher.search(&filter, &(Count, top)).map_err(index_err)?;
            total += count;
            candidates.extend(hits.into_iter().map(|(key, address)| (key, (i, address))));
        }
        sort_keys(&mut candidates, ascending);
        candidates.truncate(limit);
        let mut hits = Vec::with_capacity(candidates.len());
        for (key, (i, address)) in candidates {
            hits.push((key, searchers[i].doc(address).map_err(index_err)?));
        }
        Ok((total, hits))
    }

    /// Matches of `query` counted per `step_us`, buckets starting at
    /// `origin_us` (at or before `start_us`).
    pub(crate) fn histogram(
        &self,
        query: Box<dyn Query>,
        start_us: i64,
        end_us: i64,
        step_us: i64,
        origin_us: i64,
    ) -> Result<BTreeMap<i64, u64>> {
        let filter = self.time_filter(query, start_us, end_us);
        let mut out = BTreeMap::new();
        for part in self.parts_in(start_us, end_us) {
            let counts = part
                .searcher()
                .search(&filter, &TimestampBuckets { step_us, origin_us })
                .map_err(index_err)?;
            merge_counts(&mut out, counts);
        }
        Ok(out)
    }

    /// Matches of `query` appended after sequence number `after_seq` and
    /// already searchable, oldest appended first, at most `limit`; and the
    /// sequence number to follow on from.
    pub(crate) fn since(
        &self,
        query: Box<dyn Query>,
        after_seq: u64,
        limit: usize,
    ) -> Result<(Vec<(HitKey, TantivyDocument)>, u64)> {
        let visible = self.visible_seq.load(Ordering::Acquire);
        if visible <= after_seq {
            return Ok((Vec::new(), after_seq));
        }
        let field = self.schema.get_field("seq").expect("seq field");
        let range = RangeQuery::new(
            Bound::Excluded(Term::from_field_u64(field, after_seq)),
            Bound::Included(Term::from_field_u64(field, visible)),
        );
        let filter = BooleanQuery::new(vec![(Occur::Must, query), (Occur::Must, Box::new(range))]);
        // New records only ever land in active partitions (or ones being sealed).
        let parts: Vec<Arc<Part>> = {
            let parts = self.parts.read().expect("parts lock");
            parts
                .active
                .values()
                .chain(&parts.leftover)
                .map(|a| a.part.clone())
                .chain(parts.sealing.iter().cloned())
                .collect()
        };
        let all = TopKeys {
            limit: usize::MAX,
            ascending: true,
            after: None,
        };
        let searchers: Vec<tantivy::Searcher> = parts.iter().map(|p| p.searcher()).collect();
        let mut keys = Vec::new();
        for (i, searcher) in searchers.iter().enumerate() {
            let found = searcher.search(&filter, &all).map_err(index_err)?;
            keys.extend(found.into_iter().map(|(key, address)| (key, (i, address))));
        }
        keys.sort_by_key(|(key, _)| key.seq);
        let mut next = visible;
        if keys.len() > limit {
            keys.truncate(limit);
            next = keys.last().map_or(visible, |(key, _)| key.seq);
        }
        keys.sort_by_key(|(key, _)| *key);
        let mut hits = Vec::with_capacity(keys.len());
        for (key, (i, address)) in keys {
            hits.push((key, searchers[i].doc(address).map_err(index_err)?));
        }
        Ok((hits, next))
    }

    /// The sequence number of the last searchable record: a tail starts here.
    pub(crate) fn visible_seq(&self) -> u64 {
        self.visible_seq.load(Ordering::Acquire)
    }
}

fn open_active(
    schema: &Schema,
    docstore_level: Option<i32>,
    path: &Path,
    id: &str,
    day: i64,
    config: &SplitConfig,
) -> Result<Active> {
    std::fs::create_dir_all(path).map_err(io_err("create", path))?;
    let directory = MmapDirectory::open(path).map_err(index_err)?;
    let index = Index::builder()
        .schema(schema.clone())
        .settings(settings(docstore_level))
        .open_or_create(directory)
        .map_err(index_err)?;
    // Today's partition takes nearly everything, indexing on a thread per
    // two cores (up to four: one indexing thread keeps up with what the
    // other core decodes, and fewer threads make fewer segments to merge);
    // older days get one thread and tantivy's minimum.
    let current = day >= day_of(now_us()) - 1;
    let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4));
    let writer = if current {
        index.writer_with_num_threads(
            threads,
            config.writer_memory.max(threads * MIN_WRITER_MEMORY),
        )
    } else {
        index.writer_with_num_threads(1, MIN_WRITER_MEMORY)
    }
    .map_err(index_err)?;
    // While the day is written, small segments (a commit a second makes
    // one) merge sixteen at a time, not eight, and stop merging past 500k
    // records, where a search still visits few of them; sealing merges the
    // day into one. So a record is rewritten about once before sealing, not
    // at every level: a fifth less CPU per indexed log record.
    let mut policy = tantivy::merge_policy::LogMergePolicy::default();
    policy.set_max_docs_before_merge(MAX_DOCS_BEFORE_MERGE);
    policy.set_min_num_segments(MERGE_WIDTH);
    writer.set_merge_policy(Box::new(policy));
    Ok(Active {
        part: Arc::new(Part::open(id, day, index)?),
        writer: Mutex::new(writer),
        pending: AtomicUsize::new(0),
        last_append_us: AtomicI64::new(now_us()),
    })
}
