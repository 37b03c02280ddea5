//! Sextant's storage: everything that lives on disk under the data directory.
//!
//! This room holds the time-series engine ([`tsdb`]: write-ahead log, head,
//! compressed chunks, blocks, label index, compaction, retention) and, later,
//! the search engine (the tantivy index of logs and spans). It owns the data
//! directory and the lock that keeps a second Sextant from sharing it. It is
//! the only crate that knows a file format or tantivy; the others write and
//! read through [`MetricsWriter`] and [`MetricsReader`].

mod block_store;
mod check;
mod data_dir;
mod error;
pub mod logs;
mod lucene;
pub mod pairs;
pub mod partial;
pub mod remote;
mod retention;
pub mod spans;
mod splits;
mod state_dir;
pub mod tsdb;

pub use check::{CheckReport, check_data_dir};
pub use data_dir::DataDir;
pub use error::{Error, Result};
pub use pairs::{PairBatch, PairSeries};
pub use retention::RetentionConfig;
pub use state_dir::StateDir;

/// The `storage` section of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The time-series engine.
    pub metrics: TsdbConfig,
    /// Sealed blocks also kept in S3-compatible object storage.
    pub object_store: Option<remote::ObjectStoreConfig>,
    /// How long a log or span partition whose day has ended waits for late
    /// records before it is sealed (and uploaded); 10m when unset.
    pub seal_idle: Option<sextant_model::PromDuration>,
}

pub use tsdb::{
    AppendReport, MetricMetadata, RefSample, RefSeries, SeriesHistograms, SeriesSamples, Tsdb,
    TsdbConfig, TsdbStats,
};

use sextant_model::{HistogramSample, Labels, Matcher, Sample};

/// A series' float samples and native histogram samples, each sorted by
/// time; a timestamp is in at most one of the two.
pub type SeriesData = (Vec<Sample>, Vec<HistogramSample>);

type FillFn<'a> = Box<dyn Fn(&mut SeriesData) -> Result<()> + Send + Sync + 'a>;

/// A selected series whose samples are read when asked for.
pub struct LazySeries<'a> {
    pub labels: Labels,
    /// Fills buffers that arrive empty.
    fill: FillFn<'a>,
}

impl<'a> LazySeries<'a> {
    /// A series of float samples only.
    pub fn new(labels: Labels, read: impl Fn() -> Result<Vec<Sample>> + Send + Sync + 'a) -> Self {
        Self::filling(labels, move |out| {
            out.0 = read()?;
            Ok(())
        })
    }

    /// A series that may hold native histogram samples beside its floats.
    pub fn with_histograms(
        labels: Labels,
        read: impl Fn() -> Result<SeriesData> + Send + Sync + 'a,
    ) -> Self {
        Self::filling(labels, move |out| {
            *out = read()?;
            Ok(())
        })
    }

    /// A series read by `fill` into the (empty) buffers it is given, so
    /// that a reader going through many series can reuse one pair.
    pub fn filling(
        labels: Labels,
        fill: impl Fn(&mut SeriesData) -> Result<()> + Send + Sync + 'a,
    ) -> Self {
        Self {
            labels,
            fill: Box::new(fill),
        }
    }

    /// Decodes the series' float samples in the selected range (its
    /// histogram samples, if any, are left out).
    pub fn samples(&self) -> Result<Vec<Sample>> {
        Ok(self.data()?.0)
    }

    /// Decodes the series' float and histogram samples in the selected range.
    pub fn data(&self) -> Result<SeriesData> {
        let mut out = SeriesData::default();
        (self.fill)(&mut out)?;
        Ok(out)
    }

    /// As [`LazySeries::data`], into `out` (emptied first), keeping its
    /// buffers where the source can.
    pub fn data_into(&self, out: &mut SeriesData) -> Result<()> {
        out.0.clear();
        out.1.clear();
        (self.fill)(out)
    }
}

impl std::fmt::Debug for LazySeries<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazySeries")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// What ingest writes log records through.
pub trait LogWriter: Send + Sync {
    /// Makes `records` durable; they become searchable within the commit interval.
    fn append_logs(&self, records: &[sextant_model::LogRecord]) -> Result<()>;
}

/// What queries read log records through.
pub trait LogReader: Send + Sync {
    /// Matching records, newest first unless asked otherwise, and how many match.
    fn search_logs(&self, query: &logs::LogQuery) -> Result<logs::LogHits>;
    /// Matching records counted per `step_us`, buckets aligned to the step.
    fn log_histogram(&self, query: &logs::LogQuery, step_us: i64) -> Result<Vec<(i64, u64)>>;
    /// As [`LogReader::log_histogram`], buckets starting at the query's
    /// start; `None` when this reader cannot (LogQL then reads the records).
    fn log_histogram_from_start(
        &self,
        query: &logs::LogQuery,
        step_us: i64,
    ) -> Result<Option<Vec<(i64, u64)>>> {
        let _ = (query, step_us);
        Ok(None)
    }
    /// Where a live tail starts: what is appended from now on follows it.
    fn log_tail_start(&self) -> u64;
    /// Matching records appended after `after` and searchable, in time
    /// order, at most `limit`; and where to follow on from.
    fn tail_logs(
        &self,
        text: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<sextant_model::LogRecord>, u64)>;
    /// Records carrying `id` whole in a correlation field, oldest first.
    fn correlated_logs(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> Result<logs::LogHits>;
}

impl LogWriter for logs::LogStore {
    fn append_logs(&self, records: &[sextant_model::LogRecord]) -> Result<()> {
        self.append(records)
    }
}

impl LogReader for logs::LogStore {
    fn search_logs(&self, query: &logs::LogQuery) -> Result<logs::LogHits> {
        self.search(query)
    }

    fn log_histogram(&self, query: &logs::LogQuery, step_us: i64) -> Result<Vec<(i64, u64)>> {
        self.histogram(query, step_us)
    }

    fn log_histogram_from_start(
        &self,
        query: &logs::LogQuery,
        step_us: i64,
    ) -> Result<Option<Vec<(i64, u64)>>> {
        self.histogram_from_start(query, step_us).map(Some)
    }

    fn log_tail_start(&self) -> u64 {
        self.tail_start()
    }

    fn tail_logs(
        &self,
        text: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<sextant_model::LogRecord>, u64)> {
        self.tail(text, after, limit)
    }

    fn correlated_logs(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> Result<logs::LogHits> {
        self.correlated(id, start_us, end_us, limit)
    }
}

/// What ingest writes spans through.
pub trait SpanWriter: Send + Sync {
    /// Makes `spans` durable; they become searchable within the commit interval.
    fn append_spans(&self, spans: &[sextant_model::SpanRecord]) -> Result<()>;
}

impl SpanWriter for spans::SpanStore {
    fn append_spans(&self, spans: &[sextant_model::SpanRecord]) -> Result<()> {
        self.append(spans)
    }
}

/// What queries read spans through.
pub trait SpanReader: Send + Sync {
    /// Every service with a span in `[start, end)`, sorted.
    fn services(&self, start_us: i64, end_us: i64) -> Result<Vec<String>>;
    /// The operations of a service with their span kinds, sorted.
    fn operations(
        &self,
        service: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<(String, sextant_model::SpanKind)>>;
    /// Ids of the traces with a matching span, newest first.
    fn find_trace_ids(&self, query: &spans::TraceQuery) -> Result<Vec<String>>;
    /// Every span of a trace, oldest first (empty when there is none).
    fn trace(&self, trace_id: &str) -> Result<Vec<sextant_model::SpanRecord>>;
    /// `(parent service, child service, calls)` in `[start, end)`.
    fn dependencies(&self, start_us: i64, end_us: i64) -> Result<Vec<(String, String, u64)>>;
    /// Spans carrying `id` as trace id, span id or correlation attribute, oldest first.
    fn correlated_spans(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> Result<Vec<sextant_model::SpanRecord>>;
}

impl SpanReader for spans::SpanStore {
    fn services(&self, start_us: i64, end_us: i64) -> Result<Vec<String>> {
        spans::SpanStore::services(self, start_us, end_us)
    }

    fn operations(
        &self,
        service: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<(String, sextant_model::SpanKind)>> {
        spans::SpanStore::operations(self, service, start_us, end_us)
    }

    fn find_trace_ids(&self, query: &spans::TraceQuery) -> Result<Vec<String>> {
        spans::SpanStore::find_trace_ids(self, query)
    }

    fn trace(&self, trace_id: &str) -> Result<Vec<sextant_model::SpanRecord>> {
        spans::SpanStore::trace(self, trace_id)
    }

    fn dependencies(&self, start_us: i64, end_us: i64) -> Result<Vec<(String, String, u64)>> {
        spans::SpanStore::dependencies(self, start_us, end_us)
    }

    fn correlated_spans(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> Result<Vec<sextant_model::SpanRecord>> {
        self.correlated(id, start_us, end_us, limit)
    }
}

/// What ingest writes metrics through. The engine behind it may change (local
/// disk today, shared object storage later); protocol code only sees this.
pub trait MetricsWriter: Send + Sync {
    /// Appends samples; refused samples are counted in the report, the rest kept.
    fn append(&self, batch: &[SeriesSamples]) -> Result<AppendReport>;
    /// As [`MetricsWriter::append`], one sample per item, by the series
    /// reference the engine wrote back last time where known (scrapes).
    fn append_refs(&self, batch: &mut [RefSample<'_>]) -> Result<AppendReport> {
        let series: Vec<SeriesSamples> = batch
            .iter()
            .map(|s| SeriesSamples {
                labels: s.labels.clone(),
                samples: vec![s.sample],
            })
            .collect();
        self.append(&series)
    }
    /// As [`MetricsWriter::append`], the labels still borrowed from the
    /// bytes they arrived in (remote write): a writer that passes series on
    /// need not build them.
    fn append_pairs(&self, batch: &PairBatch<'_>) -> Result<AppendReport> {
        self.append(&batch.to_series())
    }
    /// Appends native histogram samples; refused ones are counted in the
    /// report, the rest kept. The default refuses all (a writer that cannot
    /// store them).
    fn append_histograms(&self, batch: &[SeriesHistograms]) -> Result<AppendReport> {
        let mut report = AppendReport::default();
        for s in batch {
            report.reject(
                tsdb::RejectReason::HistogramsUnsupported,
                s.samples.len() as u64,
                &s.labels,
            );
        }
        Ok(report)
    }
    /// Records a metric's type, help and unit.
    fn set_metadata(&self, metric: &str, metadata: MetricMetadata) -> Result<()>;
    /// Zero samples at the start (created) timestamps of cumulative series
    /// (remote write 2.0's `start_timestamp`), before their samples are
    /// appended. Each is kept only where it is newer than everything its
    /// series holds, and never counted as refused: a sender repeats a
    /// counter's start with every sample. Returns how many were kept. The
    /// default keeps none (a writer that cannot tell).
    fn append_start_zeros(&self, batch: &PairBatch<'_>) -> Result<u64> {
        let _ = batch;
        Ok(0)
    }
    /// Keeps exemplars of their series; how many were taken (kept, or
    /// equal to their series' newest). A writer that keeps none takes none.
    fn append_exemplars(&self, exemplars: &[(Labels, sextant_model::Exemplar)]) -> Result<usize> {
        let _ = exemplars;
        Ok(0)
    }
}

/// What queries read metrics through.
pub trait MetricsReader: Send + Sync {
    /// Matching series with their samples in `[mint, maxt]`, sorted by labels.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>>;
    /// As [`MetricsReader::select`], but only the labels are read now: each
    /// series' samples are decoded when asked for, from any thread, so a
    /// query holds one series' samples per worker at a time. Label order.
    fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<LazySeries<'_>>> {
        Ok(self
            .select(matchers, mint, maxt)?
            .into_iter()
            .map(|s| {
                let samples = s.samples;
                LazySeries::new(s.labels, move || Ok(samples.clone()))
            })
            .collect())
    }
    /// Label sets of matching series with samples in `[mint, maxt]`.
    fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>>;
    /// Label names on matching series in `[mint, maxt]`, sorted.
    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>>;
    /// Values of one label on matching series in `[mint, maxt]`, sorted.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>>;
    /// Every metric's metadata, by name.
    fn metadata(&self) -> std::collections::BTreeMap<String, MetricMetadata>;
    /// For a query results cache: raises the time up to which a cache
    /// holds results to `cached_until_ms` and returns a counter that moves
    /// whenever what a query answers at or before that time may have
    /// changed (a late, out-of-order or backfilled write, a deletion).
    /// `None`, the default, when this reader cannot tell: then nothing of
    /// its answers is cached.
    fn results_epoch(&self, cached_until_ms: i64) -> Option<u64> {
        let _ = cached_until_ms;
        None
    }
    /// Exemplars in `[start_ms, end_ms]` of the series any of the matcher
    /// sets selects, by series, each series' oldest first. A reader that
    /// keeps none has none.
    fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(Labels, Vec<sextant_model::Exemplar>)>> {
        let _ = (matcher_sets, start_ms, end_ms);
        Ok(Vec::new())
    }
}

impl MetricsWriter for Tsdb {
    fn append(&self, batch: &[SeriesSamples]) -> Result<AppendReport> {
        Tsdb::append(self, batch)
    }

    fn append_refs(&self, batch: &mut [RefSample<'_>]) -> Result<AppendReport> {
        Tsdb::append_refs(self, batch)
    }

    fn set_metadata(&self, metric: &str, metadata: MetricMetadata) -> Result<()> {
        Tsdb::set_metadata(self, metric, metadata)
    }

    fn append_start_zeros(&self, batch: &PairBatch<'_>) -> Result<u64> {
        Tsdb::append_start_zeros(self, &batch.to_series())
    }
    fn append_pairs(&self, batch: &PairBatch<'_>) -> Result<AppendReport> {
        Tsdb::append_pairs(self, batch)
    }

    fn append_histograms(&self, batch: &[SeriesHistograms]) -> Result<AppendReport> {
        Tsdb::append_histograms(self, batch)
    }

    fn append_exemplars(&self, exemplars: &[(Labels, sextant_model::Exemplar)]) -> Result<usize> {
        let report = Tsdb::append_exemplars(self, exemplars)?;
        Ok(report.kept + report.duplicate)
    }
}

impl MetricsReader for Tsdb {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>> {
        Tsdb::select(self, matchers, mint, maxt)
    }

    fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<LazySeries<'_>>> {
        Tsdb::select_lazy(self, matchers, mint, maxt)
    }

    fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>> {
        Tsdb::series(self, matchers, mint, maxt)
    }

    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>> {
        Tsdb::label_names(self, matchers, mint, maxt)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>> {
        Tsdb::label_values(self, name, matchers, mint, maxt)
    }

    fn metadata(&self) -> std::collections::BTreeMap<String, MetricMetadata> {
        Tsdb::metadata(self)
    }

    fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(Labels, Vec<sextant_model::Exemplar>)>> {
        Ok(Tsdb::exemplars(self, matcher_sets, start_ms, end_ms))
    }

    fn results_epoch(&self, cached_until_ms: i64) -> Option<u64> {
        Some(Tsdb::results_epoch(self, cached_until_ms))
    }
}
