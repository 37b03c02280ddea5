//! The log store under `<data>/logs/`: log records in the time-partitioned
//! search engine ([`crate::splits`]): durable in its WAL before an append
//! returns, searchable once committed (every second in the server), in daily
//! partitions that retention drops whole.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::SerializeMap as _;
use serde_json::Value;
use sextant_model::{FieldValue, Level, LogRecord};
use tantivy::query::{AllQuery, Query, QueryParser, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, JsonObjectOptions, NumericOptions, STORED, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::{TantivyDocument, Term};

use crate::lucene::{Dialect, check_budget, rewrite_query};
use crate::splits::{Engine, Kind};
pub use crate::splits::{HitKey, SplitConfig};
use crate::{Error, Result};

/// The index's fields.
#[derive(Debug, Clone, Copy)]
struct Fields {
    timestamp: Field,
    service: Field,
    level: Field,
    host: Field,
    message: Field,
    /// Every other field, stored and searchable by `name:value`.
    fields: Field,
    /// Numeric fields again, as columns: what ranges (`duration_ms:>500`) read.
    nums: Field,
    /// String field values, the service and the host: free text searches
    /// these and the message.
    all: Field,
    /// Values of the correlation fields, whole: exact request-id lookups.
    corr: Field,
    /// The correlation fields themselves, stored only (`corr` finds them).
    ids: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let timestamp = builder.add_i64_field("timestamp", FAST | STORED);
    // The engine fills it in: the WAL sequence number.
    builder.add_u64_field("seq", NumericOptions::default().set_fast());
    // Hits sort by time, not relevance: no field norms anywhere.
    let keyword = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let service = builder.add_text_field("service", keyword.clone().set_stored());
    let level = builder.add_text_field("level", keyword.clone().set_stored());
    let host = builder.add_text_field("host", keyword.clone().set_stored());
    let positions = TextFieldIndexing::default()
        .set_index_option(IndexRecordOption::WithFreqsAndPositions)
        .set_fieldnorms(false);
    let message = builder.add_text_field(
        "message",
        TextOptions::default()
            .set_indexing_options(positions.clone())
            .set_stored(),
    );
    let json = JsonObjectOptions::default()
        .set_stored()
        .set_indexing_options(positions.clone())
        .set_expand_dots_enabled();
    let fields = builder.add_json_field("fields", json);
    let nums = builder.add_json_field(
        "nums",
        JsonObjectOptions::default()
            .set_fast("raw")
            .set_expand_dots_enabled(),
    );
    let all = builder.add_text_field(
        "all",
        TextOptions::default().set_indexing_options(positions),
    );
    let corr = builder.add_text_field("corr", keyword);
    let ids = builder.add_json_field("ids", JsonObjectOptions::default().set_stored());
    (
        builder.build(),
        Fields {
            timestamp,
            service,
            level,
            host,
            message,
            fields,
            nums,
            all,
            corr,
            ids,
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
    /// Where the next page starts, when this page is full.
    pub next: Option<HitKey>,
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
    /// Only what comes after this hit in the order asked for (the next page).
    pub after: Option<HitKey>,
}

/// How the log store keeps records.
#[derive(Debug, Clone)]
pub struct LogStoreConfig {
    pub splits: SplitConfig,
    /// Fields whose values are indexed whole for exact lookups by request id.
    pub correlation_fields: Vec<String>,
}

impl Default for LogStoreConfig {
    fn default() -> Self {
        Self {
            splits: SplitConfig::default(),
            correlation_fields: [
                "trace_id",
                "span_id",
                "request_id",
                "x_request_id",
                "correlation_id",
                "uuid",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

struct LogKind {
    schema: Schema,
    fields: Fields,
    correlation_fields: Vec<String>,
}

impl Kind for LogKind {
    type Record = LogRecord;

    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn timestamp_us(&self, record: &LogRecord) -> i64 {
        record.timestamp_us
    }

    fn document(&self, record: &LogRecord, _encoded: &[u8]) -> TantivyDocument {
        use tantivy::schema::OwnedValue;
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_i64(f.timestamp, record.timestamp_us);
        doc.add_text(f.service, &record.service);
        doc.add_text(f.level, record.level.as_str());
        doc.add_text(f.host, &record.host);
        doc.add_text(f.message, &record.message);
        doc.add_text(f.all, &record.service);
        doc.add_text(f.all, &record.host);
        let mut object = BTreeMap::new();
        let mut numbers = BTreeMap::new();
        let mut ids = BTreeMap::new();
        for (name, value) in &record.fields {
            let owned = match value {
                FieldValue::Str(text) if self.correlation_fields.contains(name) => {
                    // Ids are looked up whole, never by their parts.
                    doc.add_text(f.corr, text);
                    ids.insert(name.clone(), OwnedValue::Str(text.clone()));
                    continue;
                }
                FieldValue::Str(text) => {
                    doc.add_text(f.all, text);
                    OwnedValue::Str(text.clone())
                }
                FieldValue::Int(i) => {
                    numbers.insert(name.clone(), OwnedValue::I64(*i));
                    OwnedValue::I64(*i)
                }
                FieldValue::Float(x) => {
                    numbers.insert(name.clone(), OwnedValue::F64(*x));
                    OwnedValue::F64(*x)
                }
                FieldValue::Bool(b) => OwnedValue::Bool(*b),
            };
            object.insert(name.clone(), owned);
        }
        doc.add_object(f.fields, object);
        if !numbers.is_empty() {
            doc.add_object(f.nums, numbers);
        }
        if !ids.is_empty() {
            doc.add_object(f.ids, ids);
        }
        doc
    }

    fn encode(&self, record: &LogRecord, out: &mut Vec<u8>) {
        serde_json::to_writer(out, &WalRecord(record)).expect("a log record serializes");
    }

    fn decode(&self, bytes: &[u8]) -> Option<LogRecord> {
        record_from_json(&serde_json::from_slice(bytes).ok()?)
    }
}

/// The log store.
pub struct LogStore {
    engine: Engine<LogKind>,
    fields: Fields,
    correlation_fields: Vec<String>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens (or creates) the store in `dir`, indexing what the WAL holds beyond the last commit.
    pub fn open(dir: &std::path::Path, config: LogStoreConfig) -> Result<Self> {
        let (schema, fields) = schema();
        let kind = LogKind {
            schema,
            fields,
            correlation_fields: config.correlation_fields.clone(),
        };
        Ok(Self {
            engine: Engine::open(dir, kind, config.splits)?,
            fields,
            correlation_fields: config.correlation_fields,
        })
    }

    /// Makes `records` durable (written to the WAL in one write) and queues
    /// them for the index; they are searchable after the next [`LogStore::commit`].
    pub fn append(&self, records: &[LogRecord]) -> Result<()> {
        self.engine.append(records)
    }

    /// Commits the index (everything appended so far becomes searchable)
    /// and empties the WAL it now covers.
    pub fn commit(&self) -> Result<()> {
        self.engine.commit()
    }

    /// Fsyncs the WAL.
    pub fn sync(&self) -> Result<()> {
        self.engine.sync()
    }

    /// Applies retention and seals finished days into immutable splits.
    /// How often [`Self::maintain`] should run.
    pub fn maintenance_interval(&self) -> std::time::Duration {
        self.engine.maintenance_interval()
    }

    pub fn maintain(&self) -> Result<()> {
        self.engine.maintain()
    }

    /// [`LogStore::maintain`] as if the clock read `now_us`.
    pub fn maintain_at(&self, now_us: i64) -> Result<()> {
        self.engine.maintain_at(now_us)
    }

    /// The time (µs) before which every record appended is sealed and in
    /// the object store (`None` while an upload waits): a cluster
    /// partition's owner moves its replay point by it.
    pub fn durable_before_us(&self) -> Option<i64> {
        self.engine.durable_before_us()
    }

    /// Ids of the sealed daily splits and of the partitions still written.
    pub fn partitions(&self) -> (Vec<String>, Vec<String>) {
        (self.engine.sealed_ids(), self.engine.active_ids())
    }

    /// Matching records in `[start, end)`, newest first unless asked otherwise.
    pub fn search(&self, query: &LogQuery) -> Result<LogHits> {
        let (total, found) = self.search_keyed(query)?;
        let next = (found.len() == query.limit && query.limit > 0)
            .then(|| found.last().map(|(key, _)| *key))
            .flatten();
        let hits = found.into_iter().map(|(_, record)| record).collect();
        Ok(LogHits { total, hits, next })
    }

    /// As [`LogStore::search`], each hit with its key (cluster mode merges
    /// the pages of several stores by these keys), and how many match.
    pub fn search_keyed(&self, query: &LogQuery) -> Result<(usize, Vec<(HitKey, LogRecord)>)> {
        let (total, found) = self.engine.search(
            self.parse(&query.text)?,
            query.start_us,
            query.end_us,
            query.limit,
            query.ascending,
            query.after,
        )?;
        Ok((
            total,
            found
                .iter()
                .map(|(key, doc)| (*key, self.record_of(doc)))
                .collect(),
        ))
    }

    /// Counts of matching records per `step_us` bucket in `[start, end)`,
    /// buckets aligned to multiples of the step.
    pub fn histogram(&self, query: &LogQuery, step_us: i64) -> Result<Vec<(i64, u64)>> {
        let step_us = step_us.max(1);
        let first = query.start_us - query.start_us.rem_euclid(step_us);
        self.buckets(query, step_us, first)
    }

    /// As [`LogStore::histogram`], buckets starting at the query's start.
    pub fn histogram_from_start(&self, query: &LogQuery, step_us: i64) -> Result<Vec<(i64, u64)>> {
        self.buckets(query, step_us.max(1), query.start_us)
    }

    fn buckets(&self, query: &LogQuery, step_us: i64, first: i64) -> Result<Vec<(i64, u64)>> {
        let buckets = self.engine.histogram(
            self.parse(&query.text)?,
            query.start_us,
            query.end_us,
            step_us,
            first,
        )?;
        let mut out = Vec::new();
        let mut t = first;
        while t < query.end_us {
            out.push((t, buckets.get(&t).copied().unwrap_or(0)));
            t += step_us;
        }
        Ok(out)
    }

    /// Records carrying `id` whole in a correlation field, in `[start, end)`, oldest first.
    pub fn correlated(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> Result<LogHits> {
        let term = TermQuery::new(
            Term::from_field_text(self.fields.corr, id),
            IndexRecordOption::Basic,
        );
        let (total, found) =
            self.engine
                .search(Box::new(term), start_us, end_us, limit, true, None)?;
        let hits = found.iter().map(|(_, doc)| self.record_of(doc)).collect();
        Ok(LogHits {
            total,
            hits,
            next: None,
        })
    }

    /// Where a live tail starts: records appended from now on follow this.
    pub fn tail_start(&self) -> u64 {
        self.engine.visible_seq()
    }

    /// Matching records appended after `after` (a [`LogStore::tail_start`]
    /// or the last answer's) and searchable, whatever their timestamps, in
    /// time order, at most `limit`; and where to follow on from.
    pub fn tail(&self, text: &str, after: u64, limit: usize) -> Result<(Vec<LogRecord>, u64)> {
        let (found, next) = self.engine.since(self.parse(text)?, after, limit)?;
        Ok((
            found.iter().map(|(_, doc)| self.record_of(doc)).collect(),
            next,
        ))
    }

    fn parse(&self, text: &str) -> Result<Box<dyn Query>> {
        let text = text.trim();
        check_budget(text)?;
        if text.is_empty() || text == "*" {
            return Ok(Box::new(AllQuery));
        }
        // A bare id pasted into the query bar finds its records through `corr`.
        let mut parser = QueryParser::new(
            self.engine.schema().clone(),
            vec![self.fields.message, self.fields.all, self.fields.corr],
            tantivy::tokenizer::TokenizerManager::default(),
        );
        parser.set_conjunction_by_default();
        parser
            .parse_query(&rewrite_query(text, &dialect(&self.correlation_fields))?)
            .map_err(|e| Error::BadQuery(format!("invalid query {text:?}: {e}")))
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
        let objects = [f.fields, f.ids]
            .into_iter()
            .filter_map(|field| doc.get_first(field).and_then(|v| v.as_object()));
        for object in objects {
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

/// How this index's fields meet the Lucene-style query language.
fn dialect(correlation_fields: &[String]) -> Dialect<'_> {
    Dialect {
        top: &[
            "timestamp",
            "seq",
            "service",
            "level",
            "host",
            "message",
            "fields",
            "nums",
            "all",
            "corr",
            "ids",
        ],
        fields: "fields",
        numbers: Some("nums"),
        correlation_fields,
        correlation: "corr",
    }
}

/// A record as the WAL keeps it, serialized without building a JSON tree.
/// A record as JSON bytes, the form the WAL keeps (and cluster mode sends
/// between nodes).
pub fn record_to_json(record: &LogRecord) -> Vec<u8> {
    serde_json::to_vec(&WalRecord(record)).expect("a log record serializes")
}

/// A record [`record_to_json`] wrote; `None` when the bytes are not one.
pub fn record_from_json_bytes(bytes: &[u8]) -> Option<LogRecord> {
    record_from_json(&serde_json::from_slice(bytes).ok()?)
}

struct WalRecord<'a>(&'a LogRecord);

struct WalFields<'a>(&'a BTreeMap<String, FieldValue>);

impl Serialize for WalFields<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            match value {
                FieldValue::Str(s) => map.serialize_entry(name, s)?,
                FieldValue::Int(i) => map.serialize_entry(name, i)?,
                FieldValue::Float(x) => map.serialize_entry(name, x)?,
                FieldValue::Bool(b) => map.serialize_entry(name, b)?,
            }
        }
        map.end()
    }
}

impl Serialize for WalRecord<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("t", &r.timestamp_us)?;
        map.serialize_entry("s", &r.service)?;
        map.serialize_entry("l", r.level.as_str())?;
        map.serialize_entry("h", &r.host)?;
        map.serialize_entry("m", &r.message)?;
        map.serialize_entry("f", &WalFields(&r.fields))?;
        map.end()
    }
}

/// Whether WAL bytes decode to a log record (for `check-data`).
pub(crate) fn decodes(bytes: &[u8]) -> bool {
    serde_json::from_slice(bytes)
        .ok()
        .and_then(|v| record_from_json(&v))
        .is_some()
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
            after: None,
        }
    }

    /// tantivy's query grammar recurses once per bracket: as many as the
    /// budget allows parse on the stack query threads get, one more is
    /// refused by name, and so is a control character.
    #[test]
    fn the_deepest_allowed_log_query_fits_the_query_stack() {
        use sextant_model::depth;
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
        store
            .append(&[record(10, "orders", Level::Info, "sell order", "u-1")])
            .unwrap();
        store.commit().unwrap();
        let max = depth::max_depth();
        let nest = |open: &str, n: usize| format!("{}sell{}", open.repeat(n), ")".repeat(n));
        let found = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(depth::stack_size())
                .spawn_scoped(scope, || {
                    [
                        nest("(", max),
                        nest("NOT NOT (", max),
                        nest("message:(", max),
                    ]
                    .iter()
                    .map(|q| store.search(&all(q)).map(|hits| hits.total))
                    .collect::<Vec<_>>()
                })
                .unwrap()
                .join()
                .expect("a log query within the budget overflowed the query stack")
        });
        assert_eq!(found[0].as_ref().unwrap(), &1);
        assert_eq!(found[2].as_ref().unwrap(), &1);
        let err = store
            .search(&all(&nest("(", max + 1)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("query.max_depth"), "{err}");
        let err = store.search(&all("\0uuid:x")).unwrap_err().to_string();
        assert!(err.contains("control character"), "{err}");
    }

    #[test]
    fn appended_logs_are_found_by_text_field_level_and_service() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
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
        assert_eq!(store.search(&all("uuid:\"u-1\"")).unwrap().total, 2);
        assert_eq!(
            store.search(&all("uuid:u")).unwrap().total,
            0,
            "ids match whole"
        );
        assert_eq!(store.search(&all("u-2")).unwrap().total, 1, "a bare id");
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
        // Term dictionaries are sstables: a phrase prefix walks them.
        assert_eq!(store.search(&all("\"placing se\"*")).unwrap().total, 1);
        assert_eq!(store.search(&all("message:\"sell or\"*")).unwrap().total, 2);
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
            let store = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
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
        let store = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
        let found = store.search(&all("")).unwrap();
        assert_eq!(found.total, 2, "{:?}", found.hits);
        assert_eq!(found.hits[0].message, "only in the wal");
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    }

    const DAY: i64 = 86_400;

    #[test]
    fn days_are_partitions_that_seal_into_splits_and_expire_whole() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogStoreConfig {
            splits: SplitConfig {
                retention_us: 3 * DAY * 1_000_000,
                seal_idle_us: 0,
                ..SplitConfig::default()
            },
            ..LogStoreConfig::default()
        };
        let base = 20_000 * DAY; // 2024-10-04
        let store = LogStore::open(dir.path(), config.clone()).unwrap();
        for day in 0..3 {
            store
                .append(&[
                    record(base + day * DAY + 10, "a", Level::Info, "early", "x"),
                    record(base + day * DAY + 20, "a", Level::Info, "late", "y"),
                ])
                .unwrap();
        }
        store.commit().unwrap();
        assert_eq!(store.partitions().1.len(), 3);
        // Two hours into the third day: the first two are finished.
        store
            .maintain_at((base + 2 * DAY + 7200) * 1_000_000)
            .unwrap();
        let (sealed, active) = store.partitions();
        assert_eq!(sealed, ["20241004-1", "20241005-1"]);
        assert_eq!(active, ["20241006-1"]);
        assert!(dir.path().join("splits/20241004-1/meta.json").exists());
        assert!(!dir.path().join("active/20241004-1").exists());
        assert_eq!(store.search(&all("")).unwrap().total, 6);
        let second_day = LogQuery {
            start_us: (base + DAY) * 1_000_000,
            end_us: (base + DAY + 15) * 1_000_000,
            ..all("early")
        };
        assert_eq!(store.search(&second_day).unwrap().total, 1);
        // A late record for a sealed day opens a new partition of that day.
        store
            .append(&[record(base + 30, "a", Level::Warn, "straggler", "z")])
            .unwrap();
        store.commit().unwrap();
        assert_eq!(store.search(&all("straggler")).unwrap().total, 1);
        assert_eq!(store.partitions().1, ["20241004-2", "20241006-1"]);
        store
            .maintain_at((base + 2 * DAY + 7300) * 1_000_000)
            .unwrap();
        assert_eq!(
            store.partitions().0,
            ["20241004-1", "20241004-2", "20241005-1"]
        );
        assert_eq!(store.search(&all("")).unwrap().total, 7);
        drop(store);
        let store = LogStore::open(dir.path(), config).unwrap();
        assert_eq!(store.search(&all("")).unwrap().total, 7);
        assert_eq!(store.search(&all("uuid:z")).unwrap().total, 1);
        // Retention of three days, four days after the first: it goes whole
        // (and the third day, finished by then, is sealed).
        store
            .maintain_at((base + 4 * DAY + 10) * 1_000_000)
            .unwrap();
        assert_eq!(
            store.partitions(),
            (
                vec!["20241005-1".to_owned(), "20241006-1".to_owned()],
                vec![]
            )
        );
        assert_eq!(store.search(&all("")).unwrap().total, 4);
        assert!(!dir.path().join("splits/20241004-1").exists());
    }

    #[test]
    fn pages_follow_a_cursor_without_overlap_in_both_orders() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
        // Pairs of records share a timestamp: the sequence number breaks ties.
        let records: Vec<LogRecord> = (0..25)
            .map(|i| record(100 + i / 2, "a", Level::Info, &format!("line {i}"), "u"))
            .collect();
        store.append(&records[..13]).unwrap();
        store.commit().unwrap();
        store.append(&records[13..]).unwrap();
        store.commit().unwrap();
        for ascending in [false, true] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .search(&LogQuery {
                        limit: 10,
                        ascending,
                        after,
                        ..all("line")
                    })
                    .unwrap();
                assert_eq!(page.total, 25);
                seen.extend(page.hits.iter().map(|h| h.message.clone()));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            let mut expected: Vec<String> = (0..25).map(|i| format!("line {i}")).collect();
            if !ascending {
                expected.reverse();
            }
            assert_eq!(seen, expected, "ascending: {ascending}");
        }
    }

    #[test]
    fn a_tail_follows_appends_not_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
        store
            .append(&[record(50, "a", Level::Info, "before the tail", "u")])
            .unwrap();
        store.commit().unwrap();
        let start = store.tail_start();
        store
            .append(&[
                record(60, "a", Level::Info, "new", "u"),
                record(5, "a", Level::Error, "new but stamped long ago", "u"),
                record(70, "b", Level::Info, "other", "u"),
            ])
            .unwrap();
        let (none, same) = store.tail("new", start, 10).unwrap();
        assert!(none.is_empty(), "not searchable before the commit");
        assert_eq!(same, start);
        store.commit().unwrap();
        let (found, next) = store.tail("new", start, 10).unwrap();
        let messages: Vec<&str> = found.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["new but stamped long ago", "new"]);
        let (first, after_first) = store.tail("", start, 1).unwrap();
        assert_eq!(first[0].message, "new");
        let (rest, _) = store.tail("", after_first, 10).unwrap();
        assert_eq!(rest.len(), 2);
        assert!(store.tail("new", next, 10).unwrap().0.is_empty());
    }

    #[test]
    fn a_wal_replayed_after_its_commit_is_not_indexed_twice() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        let saved = {
            let store = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
            store
                .append(&[
                    record(1, "a", Level::Info, "one", "x"),
                    record(DAY + 1, "a", Level::Info, "two", "x"),
                ])
                .unwrap();
            let saved = std::fs::read(&wal).unwrap();
            // A crash between the partitions' commit and the WAL's truncation.
            store.commit().unwrap();
            saved
        };
        std::fs::write(&wal, saved).unwrap();
        let store = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
        assert_eq!(store.search(&all("")).unwrap().total, 2);
        assert_eq!(store.correlated("x", 0, i64::MAX, 10).unwrap().total, 2);
        assert_eq!(store.correlated("X", 0, i64::MAX, 10).unwrap().total, 0);
    }
}
