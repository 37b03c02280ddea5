//! The span store under `<data>/traces/`: spans in the time-partitioned
//! search engine ([`crate::splits`]) beside logs, in their own index, with
//! what the Jaeger query API and the correlation view ask of them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use sextant_model::{FieldValue, SpanKind, SpanRecord};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, JsonObjectOptions, NumericOptions, STORED, Schema,
    TextFieldIndexing, TextOptions, Value as _,
};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};

use crate::lucene::{Dialect, check_budget, rewrite_query};
pub use crate::splits::SplitConfig;
use crate::splits::{Engine, Kind, index_err};
use crate::{Error, Result};

/// Separates service, kind and operation in the `svc_op` keyword.
const SEP: char = '\u{1f}';

/// The most spans one trace returns.
const MAX_TRACE_SPANS: usize = 50_000;

#[derive(Debug, Clone, Copy)]
struct Fields {
    timestamp: Field,
    duration: Field,
    span: Field,
    parent_span: Field,
    trace_id: Field,
    service: Field,
    operation: Field,
    svc_op: Field,
    kind: Field,
    status: Field,
    attrs: Field,
    resource: Field,
    corr: Field,
    /// The whole span, as JSON.
    raw: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let timestamp = builder.add_i64_field("timestamp", FAST);
    builder.add_u64_field("seq", NumericOptions::default().set_fast());
    let duration = builder.add_i64_field("duration", FAST);
    // Span ids as numbers too: the dependency graph joins children to parents on them.
    let span = builder.add_u64_field("span", FAST);
    let parent_span = builder.add_u64_field("parent_span", FAST);
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    let keyword = TextOptions::default().set_indexing_options(indexing.clone());
    let trace_id = builder.add_text_field("trace_id", keyword.clone().set_stored());
    let service = builder.add_text_field("service", keyword.clone().set_fast("raw"));
    let operation = builder.add_text_field("operation", keyword.clone());
    let svc_op = builder.add_text_field("svc_op", keyword.clone());
    let kind = builder.add_text_field("kind", keyword.clone());
    let status = builder.add_text_field("status", keyword.clone());
    // Attribute values are matched whole, as Jaeger's tag search does.
    let json = JsonObjectOptions::default()
        .set_indexing_options(indexing)
        .set_expand_dots_enabled();
    let attrs = builder.add_json_field("attrs", json.clone());
    let resource = builder.add_json_field("resource", json);
    let corr = builder.add_text_field("corr", keyword);
    let raw = builder.add_bytes_field("raw", STORED);
    (
        builder.build(),
        Fields {
            timestamp,
            duration,
            span,
            parent_span,
            trace_id,
            service,
            operation,
            svc_op,
            kind,
            status,
            attrs,
            resource,
            corr,
            raw,
        },
    )
}

/// How the span store keeps spans.
#[derive(Debug, Clone)]
pub struct SpanStoreConfig {
    pub splits: SplitConfig,
    /// Attributes whose values are indexed for the correlation view.
    pub correlation_fields: Vec<String>,
}

impl Default for SpanStoreConfig {
    fn default() -> Self {
        Self {
            splits: SplitConfig::default(),
            correlation_fields: crate::logs::LogStoreConfig::default().correlation_fields,
        }
    }
}

struct SpanKindOf {
    schema: Schema,
    fields: Fields,
    correlation_fields: Vec<String>,
}

/// A hex span id as a number (0 when it is not one).
fn span_number(hex: &str) -> u64 {
    u64::from_str_radix(hex, 16).unwrap_or(0)
}

/// Attributes as a tantivy JSON object, borrowed from the span: indexing
/// copies nothing on the way. String attributes named in `skip` are left
/// out (they are indexed whole in `corr`).
#[derive(Debug, Clone, Copy)]
enum Attrs<'a> {
    Object {
        map: &'a BTreeMap<String, FieldValue>,
        skip: &'a [String],
    },
    Leaf(&'a FieldValue),
}

struct AttrsIter<'a> {
    inner: std::collections::btree_map::Iter<'a, String, FieldValue>,
    skip: &'a [String],
}

impl<'a> Iterator for AttrsIter<'a> {
    type Item = (&'a str, Attrs<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (name, value) = self.inner.next()?;
            if !(matches!(value, FieldValue::Str(_)) && self.skip.contains(name)) {
                return Some((name.as_str(), Attrs::Leaf(value)));
            }
        }
    }
}

impl<'a> tantivy::schema::Value<'a> for Attrs<'a> {
    type ArrayIter = std::iter::Empty<Self>;
    type ObjectIter = AttrsIter<'a>;

    fn as_value(&self) -> tantivy::schema::document::ReferenceValue<'a, Self> {
        use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf as L};
        match *self {
            Attrs::Object { map, skip } => ReferenceValue::Object(AttrsIter {
                inner: map.iter(),
                skip,
            }),
            Attrs::Leaf(value) => ReferenceValue::Leaf(match value {
                FieldValue::Str(s) => L::Str(s),
                FieldValue::Int(i) => L::I64(*i),
                FieldValue::Float(x) => L::F64(*x),
                FieldValue::Bool(b) => L::Bool(*b),
            }),
        }
    }
}

/// Whether WAL bytes decode to a span (for `check-data`).
pub(crate) fn decodes(bytes: &[u8]) -> bool {
    serde_json::from_slice::<SpanRecord>(bytes).is_ok()
}

impl Kind for SpanKindOf {
    type Record = SpanRecord;

    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn timestamp_us(&self, span: &SpanRecord) -> i64 {
        span.start_us
    }

    fn document(&self, span: &SpanRecord, encoded: &[u8]) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_i64(f.timestamp, span.start_us);
        doc.add_i64(f.duration, span.duration_us);
        doc.add_u64(f.span, span_number(&span.span_id));
        doc.add_u64(f.parent_span, span_number(&span.parent_span_id));
        doc.add_text(f.trace_id, &span.trace_id);
        doc.add_text(f.service, &span.service);
        doc.add_text(f.operation, &span.operation);
        doc.add_text(
            f.svc_op,
            format!(
                "{}{SEP}{}{SEP}{}",
                span.service,
                span.kind.as_str(),
                span.operation
            ),
        );
        doc.add_text(f.kind, span.kind.as_str());
        doc.add_text(f.status, span.status.as_str());
        // Span ids and correlation attributes are indexed once, whole, in
        // `corr`; the trace id has its own field.
        doc.add_text(f.corr, &span.span_id);
        for name in &self.correlation_fields {
            if let Some(FieldValue::Str(id)) = span.attributes.get(name) {
                doc.add_text(f.corr, id);
            }
        }
        doc.add_field_value(
            f.attrs,
            Attrs::Object {
                map: &span.attributes,
                skip: &self.correlation_fields,
            },
        );
        doc.add_field_value(
            f.resource,
            Attrs::Object {
                map: &span.resource,
                skip: &[],
            },
        );
        doc.add_bytes(f.raw, encoded);
        doc
    }

    fn encode(&self, span: &SpanRecord, out: &mut Vec<u8>) {
        serde_json::to_writer(out, span).expect("a span serializes");
    }

    fn decode(&self, bytes: &[u8]) -> Option<SpanRecord> {
        serde_json::from_slice(bytes).ok()
    }

    /// Spans arrive several times faster than log lines: zstd's fastest
    /// level keeps their compression off the ingest budget.
    fn docstore_level(&self) -> Option<i32> {
        Some(1)
    }
}

/// A trace search, as Jaeger's `/api/traces` asks it.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Attribute (or resource attribute) names and values, matched whole.
    pub tags: Vec<(String, String)>,
    pub min_duration_us: Option<i64>,
    pub max_duration_us: Option<i64>,
    pub start_us: i64,
    pub end_us: i64,
    /// Traces, not spans.
    pub limit: usize,
}

/// The span store.
pub struct SpanStore {
    engine: Engine<SpanKindOf>,
    fields: Fields,
    correlation_fields: Vec<String>,
}

impl std::fmt::Debug for SpanStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanStore").finish_non_exhaustive()
    }
}

impl SpanStore {
    /// Opens (or creates) the store in `dir`, indexing what its WAL holds beyond the last commit.
    pub fn open(dir: &std::path::Path, config: SpanStoreConfig) -> Result<Self> {
        let (schema, fields) = schema();
        let kind = SpanKindOf {
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

    /// Makes `spans` durable; they are searchable after the next commit.
    pub fn append(&self, spans: &[SpanRecord]) -> Result<()> {
        self.engine.append(spans)
    }

    pub fn commit(&self) -> Result<()> {
        self.engine.commit()
    }

    pub fn sync(&self) -> Result<()> {
        self.engine.sync()
    }

    /// Applies retention and seals finished days into immutable splits.
    /// How often [`Self::maintain`] should run.
    pub fn maintenance_interval(&self) -> std::time::Duration {
        self.engine.maintenance_interval()
    }

    /// The time (µs) before which every span appended is sealed and in the
    /// object store (`None` while an upload waits).
    pub fn durable_before_us(&self) -> Option<i64> {
        self.engine.durable_before_us()
    }

    pub fn maintain(&self) -> Result<()> {
        self.engine.maintain()
    }

    fn term(&self, field: Field, text: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::Basic,
        ))
    }

    fn spans_of(&self, found: &[(crate::splits::HitKey, TantivyDocument)]) -> Vec<SpanRecord> {
        found
            .iter()
            .filter_map(|(_, doc)| {
                let bytes = doc.get_first(self.fields.raw)?.as_bytes()?;
                serde_json::from_slice(bytes).ok()
            })
            .collect()
    }

    /// Every service with a span in `[start, end)`, sorted.
    pub fn services(&self, start_us: i64, end_us: i64) -> Result<Vec<String>> {
        let mut out = std::collections::BTreeSet::new();
        self.engine.each_part(start_us, end_us, |searcher| {
            for segment in searcher.segment_readers() {
                let index = segment
                    .inverted_index(self.fields.service)
                    .map_err(index_err)?;
                let mut terms = index.terms().stream().map_err(index_err)?;
                while terms.advance() {
                    out.insert(String::from_utf8_lossy(terms.key()).into_owned());
                }
            }
            Ok(())
        })?;
        Ok(out.into_iter().filter(|s| !s.is_empty()).collect())
    }

    /// The operations of `service` with their span kinds, sorted.
    pub fn operations(
        &self,
        service: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<(String, SpanKind)>> {
        let prefix = format!("{service}{SEP}");
        let mut out = std::collections::BTreeSet::new();
        self.engine.each_part(start_us, end_us, |searcher| {
            for segment in searcher.segment_readers() {
                let index = segment
                    .inverted_index(self.fields.svc_op)
                    .map_err(index_err)?;
                let mut terms = index
                    .terms()
                    .range()
                    .ge(prefix.as_bytes())
                    .into_stream()
                    .map_err(index_err)?;
                while terms.advance() {
                    let key = String::from_utf8_lossy(terms.key()).into_owned();
                    let Some(rest) = key.strip_prefix(&prefix) else {
                        break;
                    };
                    if let Some((kind, operation)) = rest.split_once(SEP) {
                        out.insert((
                            operation.to_owned(),
                            SpanKind::parse(kind).unwrap_or_default(),
                        ));
                    }
                }
            }
            Ok(())
        })?;
        Ok(out.into_iter().collect())
    }

    fn tag_query(&self, name: &str, value: &str) -> Box<dyn Query> {
        if name == "span_id" || self.correlation_fields.iter().any(|c| c == name) {
            return self.term(self.fields.corr, value);
        }
        // A tag matches a span attribute or a resource attribute, typed as
        // the value reads: text always, and a number or a bool when it is one.
        let mut terms = Vec::new();
        for field in [self.fields.attrs, self.fields.resource] {
            let base = Term::from_field_json_path(field, name, true);
            let mut typed = |append: &dyn Fn(&mut Term)| {
                let mut term = base.clone();
                append(&mut term);
                terms.push(term);
            };
            typed(&|t| t.append_type_and_str(value));
            if let Ok(i) = value.parse::<i64>() {
                typed(&|t| t.append_type_and_fast_value(i));
            } else if let Ok(x) = value.parse::<f64>() {
                typed(&|t| t.append_type_and_fast_value(x));
            }
            if let Ok(b) = value.parse::<bool>() {
                typed(&|t| t.append_type_and_fast_value(b));
            }
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|t| {
                (
                    Occur::Should,
                    Box::new(TermQuery::new(t, IndexRecordOption::Basic)) as Box<dyn Query>,
                )
            })
            .collect();
        Box::new(BooleanQuery::new(clauses))
    }

    fn trace_filter(&self, query: &TraceQuery) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(service) = &query.service {
            clauses.push((Occur::Must, self.term(self.fields.service, service)));
        }
        if let Some(operation) = &query.operation {
            clauses.push((Occur::Must, self.term(self.fields.operation, operation)));
        }
        for (name, value) in &query.tags {
            clauses.push((Occur::Must, self.tag_query(name, value)));
        }
        if query.min_duration_us.is_some() || query.max_duration_us.is_some() {
            let field = self
                .engine
                .schema()
                .get_field("duration")
                .expect("duration");
            let lower = query.min_duration_us.map_or(Bound::Unbounded, |d| {
                Bound::Included(Term::from_field_i64(field, d))
            });
            let upper = query.max_duration_us.map_or(Bound::Unbounded, |d| {
                Bound::Included(Term::from_field_i64(field, d))
            });
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        if clauses.is_empty() {
            return Box::new(AllQuery);
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// Ids of the traces with a span that matches, newest span first, at most `limit`.
    pub fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<String>> {
        // Each span read costs a document: read about as many as the
        // traces wanted (a trace may match more than once), then more.
        const MAX_PAGE: usize = 1000;
        // About 50,000 spans read at most.
        const MAX_PAGES: usize = 55;
        let mut page = query.limit.saturating_mul(2).clamp(64, MAX_PAGE);
        let mut ids: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut after = None;
        for _ in 0..MAX_PAGES {
            let (_, found) = self.engine.search(
                self.trace_filter(query),
                query.start_us,
                query.end_us,
                page,
                false,
                after,
            )?;
            for (_, doc) in &found {
                let Some(id) = doc.get_first(self.fields.trace_id).and_then(|v| v.as_str()) else {
                    continue;
                };
                if seen.insert(id.to_owned()) {
                    ids.push(id.to_owned());
                    if ids.len() >= query.limit {
                        return Ok(ids);
                    }
                }
            }
            if found.len() < page {
                break;
            }
            after = found.last().map(|(key, _)| *key);
            page = (page * 2).min(MAX_PAGE);
        }
        Ok(ids)
    }

    /// Every span of a trace, oldest first (empty when there is none).
    pub fn trace(&self, trace_id: &str) -> Result<Vec<SpanRecord>> {
        let (_, found) = self.engine.search(
            self.term(self.fields.trace_id, &trace_id.to_ascii_lowercase()),
            i64::MIN,
            i64::MAX,
            MAX_TRACE_SPANS,
            true,
            None,
        )?;
        Ok(self.spans_of(&found))
    }

    /// Spans that carry `id` as trace id, span id or a correlation
    /// attribute, in `[start, end)`, oldest first.
    pub fn correlated(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> Result<Vec<SpanRecord>> {
        let either = BooleanQuery::new(vec![
            (Occur::Should, self.term(self.fields.corr, id)),
            (Occur::Should, self.term(self.fields.trace_id, id)),
        ]);
        let (_, found) =
            self.engine
                .search(Box::new(either), start_us, end_us, limit, true, None)?;
        Ok(self.spans_of(&found))
    }

    /// Spans matching a Lucene-style query over their fields and attributes
    /// (`http.status_code:500`, `service:orders AND status:STATUS_CODE_ERROR`),
    /// newest first, and how many match.
    pub fn search(
        &self,
        text: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> Result<(usize, Vec<SpanRecord>)> {
        let (total, found) =
            self.engine
                .search(self.parse(text)?, start_us, end_us, limit, false, None)?;
        Ok((total, self.spans_of(&found)))
    }

    fn parse(&self, text: &str) -> Result<Box<dyn Query>> {
        let text = text.trim();
        check_budget(text)?;
        if text.is_empty() || text == "*" {
            return Ok(Box::new(AllQuery));
        }
        let mut ids = self.correlation_fields.clone();
        ids.push("span_id".to_owned());
        let dialect = Dialect {
            top: &[
                "trace_id",
                "service",
                "operation",
                "kind",
                "status",
                "attrs",
                "resource",
                "corr",
            ],
            fields: "attrs",
            numbers: None,
            correlation_fields: &ids,
            correlation: "corr",
        };
        let mut parser = QueryParser::new(
            self.engine.schema().clone(),
            vec![self.fields.operation, self.fields.corr],
            tantivy::tokenizer::TokenizerManager::default(),
        );
        parser.set_conjunction_by_default();
        parser
            .parse_query(&rewrite_query(text, &dialect)?)
            .map_err(|e| Error::BadQuery(format!("invalid query {text:?}: {e}")))
    }

    /// Calls between services in `[start, end)`: for every span whose parent
    /// span is of another service, one call from the parent's service to
    /// the child's; `(parent service, child service, calls)`, sorted.
    pub fn dependencies(&self, start_us: i64, end_us: i64) -> Result<Vec<(String, String, u64)>> {
        let mut service_of: HashMap<u64, String> = HashMap::new();
        let mut children: Vec<(u64, String)> = Vec::new();
        let filter = self
            .engine
            .time_filter(Box::new(AllQuery), start_us, end_us);
        self.engine.each_part(start_us, end_us, |searcher| {
            for (span, parent, service) in searcher.search(&filter, &Edges).map_err(index_err)? {
                if parent != 0 {
                    children.push((parent, service.clone()));
                }
                service_of.insert(span, service);
            }
            Ok(())
        })?;
        let mut calls: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (parent, child_service) in children {
            if let Some(parent_service) = service_of.get(&parent)
                && *parent_service != child_service
            {
                *calls
                    .entry((parent_service.clone(), child_service))
                    .or_default() += 1;
            }
        }
        Ok(calls.into_iter().map(|((p, c), n)| (p, c, n)).collect())
    }
}

/// `(span, parent span, service)` of every matching span.
struct Edges;

struct SegmentEdges {
    span: Column<u64>,
    parent: Column<u64>,
    service: StrColumn,
    names: HashMap<u64, String>,
    out: Vec<(u64, u64, String)>,
}

impl Collector for Edges {
    type Fruit = Vec<(u64, u64, String)>;
    type Child = SegmentEdges;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentEdges> {
        let fast = reader.fast_fields();
        Ok(SegmentEdges {
            span: fast.u64("span")?,
            parent: fast.u64("parent_span")?,
            service: fast.str("service")?.ok_or_else(|| {
                tantivy::TantivyError::SchemaError("service is not a fast field".to_owned())
            })?,
            names: HashMap::new(),
            out: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentEdges {
    type Fruit = Vec<(u64, u64, String)>;

    fn collect(&mut self, doc: DocId, _: Score) {
        let (Some(span), Some(parent)) = (self.span.first(doc), self.parent.first(doc)) else {
            return;
        };
        let Some(ord) = self.service.term_ords(doc).next() else {
            return;
        };
        let service = match self.names.get(&ord) {
            Some(name) => name.clone(),
            None => {
                let mut name = String::new();
                if self.service.ord_to_str(ord, &mut name).is_err() {
                    return;
                }
                self.names.insert(ord, name.clone());
                name
            }
        };
        self.out.push((span, parent, service));
    }

    fn harvest(self) -> Self::Fruit {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::SpanStatus;

    fn span(
        trace: &str,
        id: &str,
        parent: &str,
        service: &str,
        operation: &str,
        start_s: i64,
        duration_ms: i64,
    ) -> SpanRecord {
        let mut attributes = BTreeMap::new();
        attributes.insert("uuid".to_owned(), FieldValue::Str("order-1".to_owned()));
        attributes.insert("http.status_code".to_owned(), FieldValue::Int(200));
        SpanRecord {
            trace_id: trace.to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.to_owned(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            kind: if parent.is_empty() {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            status: SpanStatus::Unset,
            status_message: String::new(),
            start_us: start_s * 1_000_000,
            duration_us: duration_ms * 1000,
            attributes,
            resource: BTreeMap::from([(
                "host.name".to_owned(),
                FieldValue::Str("box-1".to_owned()),
            )]),
            scope: "test".to_owned(),
            scope_version: String::new(),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    const T1: &str = "0af7651916cd43dd8448eb211c80319c";
    const T2: &str = "1bf7651916cd43dd8448eb211c80319d";

    fn store(dir: &std::path::Path) -> SpanStore {
        let store = SpanStore::open(dir, SpanStoreConfig::default()).unwrap();
        let mut failed = span(
            T2,
            "00000000000000b1",
            "",
            "profile",
            "GET /profile",
            20,
            900,
        );
        failed.status = SpanStatus::Error;
        failed
            .attributes
            .insert("http.status_code".to_owned(), FieldValue::Int(500));
        failed.attributes.remove("uuid");
        store
            .append(&[
                span(
                    T1,
                    "00000000000000a1",
                    "",
                    "profile",
                    "GET /profile",
                    10,
                    300,
                ),
                span(
                    T1,
                    "00000000000000a2",
                    "00000000000000a1",
                    "profile",
                    "ip lookup",
                    10,
                    100,
                ),
                span(
                    T1,
                    "00000000000000a3",
                    "00000000000000a1",
                    "settings",
                    "get settings",
                    11,
                    50,
                ),
                failed,
            ])
            .unwrap();
        store.commit().unwrap();
        store
    }

    fn query() -> TraceQuery {
        TraceQuery {
            start_us: 0,
            end_us: i64::MAX,
            limit: 20,
            ..TraceQuery::default()
        }
    }

    #[test]
    fn services_operations_and_traces_as_jaeger_asks() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        assert_eq!(
            store.services(0, i64::MAX).unwrap(),
            ["profile", "settings"]
        );
        assert_eq!(
            store.operations("profile", 0, i64::MAX).unwrap(),
            [
                ("GET /profile".to_owned(), SpanKind::Server),
                ("ip lookup".to_owned(), SpanKind::Client)
            ]
        );
        let all = store.find_trace_ids(&query()).unwrap();
        assert_eq!(all, [T2, T1], "newest first");
        let by_tag = TraceQuery {
            tags: vec![("http.status_code".to_owned(), "500".to_owned())],
            ..query()
        };
        assert_eq!(store.find_trace_ids(&by_tag).unwrap(), [T2]);
        let by_resource = TraceQuery {
            tags: vec![("host.name".to_owned(), "box-1".to_owned())],
            service: Some("settings".to_owned()),
            ..query()
        };
        assert_eq!(store.find_trace_ids(&by_resource).unwrap(), [T1]);
        let slow = TraceQuery {
            min_duration_us: Some(500_000),
            ..query()
        };
        assert_eq!(store.find_trace_ids(&slow).unwrap(), [T2]);
        let by_operation = TraceQuery {
            service: Some("profile".to_owned()),
            operation: Some("ip lookup".to_owned()),
            max_duration_us: Some(100_000),
            ..query()
        };
        assert_eq!(store.find_trace_ids(&by_operation).unwrap(), [T1]);
        let trace = store.trace(&T1.to_ascii_uppercase()).unwrap();
        assert_eq!(trace.len(), 3);
        assert_eq!(trace[2].service, "settings");
        assert_eq!(
            trace[0].resource["host.name"],
            FieldValue::Str("box-1".into())
        );
        assert!(
            store
                .trace("ffffffffffffffffffffffffffffffff")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.dependencies(0, i64::MAX).unwrap(),
            [("profile".to_owned(), "settings".to_owned(), 1)]
        );
        assert_eq!(
            store.correlated("order-1", 0, i64::MAX, 100).unwrap().len(),
            3
        );
        assert_eq!(
            store
                .correlated("00000000000000b1", 0, i64::MAX, 100)
                .unwrap()
                .len(),
            1
        );
        let (n, found) = store
            .search("http.status_code:500 AND service:profile", 0, i64::MAX, 10)
            .unwrap();
        assert_eq!((n, found[0].trace_id.as_str()), (1, T2));
        assert_eq!(store.search("uuid:order-1", 0, i64::MAX, 10).unwrap().0, 3);
        // A trace id correlates its spans, over any time range.
        let by_trace = store.correlated(T1, i64::MIN, i64::MAX, 10_000).unwrap();
        assert_eq!(by_trace.len(), 3);
        assert!(
            store
                .correlated("nothing", 0, i64::MAX, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn spans_survive_a_reopen_before_commit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SpanStore::open(dir.path(), SpanStoreConfig::default()).unwrap();
            store
                .append(&[span(
                    T1,
                    "00000000000000a1",
                    "",
                    "profile",
                    "GET /profile",
                    10,
                    300,
                )])
                .unwrap();
        }
        let store = SpanStore::open(dir.path(), SpanStoreConfig::default()).unwrap();
        assert_eq!(store.trace(T1).unwrap().len(), 1);
    }
}
