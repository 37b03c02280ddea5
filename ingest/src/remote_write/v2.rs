//! Remote write 2.0: `io.prometheus.write.v2.Request` (Content-Type
//! `application/x-protobuf;proto=io.prometheus.write.v2.Request`), read by
//! hand in place as the 1.0 reader is.
//!
//! A 2.0 request names every string once, in `symbols`, and its series
//! refer to them by index (`labels_refs`, pairs of name and value). Each
//! series carries its own samples, histograms, exemplars and metadata.
//!
//! What is refused, as Prometheus's receiver (`storage/remote/
//! write_handler.go`) refuses it:
//!
//! - A body that is not a valid protobuf `Request`, or whose `symbols[0]` is
//!   not empty (the spec's MUST; Prometheus does not check it, but without
//!   it a `help_ref` or `unit_ref` of 0 would name a real string): the whole
//!   request.
//! - A series whose label references are an odd number or outside the
//!   symbols, that repeats a label name, has no `__name__`, whose metadata
//!   references are outside the symbols, or that has neither samples nor
//!   histograms: that series, named in `problems`; the rest is kept.
//! - An exemplar whose label references are bad, or whose labels are over
//!   [`sextant_model::MAX_EXEMPLAR_LABEL_RUNES`]: that exemplar; its series
//!   is kept.
//!
//! Start (created) timestamps: Prometheus, with
//! `--enable-feature=created-timestamp-zero-ingestion`, stores a zero
//! sample at a sample's `start_timestamp` when it is set, the sample's
//! timestamp is set and later, and the zero is newer than everything the
//! series holds (otherwise it is skipped silently: a counter sends the same
//! start with every sample). Prometheus 3.0 to 3.7 sent the start once per
//! series as `TimeSeries.created_timestamp` (field 6, reserved since),
//! applied to the series' first sample; both are read. Sextant owes the
//! zero for the first sample of each series in a request (later samples of
//! the same series share its start in practice; a counter reset within one
//! request loses its zero) and the store skips it unless it is the newest
//! (`MetricsWriter::append_start_zeros`). Zeros are not counted as written
//! samples, as Prometheus does not count them. Histograms' start timestamps
//! are read but owe no zero histogram yet (the store has no way to keep one
//! only where it is the newest).
//!
//! Histograms are read as 1.0's are ([`super::histogram`]): a bad one is
//! refused by its field (`timeseries[2].histograms[0].schema: ...`), its
//! series and the rest of the request kept.

use sextant_model::{Exemplar, Labels, Sample};
use sextant_storage::PairBatch;

use super::{Metadata, RemoteWriteError, WriteBatch, histogram, keep_exemplar, metric_type};
use crate::wire::{Fields, Value, push_u32s};

/// The messages of `prompb/io/prometheus/write/v2/types.proto`, with the
/// fields Sextant reads.
pub mod proto {
    /// `io.prometheus.write.v2.Request`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        /// Every string the request uses; `symbols[0]` is `""`.
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// `io.prometheus.write.v2.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Name and value of each label as indexes into `symbols`.
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Native histograms.
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<Histogram>,
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        /// The series' start, as Prometheus 3.0 to 3.7 send it (field 6,
        /// reserved in the spec since the start moved into each sample).
        /// Milliseconds since the epoch; 0 when unset.
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }

    /// `io.prometheus.write.v2.Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
        /// When the counter started counting; 0 when unset.
        #[prost(int64, tag = "3")]
        pub start_timestamp: i64,
    }

    /// `io.prometheus.write.v2.Exemplar`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the epoch; 0 when unset.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// `io.prometheus.write.v2.Metadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        /// `MetricType`: 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram,
        /// 5 summary, 6 info, 7 stateset; 0 unspecified.
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }

    /// `io.prometheus.write.v2.Histogram` and its parts, numbered as 1.0's.
    pub use crate::remote_write::proto::{BucketSpan, Histogram, histogram};
}

/// The `Content-Type` parameter that names this message.
pub const PROTO: &str = "io.prometheus.write.v2.Request";

/// Reads a decompressed 2.0 `Request`. Label strings stay in `raw`; a bad
/// series, exemplar or reference is refused by name in
/// [`WriteBatch::problems`] and the rest kept (see the module's notes).
pub fn parse(raw: &[u8]) -> Result<WriteBatch<'_>, RemoteWriteError> {
    let fail = RemoteWriteError::ProtobufV2;
    // The symbols first: protobuf lets them follow the series that use them.
    let mut symbols: Vec<&str> = Vec::new();
    let mut series_count = 0usize;
    let mut fields = Fields::new(raw);
    while let Some((field, value)) = fields.next().map_err(|e| fail(e.to_string()))? {
        match (field, value) {
            (4, Value::Bytes(text)) => {
                let symbol = std::str::from_utf8(text)
                    .map_err(|e| fail(format!("symbols[{}] is not UTF-8: {e}", symbols.len())))?;
                symbols.push(symbol);
            }
            (5, Value::Bytes(_)) => series_count += 1,
            (4 | 5, _) => {
                return Err(fail(format!(
                    "field {field} of Request has the wrong wire type"
                )));
            }
            _ => {}
        }
    }
    if let Some(first) = symbols.first().filter(|s| !s.is_empty()) {
        return Err(fail(format!("symbols[0] must be empty, is {first:?}")));
    }
    let mut batch = WriteBatch {
        // About 8 labels and 1 sample a series, as in 1.0.
        series: PairBatch::with_capacity(series_count, series_count * 8, series_count),
        ..WriteBatch::default()
    };
    let mut scratch = Scratch::default();
    let mut index = 0usize;
    let mut fields = Fields::new(raw);
    while let Some((field, value)) = fields.next().map_err(|e| fail(e.to_string()))? {
        if let (5, Value::Bytes(series)) = (field, value) {
            parse_series(series, index, &symbols, &mut batch, &mut scratch)
                .map_err(|e| fail(format!("timeseries[{index}]: {e}")))?;
            index += 1;
        }
    }
    Ok(batch)
}

/// Buffers reused from one series to the next.
#[derive(Default)]
struct Scratch<'a> {
    refs: Vec<u32>,
    pairs: Vec<(&'a str, &'a str)>,
}

/// What a series says beside its labels and samples.
#[derive(Default)]
struct SeriesNotes {
    /// `Metadata`: type, help_ref, unit_ref.
    metadata: Option<(i32, u32, u32)>,
    samples: usize,
    histograms: usize,
    /// The first sample's timestamp and start timestamp.
    first: Option<(i64, i64)>,
    /// The deprecated per-series `created_timestamp`.
    created: i64,
}

/// Reads one series into `batch`. A wire-format error (the whole request
/// fails, as it does for prost) is the `Err`; a series or exemplar refused
/// by its meaning goes to `batch.problems`.
fn parse_series<'a>(
    raw: &'a [u8],
    index: usize,
    symbols: &[&'a str],
    batch: &mut WriteBatch<'a>,
    scratch: &mut Scratch<'a>,
) -> Result<(), String> {
    let at = batch.series.len();
    let before = (
        batch.exemplars.len(),
        batch.exemplars_refused,
        batch.problems.len(),
        batch.histograms.len(),
        batch.histograms_refused,
    );
    scratch.refs.clear();
    let mut notes = SeriesNotes::default();
    let mut exemplar_index = 0usize;
    let mut fields = Fields::new(raw);
    while let Some((field, value)) = fields.next()? {
        match (field, value) {
            (1, value @ (Value::Varint(_) | Value::Bytes(_))) => {
                push_u32s(value, &mut scratch.refs)?;
            }
            (2, Value::Bytes(sample)) => {
                let (sample, start) = parse_sample(sample)?;
                if notes.first.is_none() {
                    notes.first = Some((sample.timestamp_ms, start));
                }
                notes.samples += 1;
                batch.series.push_sample(sample);
            }
            (3, Value::Bytes(raw)) => {
                let j = notes.histograms;
                notes.histograms += 1;
                match histogram::parse(raw)? {
                    Ok(sample) => batch.histograms.push((at, sample)),
                    Err(why) => {
                        batch.histograms_refused += 1;
                        batch
                            .problems
                            .push(format!("timeseries[{index}].histograms[{j}]{why}"));
                    }
                }
            }
            (4, Value::Bytes(exemplar)) => {
                let j = exemplar_index;
                exemplar_index += 1;
                match parse_exemplar(exemplar, symbols)? {
                    Ok(exemplar) => keep_exemplar(batch, at, exemplar, || {
                        format!("timeseries[{index}].exemplars[{j}]")
                    }),
                    Err(why) => {
                        batch.exemplars_refused += 1;
                        batch
                            .problems
                            .push(format!("timeseries[{index}].exemplars[{j}].{why}"));
                    }
                }
            }
            (5, Value::Bytes(metadata)) => {
                // A message field sent twice is merged, field by field.
                let (mut kind, mut help, mut unit) = notes.metadata.unwrap_or_default();
                let mut metadata = Fields::new(metadata);
                while let Some((field, part)) = metadata.next()? {
                    match (field, part) {
                        (1, Value::Varint(v)) => kind = v as i32,
                        (3, Value::Varint(v)) => help = v as u32,
                        (4, Value::Varint(v)) => unit = v as u32,
                        (1 | 3 | 4, _) => {
                            return Err(format!(
                                "field {field} of Metadata has the wrong wire type"
                            ));
                        }
                        _ => {}
                    }
                }
                notes.metadata = Some((kind, help, unit));
            }
            (6, Value::Varint(v)) => notes.created = v as i64,
            (1..=6, _) => {
                return Err(format!(
                    "field {field} of TimeSeries has the wrong wire type"
                ));
            }
            _ => {}
        }
    }
    match check_series(index, symbols, &notes, scratch) {
        Ok(name) => {
            for &(label, value) in &scratch.pairs {
                batch.series.push_label(label, value);
            }
            batch.series.end_series();
            if let Some((kind, help, unit)) = notes.metadata.filter(|&m| m != (0, 0, 0)) {
                let metadata = Metadata {
                    metric: name,
                    kind: metric_type(kind),
                    help: symbols[help as usize],
                    unit: symbols[unit as usize],
                };
                if batch.metadata.last() != Some(&metadata) {
                    batch.metadata.push(metadata);
                }
            }
            if let Some((t, start)) = notes.first {
                let start = if start != 0 { start } else { notes.created };
                if start != 0 && t != 0 && start < t {
                    batch.start_zeros.push((at, start));
                }
            }
        }
        Err(problem) => {
            batch.series.discard_series();
            batch.exemplars.truncate(before.0);
            batch.exemplars_refused = before.1;
            batch.problems.truncate(before.2);
            batch.histograms.truncate(before.3);
            batch.histograms_refused = before.4;
            batch.problems.push(problem);
        }
    }
    Ok(())
}

/// Resolves and checks a series' labels into `scratch.pairs` (sorted by
/// name) and its metadata references; the metric name, or the problem.
fn check_series<'a>(
    index: usize,
    symbols: &[&'a str],
    notes: &SeriesNotes,
    scratch: &mut Scratch<'a>,
) -> Result<&'a str, String> {
    let field = || format!("timeseries[{index}].labels_refs");
    resolve_pairs(&scratch.refs, symbols, &mut scratch.pairs)
        .map_err(|why| format!("{}{why}", field()))?;
    scratch.pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(w) = scratch.pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("{}: label {:?} repeated", field(), w[0].0));
    }
    let name = scratch
        .pairs
        .iter()
        .find(|(n, _)| *n == "__name__")
        .map(|(_, v)| *v)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{}: no __name__ label", field()))?;
    if let Some((_, help, unit)) = notes.metadata {
        for (what, r) in [("help_ref", help), ("unit_ref", unit)] {
            if r as usize >= symbols.len() {
                return Err(format!(
                    "timeseries[{index}].metadata.{what}: {r} is outside the symbols table ({} symbols)",
                    symbols.len()
                ));
            }
        }
    }
    if notes.samples == 0 && notes.histograms == 0 {
        return Err(format!("timeseries[{index}]: no samples or histograms"));
    }
    Ok(name)
}

/// Label pairs from references; the problem after the field's name
/// (`: odd length (3)`, `[4]: 17 is outside the symbols table (9 symbols)`).
fn resolve_pairs<'a>(
    refs: &[u32],
    symbols: &[&'a str],
    out: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), String> {
    out.clear();
    if !refs.len().is_multiple_of(2) {
        return Err(format!(": odd length ({})", refs.len()));
    }
    let symbol = |k: usize| {
        symbols.get(refs[k] as usize).copied().ok_or_else(|| {
            format!(
                "[{k}]: {} is outside the symbols table ({} symbols)",
                refs[k],
                symbols.len()
            )
        })
    };
    for k in (0..refs.len()).step_by(2) {
        out.push((symbol(k)?, symbol(k + 1)?));
    }
    Ok(())
}

/// A sample and its start timestamp.
fn parse_sample(raw: &[u8]) -> Result<(Sample, i64), String> {
    let (mut value, mut timestamp, mut start) = (0f64, 0i64, 0i64);
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, Value::Fixed64(bits)) => value = f64::from_bits(bits),
            (2, Value::Varint(v)) => timestamp = v as i64,
            (3, Value::Varint(v)) => start = v as i64,
            (1..=3, _) => return Err(format!("field {field} of Sample has the wrong wire type")),
            _ => {}
        }
    }
    Ok((
        Sample {
            timestamp_ms: timestamp,
            value,
        },
        start,
    ))
}

/// An exemplar, or (inside `Ok`) why its references are bad, after the
/// field's path (`labels_refs: odd length (1)`).
fn parse_exemplar(raw: &[u8], symbols: &[&str]) -> Result<Result<Exemplar, String>, String> {
    let mut refs = Vec::new();
    let (mut value, mut timestamp) = (0f64, 0i64);
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, part @ (Value::Varint(_) | Value::Bytes(_))) => push_u32s(part, &mut refs)?,
            (2, Value::Fixed64(bits)) => value = f64::from_bits(bits),
            (3, Value::Varint(v)) => timestamp = v as i64,
            (1..=3, _) => return Err(format!("field {field} of Exemplar has the wrong wire type")),
            _ => {}
        }
    }
    let mut pairs = Vec::with_capacity(refs.len() / 2);
    if let Err(why) = resolve_pairs(&refs, symbols, &mut pairs) {
        return Ok(Err(format!("labels_refs{why}")));
    }
    Ok(Ok(Exemplar {
        labels: Labels::from_pairs(pairs),
        value,
        timestamp_ms: timestamp,
    }))
}

/// Encodes a 2.0 request as a sender does: protobuf, snappy (block).
pub fn encode(request: &proto::Request) -> Vec<u8> {
    use prost::Message as _;
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy compresses any input")
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::proto::{Request, TimeSeries};
    use super::*;

    /// A request over `symbols` (`""` first), one series a `(labels_refs,
    /// samples)` pair.
    fn request(symbols: &[&str], series: Vec<TimeSeries>) -> Request {
        Request {
            symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
            timeseries: series,
        }
    }

    fn series(refs: &[u32], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels_refs: refs.to_vec(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| proto::Sample {
                    value,
                    timestamp,
                    start_timestamp: 0,
                })
                .collect(),
            ..TimeSeries::default()
        }
    }

    const SYMBOLS: &[&str] = &[
        "",
        "__name__",
        "http_requests_total",
        "job",
        "api",
        "Requests.",
        "trace_id",
        "abc",
    ];

    #[test]
    fn symbols_resolve_into_sorted_labels_with_metadata_and_exemplars() {
        let mut first = series(&[3, 4, 1, 2], &[(1000, 5.0), (2000, 7.0)]);
        first.metadata = Some(proto::Metadata {
            r#type: 1,
            help_ref: 5,
            unit_ref: 0,
        });
        first.exemplars = vec![proto::Exemplar {
            labels_refs: vec![6, 7],
            value: 0.25,
            timestamp: 1500,
        }];
        first.samples[0].start_timestamp = 400;
        let raw = request(SYMBOLS, vec![first]).encode_to_vec();
        let batch = parse(&raw).unwrap();
        assert!(batch.problems.is_empty(), "{:?}", batch.problems);
        let got = batch.series.to_series();
        assert_eq!(
            got[0].labels.to_string(),
            "http_requests_total{job=\"api\"}"
        );
        assert_eq!(got[0].samples.len(), 2);
        assert_eq!(
            batch.metadata,
            vec![Metadata {
                metric: "http_requests_total",
                kind: "counter",
                help: "Requests.",
                unit: "",
            }]
        );
        assert_eq!(batch.exemplars.len(), 1);
        assert_eq!(batch.exemplars[0].0, 0);
        assert_eq!(
            batch.exemplars[0].1.labels.to_string(),
            "{trace_id=\"abc\"}"
        );
        assert_eq!(batch.exemplars[0].1.timestamp_ms, 1500);
        assert_eq!(batch.start_zeros, vec![(0, 400)]);
    }

    #[test]
    fn start_timestamps_follow_prometheus() {
        let cases: [(i64, i64, i64, bool); 5] = [
            // (sample start, series created_timestamp, sample time, zero owed)
            (400, 0, 1000, true),
            (0, 300, 1000, true),
            (1000, 0, 1000, false),
            (2000, 0, 1000, false),
            (400, 0, 0, false),
        ];
        for (start, created, t, owed) in cases {
            let mut s = series(&[1, 2], &[(t, 1.0)]);
            s.samples[0].start_timestamp = start;
            s.created_timestamp = created;
            let raw = request(SYMBOLS, vec![s]).encode_to_vec();
            let batch = parse(&raw).unwrap();
            assert_eq!(!batch.start_zeros.is_empty(), owed, "{start} {created} {t}");
        }
    }

    #[test]
    fn a_bad_series_is_named_and_the_rest_kept() {
        let mut bad_exemplar = series(&[1, 2], &[(1, 1.0)]);
        bad_exemplar.exemplars = vec![
            proto::Exemplar {
                labels_refs: vec![6],
                value: 1.0,
                timestamp: 1,
            },
            proto::Exemplar {
                labels_refs: vec![6, 7],
                value: 1.0,
                timestamp: 1,
            },
        ];
        let mut bad_help = series(&[1, 2], &[(1, 1.0)]);
        bad_help.metadata = Some(proto::Metadata {
            r#type: 2,
            help_ref: 99,
            unit_ref: 0,
        });
        let timeseries = vec![
            series(&[1, 2], &[(1, 1.0)]),
            series(&[1, 2, 3], &[(1, 1.0)]),
            series(&[1, 2, 3, 40], &[(1, 1.0)]),
            series(&[1, 2, 1, 4], &[(1, 1.0)]),
            series(&[3, 4], &[(1, 1.0)]),
            series(&[1, 2], &[]),
            bad_help,
            bad_exemplar,
        ];
        let raw = request(SYMBOLS, timeseries).encode_to_vec();
        let batch = parse(&raw).unwrap();
        assert_eq!(
            batch.problems,
            vec![
                "timeseries[1].labels_refs: odd length (3)",
                "timeseries[2].labels_refs[3]: 40 is outside the symbols table (8 symbols)",
                "timeseries[3].labels_refs: label \"__name__\" repeated",
                "timeseries[4].labels_refs: no __name__ label",
                "timeseries[5]: no samples or histograms",
                "timeseries[6].metadata.help_ref: 99 is outside the symbols table (8 symbols)",
                "timeseries[7].exemplars[0].labels_refs: odd length (1)",
            ]
        );
        // The first and the last series are kept, with the last's good exemplar.
        assert_eq!(batch.series.len(), 2);
        assert_eq!(batch.series.sample_count(), 2);
        assert_eq!(batch.exemplars.len(), 1);
        assert_eq!(batch.exemplars[0].0, 1);
        assert_eq!(batch.exemplars_refused, 1);
    }

    #[test]
    fn whole_request_errors_name_the_field() {
        let raw = request(&["x", "__name__"], vec![]).encode_to_vec();
        let err = parse(&raw).unwrap_err().to_string();
        assert!(err.contains("symbols[0] must be empty"), "{err}");
        let mut raw = request(SYMBOLS, vec![]).encode_to_vec();
        raw.extend_from_slice(&[0x22, 1, 0xff]); // symbols: one byte, not UTF-8
        let err = parse(&raw).unwrap_err().to_string();
        assert!(err.contains("symbols[8] is not UTF-8"), "{err}");
        // A series whose sample runs past its end.
        let err = parse(&[0x2a, 2, 0x12, 9]).unwrap_err().to_string();
        assert!(
            err.contains("timeseries[0]") && err.contains("past the end"),
            "{err}"
        );
        // An empty request (or a 1.0 body read as 2.0: its fields are reserved).
        assert!(parse(&[]).unwrap().series.is_empty());
    }

    #[test]
    fn the_parser_reads_what_prost_reads() {
        let mut s = series(&[3, 4, 1, 2], &[(5, f64::NAN), (-3, 1.5)]);
        s.histograms = vec![proto::Histogram {
            count: Some(proto::histogram::Count::CountFloat(0.0)),
            timestamp: 9,
            ..proto::Histogram::default()
        }];
        let mut raw = request(SYMBOLS, vec![s, series(&[1, 2, 3, 0], &[(1, 2.0)])]).encode_to_vec();
        // An unknown field is skipped, as prost skips it.
        raw.extend_from_slice(&[9 << 3, 1]);
        let batch = parse(&raw).unwrap();
        let expected = Request::decode(raw.as_slice()).unwrap();
        let got = batch.series.to_series();
        assert_eq!(got.len(), expected.timeseries.len());
        for (got, want) in got.iter().zip(&expected.timeseries) {
            let labels = Labels::from_pairs(
                want.labels_refs
                    .chunks(2)
                    .map(|p| (SYMBOLS[p[0] as usize], SYMBOLS[p[1] as usize])),
            );
            assert_eq!(got.labels, labels);
            for (g, w) in got.samples.iter().zip(&want.samples) {
                assert_eq!(
                    (g.timestamp_ms, g.value.to_bits()),
                    (w.timestamp, w.value.to_bits())
                );
            }
        }
        assert_eq!(batch.histograms.len(), 1);
        assert_eq!(batch.histograms[0].1.timestamp_ms, 9);
    }

    #[test]
    fn histograms_reach_their_series_and_bad_ones_are_named() {
        let good = proto::Histogram {
            count: Some(proto::histogram::Count::CountInt(3)),
            sum: 4.0,
            schema: 0,
            positive_spans: vec![proto::BucketSpan {
                offset: 0,
                length: 2,
            }],
            positive_deltas: vec![1, 1],
            timestamp: 100,
            ..proto::Histogram::default()
        };
        let bad = proto::Histogram {
            schema: 12,
            ..good.clone()
        };
        let mut first = series(&[1, 2], &[]);
        first.histograms = vec![good.clone(), bad.clone()];
        // A refused series takes its histograms and their problems along.
        let mut refused = series(&[3, 4], &[]);
        refused.histograms = vec![good.clone(), bad];
        let mut last = series(&[1, 2, 3, 4], &[]);
        last.histograms = vec![good];
        let raw = request(SYMBOLS, vec![first, refused, last]).encode_to_vec();
        let batch = parse(&raw).unwrap();
        assert_eq!(
            batch.problems,
            vec![
                "timeseries[0].histograms[1].schema: histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, or -53 for custom buckets, got schema 12",
                "timeseries[1].labels_refs: no __name__ label",
            ]
        );
        assert_eq!(batch.histograms_refused, 1);
        let at: Vec<usize> = batch.histograms.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [0, 1]);
        assert_eq!(batch.series.len(), 2);
    }
}
