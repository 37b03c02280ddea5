//! The log store under `<data>/logs/`: a write-ahead log that makes an
//! append durable before it is acknowledged, and a tantivy index that makes
//! it searchable once committed (in the background, every second by default).
//!
//! The index's commit payload records that everything in the WAL up to the
//! commit is indexed; after a crash the WAL's remaining records are indexed
//! again at open, so nothing acknowledged is lost and nothing is indexed twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value};
use sextant_model::{FieldValue, Level, LogRecord};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
};

use crate::{Error, Result};

/// Memory tantivy may use for documents not yet committed.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

/// The index's fields.
#[derive(Debug, Clone, Copy)]
struct Fields {
    timestamp: Field,
    service: Field,
    level: Field,
    host: Field,
    message: Field,
    fields: Field,
    /// The message and every text field value: what free text searches.
    all: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let timestamp = builder.add_i64_field("timestamp", INDEXED | FAST | STORED);
    let service = builder.add_text_field("service", STRING | STORED | FAST);
    let level = builder.add_text_field("level", STRING | STORED | FAST);
    let host = builder.add_text_field("host", STRING | STORED);
    // Hits sort by time, not relevance: no field norms to keep.
    let positions = TextFieldIndexing::default()
        .set_index_option(IndexRecordOption::WithFreqsAndPositions)
        .set_fieldnorms(false);
    let message = builder.add_text_field(
        "message",
        TextOptions::default()
            .set_indexing_options(positions.clone())
            .set_stored(),
    );
    // Fast too: numeric ranges (`duration_ms:>500`) on JSON paths need the columns.
    let json = JsonObjectOptions::default()
        .set_stored()
        .set_fast("raw")
        .set_indexing_options(positions.clone())
        .set_expand_dots_enabled();
    let fields = builder.add_json_field("fields", json);
    let all = builder.add_text_field(
        "all",
        TextOptions::default().set_indexing_options(positions),
    );
    (
        builder.build(),
        Fields {
            timestamp,
            service,
            level,
            host,
            message,
            fields,
            all,
        },
    )
}

/// One search's answer.
#[derive(Debug, Clone, Default)]
pub struct LogHits {
    /// Every match in the time range.
    pub total: usize,
    /// The records asked for, in the order asked for.
    pub hits: Vec<LogRecord>,
}

/// What to search.
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// Lucene-style: free text, `field:value`, phrases, AND/OR/NOT, ranges. Empty: everything.
    pub text: String,
    /// Microseconds, inclusive.
    pub start_us: i64,
    /// Microseconds, exclusive.
    pub end_us: i64,
    pub limit: usize,
    /// Oldest first instead of newest first.
    pub ascending: bool,
}

struct Wal {
    path: PathBuf,
    file: File,
    /// Records written since the last index commit.
    pending: usize,
}

/// The log store.
pub struct LogStore {
    index: Index,
    fields: Fields,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    /// Held while appending and while committing, so a commit covers
    /// exactly what the WAL holds.
    wal: Mutex<Wal>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

fn index_err(err: impl std::fmt::Display) -> Error {
    Error::Index(err.to_string())
}

fn io_err(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("{context} {}", path.display());
    move |source| Error::Io { context, source }
}

impl LogStore {
    /// Opens (or creates) the store in `dir`, indexing what the WAL holds beyond the last commit.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_dir = dir.join("index");
        std::fs::create_dir_all(&index_dir).map_err(io_err("create", &index_dir))?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(&index_dir).map_err(index_err)?;
        // zstd over large doc-store blocks: logs repeat themselves, and a
        // search reads few documents.
        let settings = tantivy::IndexSettings {
            docstore_blocksize: 256 * 1024,
            docstore_compression: tantivy::store::Compressor::Zstd(
                tantivy::store::ZstdCompressor::default(),
            ),
            ..tantivy::IndexSettings::default()
        };
        let index = Index::builder()
            .schema(schema)
            .settings(settings)
            .open_or_create(directory)
            .map_err(index_err)?;
        let writer: IndexWriter = index.writer(WRITER_MEMORY).map_err(index_err)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_err)?;
        let wal_path = dir.join("wal");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&wal_path)
            .map_err(io_err("open", &wal_path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_err("read", &wal_path))?;
        let (records, valid) = decode_wal(&bytes);
        if valid < bytes.len() {
            // A torn last write: nothing after it was acknowledged.
            file.set_len(valid as u64)
                .map_err(io_err("truncate", &wal_path))?;
        }
        let store = Self {
            index,
            fields,
            reader,
            writer: Mutex::new(writer),
            wal: Mutex::new(Wal {
                path: wal_path,
                file,
                pending: 0,
            }),
        };
        {
            let writer = store.writer.lock().expect("writer lock");
            for record in &records {
                writer
                    .add_document(store.document(record))
                    .map_err(index_err)?;
            }
        }
        store.wal.lock().expect("wal lock").pending = records.len();
        store.commit()?;
        Ok(store)
    }

    /// Makes `records` durable (written to the WAL in one write) and queues
    /// them for the index; they are searchable after the next [`LogStore::commit`].
    pub fn append(&self, records: &[LogRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::new();
        for record in records {
            let payload = record_json(record).to_string();
            frames.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frames.extend_from_slice(&crc32fast::hash(payload.as_bytes()).to_le_bytes());
            frames.extend_from_slice(payload.as_bytes());
        }
        let mut wal = self.wal.lock().expect("wal lock");
        let path = wal.path.clone();
        wal.file
            .write_all(&frames)
            .map_err(io_err("write", &path))?;
        wal.pending += records.len();
        let writer = self.writer.lock().expect("writer lock");
        for record in records {
            writer
                .add_document(self.document(record))
                .map_err(index_err)?;
        }
        Ok(())
    }

    /// Commits the index (everything appended so far becomes searchable)
    /// and empties the WAL it now covers.
    pub fn commit(&self) -> Result<()> {
        let mut wal = self.wal.lock().expect("wal lock");
        if wal.pending == 0 {
            return Ok(());
        }
        self.writer
            .lock()
            .expect("writer lock")
            .commit()
            .map_err(index_err)?;
        let path = wal.path.clone();
        wal.file.set_len(0).map_err(io_err("truncate", &path))?;
        wal.file.sync_all().map_err(io_err("fsync", &path))?;
        wal.pending = 0;
        drop(wal);
        self.reader.reload().map_err(index_err)
    }

    /// Fsyncs the WAL.
    pub fn sync(&self) -> Result<()> {
        let wal = self.wal.lock().expect("wal lock");
        wal.file.sync_data().map_err(io_err("fsync", &wal.path))
    }

    fn document(&self, record: &LogRecord) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_i64(f.timestamp, record.timestamp_us);
        doc.add_text(f.service, &record.service);
        doc.add_text(f.level, record.level.as_str());
        doc.add_text(f.host, &record.host);
        doc.add_text(f.message, &record.message);
        for text in [&record.message, &record.service, &record.host] {
            doc.add_text(f.all, text);
        }
        let mut object = BTreeMap::new();
        for (name, value) in &record.fields {
            if let FieldValue::Str(text) = value {
                doc.add_text(f.all, text);
            }
            object.insert(name.clone(), owned_value(value));
        }
        doc.add_object(f.fields, object);
        doc
    }

    /// Matching records in `[start, end)`, newest first unless asked otherwise.
    pub fn search(&self, query: &LogQuery) -> Result<LogHits> {
        let searcher = self.reader.searcher();
        let filter = self.filter(query)?;
        let total = searcher.search(&filter, &Count).map_err(index_err)?;
        let order = if query.ascending {
            Order::Asc
        } else {
            Order::Desc
        };
        let top =
            TopDocs::with_limit(query.limit.max(1)).order_by_fast_field::<i64>("timestamp", order);
        let found: Vec<(Option<i64>, DocAddress)> =
            searcher.search(&filter, &top).map_err(index_err)?;
        let mut hits = Vec::with_capacity(found.len());
        for (_, address) in found.into_iter().take(query.limit) {
            let doc: TantivyDocument = searcher.doc(address).map_err(index_err)?;
            hits.push(self.record_of(&doc));
        }
        Ok(LogHits { total, hits })
    }

    /// Counts of matching records per `step_us` bucket in `[start, end)`.
    pub fn histogram(&self, query: &LogQuery, step_us: i64) -> Result<Vec<(i64, u64)>> {
        let step_us = step_us.max(1);
        let searcher = self.reader.searcher();
        let filter = self.filter(query)?;
        let buckets = searcher
            .search(&filter, &TimestampBuckets { step_us })
            .map_err(index_err)?;
        let first = query.start_us - query.start_us.rem_euclid(step_us);
        let mut out = Vec::new();
        let mut t = first;
        while t < query.end_us {
            out.push((t, buckets.get(&t).copied().unwrap_or(0)));
            t += step_us;
        }
        Ok(out)
    }

    fn filter(&self, query: &LogQuery) -> Result<Box<dyn Query>> {
        let text = query.text.trim();
        let user: Box<dyn Query> = if text.is_empty() || text == "*" {
            Box::new(AllQuery)
        } else {
            let mut parser =
                QueryParser::for_index(&self.index, vec![self.fields.all, self.fields.fields]);
            parser.set_conjunction_by_default();
            parser
                .parse_query(&rewrite_query(text))
                .map_err(|e| Error::BadQuery(format!("invalid query {text:?}: {e}")))?
        };
        let range = RangeQuery::new(
            Bound::Included(Term::from_field_i64(self.fields.timestamp, query.start_us)),
            Bound::Excluded(Term::from_field_i64(self.fields.timestamp, query.end_us)),
        );
        Ok(Box::new(BooleanQuery::new(vec![
            (Occur::Must, user),
            (Occur::Must, Box::new(range)),
        ])))
    }

    fn record_of(&self, doc: &TantivyDocument) -> LogRecord {
        use tantivy::schema::Value as _;
        let f = &self.fields;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let mut fields = BTreeMap::new();
        if let Some(object) = doc.get_first(f.fields).and_then(|v| v.as_object()) {
            for (name, value) in object {
                let value = if let Some(s) = value.as_str() {
                    FieldValue::Str(s.to_owned())
                } else if let Some(i) = value.as_i64() {
                    FieldValue::Int(i)
                } else if let Some(u) = value.as_u64() {
                    FieldValue::Int(i64::try_from(u).unwrap_or(i64::MAX))
                } else if let Some(x) = value.as_f64() {
                    FieldValue::Float(x)
                } else if let Some(b) = value.as_bool() {
                    FieldValue::Bool(b)
                } else {
                    continue;
                };
                fields.insert(name.to_owned(), value);
            }
        }
        LogRecord {
            timestamp_us: doc
                .get_first(f.timestamp)
                .and_then(|v| v.as_i64())
                .unwrap_or_default(),
            service: text(f.service),
            level: Level::parse(&text(f.level)).unwrap_or_default(),
            host: text(f.host),
            message: text(f.message),
            fields,
        }
    }
}

/// The index's own field names; any other `name:` is a path in `fields`.
const TOP_FIELDS: [&str; 7] = [
    "timestamp",
    "service",
    "level",
    "host",
    "message",
    "fields",
    "all",
];

/// `uuid:x` as `fields.uuid:x` (a token's leading `-`, `+` or `(` kept).
fn json_path(token: &str) -> String {
    let start = token.len() - token.trim_start_matches(['-', '+', '(']).len();
    let (lead, rest) = token.split_at(start);
    match rest.split_once(':') {
        Some((name, _))
            if !name.is_empty()
                && !name.starts_with('"')
                && !TOP_FIELDS.contains(&name)
                && !name.starts_with("fields.") =>
        {
            format!("{lead}fields.{rest}")
        }
        _ => token.to_owned(),
    }
}

/// Lucene's `NOT x` and `a AND NOT x` as tantivy's `-x` (with `*` in front
/// when nothing positive is left), outside quotes.
fn rewrite_query(text: &str) -> String {
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    let mut out: Vec<String> = Vec::new();
    let mut negate = false;
    for token in tokens.into_iter().map(|t| json_path(&t)) {
        if token == "NOT" {
            if out.last().is_some_and(|t| t == "AND") {
                out.pop();
            }
            negate = true;
            continue;
        }
        if negate {
            out.push(format!("-{token}"));
            negate = false;
        } else {
            out.push(token);
        }
    }
    let positive = out
        .iter()
        .any(|t| !t.starts_with('-') && !matches!(t.as_str(), "AND" | "OR"));
    if !positive {
        out.insert(0, "*".to_owned());
    }
    out.join(" ")
}

fn owned_value(value: &FieldValue) -> tantivy::schema::OwnedValue {
    use tantivy::schema::OwnedValue;
    match value {
        FieldValue::Str(s) => OwnedValue::Str(s.clone()),
        FieldValue::Int(i) => OwnedValue::I64(*i),
        FieldValue::Float(x) => OwnedValue::F64(*x),
        FieldValue::Bool(b) => OwnedValue::Bool(*b),
    }
}

/// A record as the WAL keeps it.
fn record_json(record: &LogRecord) -> Value {
    let fields: Map<String, Value> = record
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), value.to_json()))
        .collect();
    serde_json::json!({
        "t": record.timestamp_us,
        "s": record.service,
        "l": record.level.as_str(),
        "h": record.host,
        "m": record.message,
        "f": fields,
    })
}

fn record_from_json(value: &Value) -> Option<LogRecord> {
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut fields = BTreeMap::new();
    for (name, v) in value.get("f")?.as_object()? {
        if let Some(field) = FieldValue::from_json(v) {
            fields.insert(name.clone(), field);
        }
    }
    Some(LogRecord {
        timestamp_us: value.get("t")?.as_i64()?,
        service: text("s"),
        level: Level::parse(&text("l")).unwrap_or_default(),
        host: text("h"),
        message: text("m"),
        fields,
    })
}

/// The records of a WAL and the length of its valid prefix.
fn decode_wal(bytes: &[u8]) -> (Vec<LogRecord>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(record) = serde_json::from_slice(payload)
            .ok()
            .as_ref()
            .and_then(record_from_json)
        else {
            break;
        };
        records.push(record);
        at += 8 + len;
    }
    (records, at)
}

/// Counts documents per time bucket from the timestamp column.
struct TimestampBuckets {
    step_us: i64,
}

struct SegmentBuckets {
    column: tantivy::columnar::Column<i64>,
    step_us: i64,
    counts: BTreeMap<i64, u64>,
}

impl tantivy::collector::Collector for TimestampBuckets {
    type Fruit = BTreeMap<i64, u64>;
    type Child = SegmentBuckets;

    fn for_segment(
        &self,
        _segment: tantivy::SegmentOrdinal,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<SegmentBuckets> {
        Ok(SegmentBuckets {
            column: reader.fast_fields().i64("timestamp")?,
            step_us: self.step_us,
            counts: BTreeMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<BTreeMap<i64, u64>>) -> tantivy::Result<BTreeMap<i64, u64>> {
        let mut out = BTreeMap::new();
        for fruit in fruits {
            for (t, n) in fruit {
                *out.entry(t).or_default() += n;
            }
        }
        Ok(out)
    }
}

impl tantivy::collector::SegmentCollector for SegmentBuckets {
    type Fruit = BTreeMap<i64, u64>;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        if let Some(t) = self.column.first(doc) {
            // Buckets are aligned to multiples of the step, as the histogram API reports them.
            let bucket = t - t.rem_euclid(self.step_us);
            *self.counts.entry(bucket).or_default() += 1;
        }
    }

    fn harvest(self) -> BTreeMap<i64, u64> {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(t_s: i64, service: &str, level: Level, message: &str, uuid: &str) -> LogRecord {
        let mut fields = BTreeMap::new();
        fields.insert("uuid".to_owned(), FieldValue::Str(uuid.to_owned()));
        fields.insert("order.qty".to_owned(), FieldValue::Int(t_s));
        LogRecord {
            timestamp_us: t_s * 1_000_000,
            service: service.to_owned(),
            level,
            host: "h1".to_owned(),
            message: message.to_owned(),
            fields,
        }
    }

    fn all(text: &str) -> LogQuery {
        LogQuery {
            text: text.to_owned(),
            start_us: 0,
            end_us: i64::MAX,
            limit: 100,
            ascending: false,
        }
    }

    #[test]
    fn appended_logs_are_found_by_text_field_level_and_service() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store
            .append(&[
                record(10, "gateway", Level::Info, "placing sell order", "u-1"),
                record(20, "orders", Level::Error, "sell order failed", "u-1"),
                record(30, "orders", Level::Info, "buy order placed", "u-2"),
            ])
            .unwrap();
        assert_eq!(
            store.search(&all("")).unwrap().total,
            0,
            "searchable only after commit"
        );
        store.commit().unwrap();
        let found = store.search(&all("sell")).unwrap();
        assert_eq!(found.total, 2);
        assert_eq!(found.hits[0].message, "sell order failed", "newest first");
        assert_eq!(store.search(&all("uuid:u-1")).unwrap().total, 2);
        assert_eq!(store.search(&all("level:ERROR")).unwrap().total, 1);
        assert_eq!(
            store
                .search(&all("service:orders AND NOT failed"))
                .unwrap()
                .total,
            1
        );
        assert_eq!(store.search(&all("NOT failed")).unwrap().total, 2);
        assert_eq!(
            store
                .search(&all("orders NOT (failed OR placed)"))
                .unwrap()
                .total,
            0
        );
        assert_eq!(store.search(&all("gateway OR failed")).unwrap().total, 2);
        assert_eq!(store.search(&all("\"placed order\"")).unwrap().total, 0);
        assert_eq!(store.search(&all("\"buy order placed\"")).unwrap().total, 1);
        assert_eq!(store.search(&all("order.qty:[15 TO 40]")).unwrap().total, 2);
        let window = LogQuery {
            start_us: 15_000_000,
            end_us: 30_000_000,
            ..all("")
        };
        assert_eq!(store.search(&window).unwrap().total, 1);
        let hit = &store.search(&all("failed")).unwrap().hits[0];
        assert_eq!(hit.fields["uuid"], FieldValue::Str("u-1".into()));
        assert_eq!(hit.fields["order.qty"], FieldValue::Int(20));
        assert_eq!((hit.service.as_str(), hit.level), ("orders", Level::Error));
        let buckets = store
            .histogram(
                &LogQuery {
                    start_us: 0,
                    end_us: 40_000_000,
                    ..all("order")
                },
                20_000_000,
            )
            .unwrap();
        assert_eq!(buckets, [(0, 1), (20_000_000, 2)]);
        let err = store.search(&all("level:(")).unwrap_err().to_string();
        assert!(err.contains("invalid query"), "{err}");
    }

    #[test]
    fn acknowledged_logs_survive_a_crash_before_commit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            store
                .append(&[record(1, "a", Level::Info, "committed", "x")])
                .unwrap();
            store.commit().unwrap();
            store
                .append(&[record(2, "a", Level::Warn, "only in the wal", "y")])
                .unwrap();
            // Dropped without a commit, as a kill -9 would leave it.
        }
        // A torn frame at the end is cut off.
        let wal = dir.path().join("wal");
        let mut bytes = std::fs::read(&wal).unwrap();
        bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
        std::fs::write(&wal, bytes).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let found = store.search(&all("")).unwrap();
        assert_eq!(found.total, 2, "{:?}", found.hits);
        assert_eq!(found.hits[0].message, "only in the wal");
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    }
}
