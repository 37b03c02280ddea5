//! What the time-series engine counts about itself, for `/metrics`.

use std::time::Duration;

use sextant_model::telemetry::{Counter, Exposition, Gauge, MetricKind};

use super::RejectReason;

/// Counters and gauges of the time-series engine.
#[derive(Debug, Default)]
pub struct TsdbStats {
    pub head_series: Gauge,
    pub head_chunks: Gauge,
    pub backfill_pending: Gauge,
    pub samples_appended: Counter,
    pub series_created: Counter,
    pub series_removed: Counter,
    pub rejected_too_old: Counter,
    pub rejected_out_of_bounds: Counter,
    pub rejected_past_retention: Counter,
    pub rejected_series_limit: Counter,
    pub rejected_metric_series_limit: Counter,
    pub rejected_invalid: Counter,
    pub rejected_too_many_labels: Counter,
    pub rejected_label_name_too_long: Counter,
    pub rejected_label_value_too_long: Counter,
    pub rejected_too_many_buckets: Counter,
    pub rejected_invalid_histogram: Counter,
    pub rejected_histograms_unsupported: Counter,
    pub histograms_appended: Counter,
    pub wal_bytes_written: Counter,
    pub wal_size_bytes: Gauge,
    pub fsyncs: Counter,
    pub fsync_micros: Counter,
    pub wal_replay_repairs: Counter,
    pub blocks: Gauge,
    pub block_bytes: Gauge,
    pub head_cuts: Counter,
    pub compactions: Counter,
    pub compaction_failures: Counter,
    pub retention_deletions: Counter,
}

impl TsdbStats {
    /// Records one fsync's latency.
    pub fn record_fsync(&self, took: Duration) {
        self.fsyncs.inc();
        self.fsync_micros
            .add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    /// Counts `n` rejected samples.
    pub fn reject(&self, reason: RejectReason, n: u64) {
        let counter = match reason {
            RejectReason::TooOld => &self.rejected_too_old,
            RejectReason::OutOfBounds => &self.rejected_out_of_bounds,
            RejectReason::PastRetention => &self.rejected_past_retention,
            RejectReason::SeriesLimit => &self.rejected_series_limit,
            RejectReason::MetricSeriesLimit => &self.rejected_metric_series_limit,
            RejectReason::InvalidSeries => &self.rejected_invalid,
            RejectReason::TooManyLabels => &self.rejected_too_many_labels,
            RejectReason::LabelNameTooLong => &self.rejected_label_name_too_long,
            RejectReason::LabelValueTooLong => &self.rejected_label_value_too_long,
            RejectReason::TooManyBuckets => &self.rejected_too_many_buckets,
            RejectReason::InvalidHistogram => &self.rejected_invalid_histogram,
            RejectReason::HistogramsUnsupported => &self.rejected_histograms_unsupported,
        };
        counter.add(n);
    }

    /// Writes every family.
    pub fn render(&self, page: &mut Exposition) {
        let gauge = |page: &mut Exposition, name: &str, help: &str, g: &Gauge| {
            page.single(name, MetricKind::Gauge, help, g.get() as f64);
        };
        let counter = |page: &mut Exposition, name: &str, help: &str, c: &Counter| {
            page.single(name, MetricKind::Counter, help, c.get() as f64);
        };
        gauge(
            page,
            "sextant_tsdb_head_series",
            "Series in the in-memory head.",
            &self.head_series,
        );
        gauge(
            page,
            "sextant_tsdb_head_chunks",
            "Chunks in the in-memory head.",
            &self.head_chunks,
        );
        gauge(
            page,
            "sextant_tsdb_backfill_pending_samples",
            "Samples older than the head's start waiting in the head to be written as blocks.",
            &self.backfill_pending,
        );
        counter(
            page,
            "sextant_tsdb_samples_appended_total",
            "Samples appended to the head.",
            &self.samples_appended,
        );
        counter(
            page,
            "sextant_tsdb_histograms_appended_total",
            "Native histogram samples appended to the head.",
            &self.histograms_appended,
        );
        counter(
            page,
            "sextant_tsdb_series_created_total",
            "Series created in the head.",
            &self.series_created,
        );
        counter(
            page,
            "sextant_tsdb_series_removed_total",
            "Series removed from the head after their data moved to blocks.",
            &self.series_removed,
        );
        page.family(
            "sextant_tsdb_rejected_samples_total",
            MetricKind::Counter,
            "Samples refused, by reason.",
        );
        for (reason, c) in [
            ("too_old", &self.rejected_too_old),
            ("out_of_bounds", &self.rejected_out_of_bounds),
            ("past_retention", &self.rejected_past_retention),
            ("series_limit", &self.rejected_series_limit),
            ("metric_series_limit", &self.rejected_metric_series_limit),
            ("invalid_series", &self.rejected_invalid),
            ("too_many_labels", &self.rejected_too_many_labels),
            ("label_name_too_long", &self.rejected_label_name_too_long),
            ("label_value_too_long", &self.rejected_label_value_too_long),
            ("too_many_buckets", &self.rejected_too_many_buckets),
            ("invalid_histogram", &self.rejected_invalid_histogram),
            (
                "histograms_unsupported",
                &self.rejected_histograms_unsupported,
            ),
        ] {
            page.sample(
                "sextant_tsdb_rejected_samples_total",
                &[("reason", reason)],
                c.get() as f64,
            );
        }
        counter(
            page,
            "sextant_tsdb_wal_written_bytes_total",
            "Bytes written to the write-ahead log.",
            &self.wal_bytes_written,
        );
        gauge(
            page,
            "sextant_tsdb_wal_size_bytes",
            "Size of the write-ahead log on disk.",
            &self.wal_size_bytes,
        );
        counter(
            page,
            "sextant_tsdb_wal_fsyncs_total",
            "fsync calls on the write-ahead log.",
            &self.fsyncs,
        );
        page.single(
            "sextant_tsdb_wal_fsync_seconds_total",
            MetricKind::Counter,
            "Time spent in write-ahead log fsyncs.",
            self.fsync_micros.get() as f64 / 1e6,
        );
        counter(
            page,
            "sextant_tsdb_wal_repairs_total",
            "Torn or corrupt write-ahead log tails cut off at start.",
            &self.wal_replay_repairs,
        );
        gauge(
            page,
            "sextant_tsdb_blocks",
            "Persisted blocks.",
            &self.blocks,
        );
        gauge(
            page,
            "sextant_tsdb_block_bytes",
            "Bytes of persisted blocks.",
            &self.block_bytes,
        );
        counter(
            page,
            "sextant_tsdb_head_cuts_total",
            "Blocks cut from the head.",
            &self.head_cuts,
        );
        counter(
            page,
            "sextant_tsdb_compactions_total",
            "Block compactions.",
            &self.compactions,
        );
        counter(
            page,
            "sextant_tsdb_compaction_failures_total",
            "Failed block compactions.",
            &self.compaction_failures,
        );
        counter(
            page,
            "sextant_tsdb_retention_deleted_blocks_total",
            "Blocks deleted by retention.",
            &self.retention_deletions,
        );
    }
}
