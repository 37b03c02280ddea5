//! A tenant's view of the stores: what a token with a `tenant` writes is
//! stamped with it, and what it reads is only what carries it. The wrappers
//! sit between the handlers and the stores ([`crate::http::AppState::stores`]
//! hands them out inside a tenant request), so every read path is filtered
//! in one place: a `tenant="..."` matcher on every metrics selection, a
//! `tenant:"..."` clause on every log query, a `tenant` tag on every trace
//! search, and the records of trace, correlation and tail lookups checked
//! one by one.

use std::collections::BTreeMap;
use std::sync::Arc;

use sextant_ingest::tenant::{TENANT_KEY, log_is, span_is, stamp_labels, stamp_log, stamp_span};
use sextant_model::{Labels, LogRecord, MatchOp, Matcher, SpanKind, SpanRecord};
use sextant_storage::logs::{LogHits, LogQuery};
use sextant_storage::spans::TraceQuery;
use sextant_storage::{
    AppendReport, LazySeries, LogReader, LogWriter, MetricMetadata, MetricsReader, MetricsWriter,
    Result, SeriesSamples, SpanReader, SpanWriter,
};

use crate::http::Stores;

/// Whether `name` may name a tenant: it goes into queries as it is.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `stores` as `tenant` sees them.
pub fn stores_for(stores: &Stores, tenant: &Arc<str>) -> Stores {
    let t = || Tenanted {
        tenant: tenant.clone(),
    };
    Stores {
        metrics_writer: Arc::new(With(stores.metrics_writer.clone(), t())),
        metrics_reader: Arc::new(With(stores.metrics_reader.clone(), t())),
        logs_writer: Arc::new(With(stores.logs_writer.clone(), t())),
        logs_reader: Arc::new(With(stores.logs_reader.clone(), t())),
        spans_writer: Arc::new(With(stores.spans_writer.clone(), t())),
        spans_reader: Arc::new(With(stores.spans_reader.clone(), t())),
    }
}

#[derive(Clone)]
struct Tenanted {
    tenant: Arc<str>,
}

impl Tenanted {
    fn matchers(&self, matchers: &[Matcher]) -> Vec<Matcher> {
        let mut out: Vec<Matcher> = matchers
            .iter()
            .filter(|m| m.name != TENANT_KEY)
            .cloned()
            .collect();
        out.push(
            Matcher::new(TENANT_KEY, MatchOp::Equal, &*self.tenant)
                .expect("an equality matcher has no regex"),
        );
        out
    }

    fn log_query(&self, query: &LogQuery) -> LogQuery {
        let mut query = query.clone();
        query.text = self.log_text(&query.text);
        query
    }

    fn log_text(&self, text: &str) -> String {
        let clause = format!("{TENANT_KEY}:\"{}\"", self.tenant);
        if text.trim().is_empty() {
            clause
        } else {
            format!("({text}) AND {clause}")
        }
    }
}

/// A store seen through a tenant.
struct With<S: ?Sized>(Arc<S>, Tenanted);

impl MetricsWriter for With<dyn MetricsWriter> {
    fn append(&self, batch: &[SeriesSamples]) -> Result<AppendReport> {
        let stamped: Vec<SeriesSamples> = batch
            .iter()
            .map(|s| SeriesSamples {
                labels: stamp_labels(&s.labels, &self.1.tenant),
                samples: s.samples.clone(),
            })
            .collect();
        self.0.append(&stamped)
    }

    fn set_metadata(&self, metric: &str, metadata: MetricMetadata) -> Result<()> {
        self.0.set_metadata(metric, metadata)
    }

    fn append_start_zeros(&self, batch: &sextant_storage::PairBatch<'_>) -> Result<u64> {
        let stamped: Vec<SeriesSamples> = batch
            .iter()
            .map(|s| SeriesSamples {
                labels: stamp_labels(&s.labels(), &self.1.tenant),
                samples: s.samples.to_vec(),
            })
            .collect();
        self.0
            .append_start_zeros(&sextant_storage::PairBatch::of_series(&stamped))
    }

    fn append_histograms(
        &self,
        batch: &[sextant_storage::SeriesHistograms],
    ) -> Result<AppendReport> {
        let stamped: Vec<sextant_storage::SeriesHistograms> = batch
            .iter()
            .map(|s| sextant_storage::SeriesHistograms {
                labels: stamp_labels(&s.labels, &self.1.tenant),
                samples: s.samples.clone(),
            })
            .collect();
        self.0.append_histograms(&stamped)
    }

    fn append_exemplars(&self, exemplars: &[(Labels, sextant_model::Exemplar)]) -> Result<usize> {
        let stamped: Vec<(Labels, sextant_model::Exemplar)> = exemplars
            .iter()
            .map(|(labels, e)| (stamp_labels(labels, &self.1.tenant), e.clone()))
            .collect();
        self.0.append_exemplars(&stamped)
    }
}

impl MetricsReader for With<dyn MetricsReader> {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>> {
        self.0.select(&self.1.matchers(matchers), mint, maxt)
    }

    fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<LazySeries<'_>>> {
        self.0.select_lazy(&self.1.matchers(matchers), mint, maxt)
    }

    fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>> {
        self.0.series(&self.1.matchers(matchers), mint, maxt)
    }

    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>> {
        self.0.label_names(&self.1.matchers(matchers), mint, maxt)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>> {
        self.0
            .label_values(name, &self.1.matchers(matchers), mint, maxt)
    }

    fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(Labels, Vec<sextant_model::Exemplar>)>> {
        let sets: Vec<Vec<Matcher>> = matcher_sets.iter().map(|m| self.1.matchers(m)).collect();
        self.0.exemplars(&sets, start_ms, end_ms)
    }

    fn results_epoch(&self, cached_until_ms: i64) -> Option<u64> {
        self.0.results_epoch(cached_until_ms)
    }

    /// Only the metrics the tenant has series of.
    fn metadata(&self) -> BTreeMap<String, MetricMetadata> {
        let names = self
            .0
            .label_values("__name__", &self.1.matchers(&[]), i64::MIN, i64::MAX)
            .unwrap_or_default();
        let mut all = self.0.metadata();
        all.retain(|name, _| names.binary_search(name).is_ok());
        all
    }
}

impl LogWriter for With<dyn LogWriter> {
    fn append_logs(&self, records: &[LogRecord]) -> Result<()> {
        let mut stamped = records.to_vec();
        stamped
            .iter_mut()
            .for_each(|r| stamp_log(r, &self.1.tenant));
        self.0.append_logs(&stamped)
    }
}

impl LogReader for With<dyn LogReader> {
    fn search_logs(&self, query: &LogQuery) -> Result<LogHits> {
        self.0.search_logs(&self.1.log_query(query))
    }

    fn log_histogram(&self, query: &LogQuery, step_us: i64) -> Result<Vec<(i64, u64)>> {
        self.0.log_histogram(&self.1.log_query(query), step_us)
    }

    fn log_histogram_from_start(
        &self,
        query: &LogQuery,
        step_us: i64,
    ) -> Result<Option<Vec<(i64, u64)>>> {
        self.0
            .log_histogram_from_start(&self.1.log_query(query), step_us)
    }

    fn log_tail_start(&self) -> u64 {
        self.0.log_tail_start()
    }

    fn tail_logs(&self, text: &str, after: u64, limit: usize) -> Result<(Vec<LogRecord>, u64)> {
        self.0.tail_logs(&self.1.log_text(text), after, limit)
    }

    fn correlated_logs(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> Result<LogHits> {
        let mut hits = self.0.correlated_logs(id, start_us, end_us, limit)?;
        hits.hits.retain(|r| log_is(r, &self.1.tenant));
        hits.total = hits.hits.len();
        Ok(hits)
    }
}

impl SpanWriter for With<dyn SpanWriter> {
    fn append_spans(&self, spans: &[SpanRecord]) -> Result<()> {
        let mut stamped = spans.to_vec();
        stamped
            .iter_mut()
            .for_each(|s| stamp_span(s, &self.1.tenant));
        self.0.append_spans(&stamped)
    }
}

impl With<dyn SpanReader> {
    /// Whether the tenant has a span of `service` in the range.
    fn has_service(&self, service: &str, start_us: i64, end_us: i64) -> Result<bool> {
        let query = TraceQuery {
            service: Some(service.to_owned()),
            operation: None,
            tags: vec![(TENANT_KEY.to_owned(), self.1.tenant.to_string())],
            min_duration_us: None,
            max_duration_us: None,
            start_us,
            end_us,
            limit: 1,
        };
        Ok(!self.0.find_trace_ids(&query)?.is_empty())
    }
}

impl SpanReader for With<dyn SpanReader> {
    fn services(&self, start_us: i64, end_us: i64) -> Result<Vec<String>> {
        let mut mine = Vec::new();
        for service in self.0.services(start_us, end_us)? {
            if self.has_service(&service, start_us, end_us)? {
                mine.push(service);
            }
        }
        Ok(mine)
    }

    fn operations(
        &self,
        service: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<(String, SpanKind)>> {
        if !self.has_service(service, start_us, end_us)? {
            return Ok(Vec::new());
        }
        self.0.operations(service, start_us, end_us)
    }

    fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<String>> {
        let mut query = query.clone();
        query.tags.retain(|(k, _)| k != TENANT_KEY);
        query
            .tags
            .push((TENANT_KEY.to_owned(), self.1.tenant.to_string()));
        self.0.find_trace_ids(&query)
    }

    fn trace(&self, trace_id: &str) -> Result<Vec<SpanRecord>> {
        let mut spans = self.0.trace(trace_id)?;
        spans.retain(|s| span_is(s, &self.1.tenant));
        Ok(spans)
    }

    /// Edges between the tenant's services.
    fn dependencies(&self, start_us: i64, end_us: i64) -> Result<Vec<(String, String, u64)>> {
        let mine = self.services(start_us, end_us)?;
        let mut edges = self.0.dependencies(start_us, end_us)?;
        edges.retain(|(parent, child, _)| mine.contains(parent) && mine.contains(child));
        Ok(edges)
    }

    fn correlated_spans(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> Result<Vec<SpanRecord>> {
        let mut spans = self.0.correlated_spans(id, start_us, end_us, limit)?;
        spans.retain(|s| span_is(s, &self.1.tenant));
        Ok(spans)
    }
}
