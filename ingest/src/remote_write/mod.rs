//! Prometheus remote write: `POST /api/v1/write`, a snappy-compressed
//! (block format) protobuf, remote write 1.0's `prometheus.WriteRequest`
//! ([`parse`]) or 2.0's `io.prometheus.write.v2.Request` ([`v2::parse`]).
//!
//! [`decompress`] and the two `parse` functions are the pure parser: bytes
//! in, a [`WriteBatch`] out, its label strings borrowed from the body. Both
//! read the protobuf by hand (the `wire` module) and accept exactly what
//! `prost` accepts from the same bytes, which the fuzz targets check.

use sextant_model::telemetry::Counter;
use sextant_model::{Exemplar, HistogramSample, Labels, Sample};
use sextant_storage::PairBatch;

mod histogram;
pub mod v2;

use crate::wire::{Fields, Value, utf8};

/// The protobuf messages of `prometheus/prompb` that remote write 1.0 uses.
pub mod proto {
    /// `prometheus.WriteRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// `prometheus.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        /// Native histograms.
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<Histogram>,
    }

    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// `prometheus.Exemplar`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the epoch; 0 when the exemplar has none.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// `prometheus.Histogram` (1.0), which is also 2.0's
    /// `io.prometheus.write.v2.Histogram`: 2.0 adds `start_timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        /// `count_int` makes an integer histogram, `count_float` a float one.
        #[prost(oneof = "histogram::Count", tags = "1, 2")]
        pub count: Option<histogram::Count>,
        #[prost(double, tag = "3")]
        pub sum: f64,
        /// -4..=8 exponential, -53 custom buckets.
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        #[prost(double, tag = "5")]
        pub zero_threshold: f64,
        #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
        pub zero_count: Option<histogram::ZeroCount>,
        #[prost(message, repeated, tag = "8")]
        pub negative_spans: Vec<BucketSpan>,
        /// Delta-encoded counts (integer histograms).
        #[prost(sint64, repeated, tag = "9")]
        pub negative_deltas: Vec<i64>,
        /// Absolute counts (float histograms).
        #[prost(double, repeated, tag = "10")]
        pub negative_counts: Vec<f64>,
        #[prost(message, repeated, tag = "11")]
        pub positive_spans: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "12")]
        pub positive_deltas: Vec<i64>,
        #[prost(double, repeated, tag = "13")]
        pub positive_counts: Vec<f64>,
        /// 0 unknown, 1 yes, 2 no, 3 gauge.
        #[prost(int32, tag = "14")]
        pub reset_hint: i32,
        /// Milliseconds since the epoch.
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
        /// Custom bucket upper bounds (schema -53), the +Inf one implied.
        #[prost(double, repeated, tag = "16")]
        pub custom_values: Vec<f64>,
        /// 2.0 only: when the histogram started counting; 0 when unset.
        #[prost(int64, tag = "17")]
        pub start_timestamp: i64,
    }

    /// The oneofs of [`Histogram`].
    pub mod histogram {
        /// `count`.
        #[derive(Clone, Copy, PartialEq, prost::Oneof)]
        pub enum Count {
            #[prost(uint64, tag = "1")]
            CountInt(u64),
            #[prost(double, tag = "2")]
            CountFloat(f64),
        }

        /// `zero_count`.
        #[derive(Clone, Copy, PartialEq, prost::Oneof)]
        pub enum ZeroCount {
            #[prost(uint64, tag = "6")]
            ZeroCountInt(u64),
            #[prost(double, tag = "7")]
            ZeroCountFloat(f64),
        }
    }

    /// `prometheus.BucketSpan`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct BucketSpan {
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }

    /// `prometheus.MetricMetadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        #[prost(string, tag = "4")]
        pub help: String,
        #[prost(string, tag = "5")]
        pub unit: String,
    }
}

/// Why a remote write body was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteWriteError {
    /// Not valid snappy block data.
    #[error("body is not snappy (block format) compressed: {0}")]
    Snappy(String),
    /// Decompresses past the limit.
    #[error("body decompresses to {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Declared decompressed size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a valid `WriteRequest`.
    #[error("body is not a protobuf prometheus.WriteRequest: {0}")]
    Protobuf(String),
    /// Not a valid remote write 2.0 `Request`.
    #[error("body is not a valid io.prometheus.write.v2.Request: {0}")]
    ProtobufV2(String),
}

/// What remote write refused inside requests that were otherwise kept,
/// for `/metrics` (`sextant_remote_write_refused_total{what}`).
#[derive(Debug)]
pub struct Refused {
    /// 2.0 series refused by meaning (bad references, no `__name__`, ...).
    pub series: Counter,
    /// Exemplars refused (labels too long, bad references).
    pub exemplars: Counter,
    /// Native-histogram samples refused (invalid, or the store refused them).
    pub histograms: Counter,
}

impl Refused {
    /// Each counter under its `what` label.
    pub fn each(&self) -> [(&'static str, &Counter); 3] {
        [
            ("series", &self.series),
            ("exemplar", &self.exemplars),
            ("histogram", &self.histograms),
        ]
    }
}

/// Every remote write refusal in this process.
pub static REFUSED: Refused = Refused {
    series: Counter::new(),
    exemplars: Counter::new(),
    histograms: Counter::new(),
};

/// A metric's type, help and unit as a request states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata<'a> {
    /// The metric family's name (1.0), or the series' `__name__` (2.0,
    /// where metadata belongs to each series).
    pub metric: &'a str,
    /// Prometheus's name for the type: `counter`, `gauge`, ... `unknown`.
    pub kind: &'static str,
    pub help: &'a str,
    pub unit: &'a str,
}

/// A decoded write request, its label strings borrowed from the
/// decompressed body.
///
/// What was refused inside an otherwise good request (a 2.0 series whose
/// label references are out of range, an exemplar over the length limit) is
/// in `problems`, each naming its field; the rest is here to be kept, as
/// Prometheus keeps it.
#[derive(Debug, Default)]
pub struct WriteBatch<'a> {
    /// The series, labels canonical as [`sextant_model::Labels`] keeps them.
    pub series: PairBatch<'a>,
    pub metadata: Vec<Metadata<'a>>,
    /// Native-histogram samples by the index of their series in `series`,
    /// each checked as Prometheus checks it before storing.
    pub histograms: Vec<(usize, HistogramSample)>,
    /// Histograms refused as invalid (each also in `problems`).
    pub histograms_refused: usize,
    /// Exemplars by the index of their series in `series`. Empty, and never
    /// allocated, when the request carries none.
    pub exemplars: Vec<(usize, Exemplar)>,
    /// Exemplars refused (each also in `problems`).
    pub exemplars_refused: usize,
    /// Zero samples owed to start (created) timestamps, 2.0 only: the index
    /// of the series in `series` and the start time in milliseconds. See
    /// [`v2::parse`] for when one is owed.
    pub start_zeros: Vec<(usize, i64)>,
    /// Everything refused from a request that was otherwise kept, each
    /// naming the field (`timeseries[3].labels_refs: odd length (5)`).
    pub problems: Vec<String>,
}

/// Prometheus's names for `MetricMetadata.MetricType` (1.0) and
/// `Metadata.MetricType` (2.0), which number the types alike.
fn metric_type(code: i32) -> &'static str {
    match code {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

/// Decompresses a remote write body; `limit` bounds the decompressed size.
pub fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, RemoteWriteError> {
    let size =
        snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if size > limit {
        return Err(RemoteWriteError::TooLarge { size, limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| RemoteWriteError::Snappy(e.to_string()))
}

/// Reads a decompressed 1.0 `WriteRequest`. The series' label strings stay
/// in `raw` (no string is copied); what it accepts and how it reads each
/// field is what `prost` does with [`proto::WriteRequest`], which the fuzz
/// target checks. Exemplars whose labels are too long are refused by name
/// in `problems`; the rest of the request is kept.
pub fn parse(raw: &[u8]) -> Result<WriteBatch<'_>, RemoteWriteError> {
    let fail = |what: String| RemoteWriteError::Protobuf(what);
    let mut batch = WriteBatch {
        // A node_exporter-shaped request: about 8 labels and 1 sample a series.
        series: PairBatch::with_capacity(raw.len() / 128, raw.len() / 16, raw.len() / 128),
        ..WriteBatch::default()
    };
    let mut request = Fields::new(raw);
    let mut index = 0usize;
    while let Some((field, value)) = request.next().map_err(|e| fail(e.to_string()))? {
        match (field, value) {
            (1, Value::Bytes(series)) => {
                parse_series(series, index, &mut batch)
                    .map_err(|e| fail(format!("timeseries {index}: {e}")))?;
                index += 1;
            }
            (3, Value::Bytes(metadata)) => {
                let m = parse_metadata(metadata).map_err(|e| fail(format!("metadata: {e}")))?;
                batch.metadata.push(m);
            }
            (1 | 3, _) => {
                return Err(fail(format!(
                    "field {field} of WriteRequest has the wrong wire type"
                )));
            }
            _ => {}
        }
    }
    Ok(batch)
}

fn parse_metadata(raw: &[u8]) -> Result<Metadata<'_>, String> {
    let mut m = Metadata {
        metric: "",
        kind: metric_type(0),
        help: "",
        unit: "",
    };
    let mut fields = Fields::new(raw);
    while let Some((field, value)) = fields.next()? {
        match (field, value) {
            (1, Value::Varint(code)) => m.kind = metric_type(code as i32),
            (2, Value::Bytes(text)) => m.metric = utf8(text, "metric_family_name")?,
            (4, Value::Bytes(text)) => m.help = utf8(text, "help")?,
            (5, Value::Bytes(text)) => m.unit = utf8(text, "unit")?,
            (1 | 2 | 4 | 5, _) => {
                return Err(format!(
                    "field {field} of MetricMetadata has the wrong wire type"
                ));
            }
            _ => {}
        }
    }
    Ok(m)
}

/// A 1.0 `Label`'s name and value.
fn parse_label(raw: &[u8]) -> Result<(&str, &str), String> {
    let (mut name, mut value) = ("", "");
    let mut label = Fields::new(raw);
    while let Some((field, part)) = label.next()? {
        match (field, part) {
            (1, Value::Bytes(text)) => name = utf8(text, "label name")?,
            (2, Value::Bytes(text)) => value = utf8(text, "label value")?,
            (1 | 2, _) => return Err("a label's name or value is not a string".into()),
            _ => {}
        }
    }
    Ok((name, value))
}

fn parse_series<'a>(raw: &'a [u8], index: usize, batch: &mut WriteBatch<'a>) -> Result<(), String> {
    let mut fields = Fields::new(raw);
    let (mut exemplar_index, mut histogram_index) = (0usize, 0usize);
    while let Some((field, value)) = fields.next()? {
        match (field, value) {
            (1, Value::Bytes(label)) => {
                let (name, value) = parse_label(label)?;
                batch.series.push_label(name, value);
            }
            (2, Value::Bytes(sample)) => {
                let (mut value, mut timestamp) = (0f64, 0i64);
                let mut sample = Fields::new(sample);
                while let Some((field, part)) = sample.next()? {
                    match (field, part) {
                        (1, Value::Fixed64(bits)) => value = f64::from_bits(bits),
                        (2, Value::Varint(v)) => timestamp = v as i64,
                        (1 | 2, _) => {
                            return Err(
                                "a sample's value or timestamp has the wrong wire type".into()
                            );
                        }
                        _ => {}
                    }
                }
                batch.series.push_sample(Sample {
                    timestamp_ms: timestamp,
                    value,
                });
            }
            (3, Value::Bytes(exemplar)) => {
                let exemplar = parse_exemplar(exemplar)?;
                let at = exemplar_index;
                exemplar_index += 1;
                keep_exemplar(batch, batch.series.len(), exemplar, || {
                    format!("timeseries[{index}].exemplars[{at}]")
                });
            }
            (4, Value::Bytes(histogram)) => {
                let at = histogram_index;
                histogram_index += 1;
                match histogram::parse(histogram)? {
                    Ok(sample) => batch.histograms.push((batch.series.len(), sample)),
                    Err(why) => {
                        batch.histograms_refused += 1;
                        batch
                            .problems
                            .push(format!("timeseries[{index}].histograms[{at}]{why}"));
                    }
                }
            }
            (1..=4, _) => {
                return Err(format!(
                    "field {field} of TimeSeries has the wrong wire type"
                ));
            }
            _ => {}
        }
    }
    batch.series.end_series();
    Ok(())
}

/// A 1.0 `Exemplar`, its labels built (exemplars are few; series are many).
fn parse_exemplar(raw: &[u8]) -> Result<Exemplar, String> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let (mut value, mut timestamp) = (0f64, 0i64);
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, Value::Bytes(label)) => pairs.push(parse_label(label)?),
            (2, Value::Fixed64(bits)) => value = f64::from_bits(bits),
            (3, Value::Varint(v)) => timestamp = v as i64,
            (1..=3, _) => return Err(format!("field {field} of Exemplar has the wrong wire type")),
            _ => {}
        }
    }
    Ok(Exemplar {
        labels: Labels::from_pairs(pairs),
        value,
        timestamp_ms: timestamp,
    })
}

/// Keeps an exemplar of series `series`, or refuses it by `name` when
/// [`Exemplar::invalid`] says it cannot be kept.
fn keep_exemplar(
    batch: &mut WriteBatch<'_>,
    series: usize,
    exemplar: Exemplar,
    name: impl FnOnce() -> String,
) {
    match exemplar.invalid() {
        None => batch.exemplars.push((series, exemplar)),
        Some(why) => {
            batch.exemplars_refused += 1;
            batch.problems.push(format!("{}: {why}", name()));
        }
    }
}

/// Encodes a write request the way Prometheus sends it (for clients and tests).
pub fn encode(request: &proto::WriteRequest) -> Vec<u8> {
    use prost::Message as _;
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy compresses any input")
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::proto::histogram;
    use super::proto::*;
    use super::*;

    fn request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label {
                        name: "job".into(),
                        value: "node".into(),
                    },
                    Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                ],
                samples: vec![
                    proto::Sample {
                        value: 1.0,
                        timestamp: 1000,
                    },
                    proto::Sample {
                        value: 0.0,
                        timestamp: 2000,
                    },
                ],
                exemplars: vec![],
                histograms: vec![],
            }],
            metadata: vec![MetricMetadata {
                r#type: 2,
                metric_family_name: "up".into(),
                help: "Target up.".into(),
                unit: String::new(),
            }],
        }
    }

    #[test]
    fn a_write_request_round_trips() {
        let raw = decompress(&encode(&request()), 1 << 20).unwrap();
        let batch = parse(&raw).unwrap();
        let series = batch.series.to_series();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].labels.to_string(), "up{job=\"node\"}");
        assert_eq!(series[0].samples[1].timestamp_ms, 2000);
        assert_eq!(batch.metadata[0].kind, "gauge");
    }

    /// Decompresses and parses; the number of series.
    fn decode(body: &[u8], limit: usize) -> Result<usize, RemoteWriteError> {
        let raw = decompress(body, limit)?;
        parse(&raw).map(|batch| batch.series.len())
    }

    #[test]
    fn the_parser_reads_what_prost_reads() {
        let mut request = request();
        request.timeseries.push(TimeSeries {
            labels: vec![
                Label {
                    name: "b".into(),
                    value: "1".into(),
                },
                Label {
                    name: "a".into(),
                    value: "".into(),
                },
                Label {
                    name: "b".into(),
                    value: "2".into(),
                },
            ],
            samples: vec![proto::Sample {
                value: f64::NAN,
                timestamp: -5,
            }],
            exemplars: vec![],
            histograms: vec![Histogram {
                count: Some(histogram::Count::CountInt(0)),
                timestamp: 7,
                ..Histogram::default()
            }],
        });
        let mut raw = request.encode_to_vec();
        // An unknown field (a varint numbered 9) is skipped, as prost skips it.
        raw.extend_from_slice(&[9 << 3, 1]);
        let batch = parse(&raw).unwrap();
        let expected = WriteRequest::decode(raw.as_slice()).unwrap();
        let got = batch.series.to_series();
        assert_eq!(got.len(), expected.timeseries.len());
        for (got, want) in got.iter().zip(&expected.timeseries) {
            let labels = Labels::from_pairs(
                want.labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str())),
            );
            assert_eq!(got.labels, labels);
            assert_eq!(got.samples.len(), want.samples.len());
            for (g, w) in got.samples.iter().zip(&want.samples) {
                assert_eq!(g.timestamp_ms, w.timestamp);
                assert_eq!(g.value.to_bits(), w.value.to_bits());
            }
        }
        assert_eq!(got[1].labels.to_string(), "{b=\"2\"}");
        assert_eq!(batch.histograms.len(), 1);
        assert_eq!(batch.histograms[0].0, 1);
        assert_eq!(batch.histograms[0].1.timestamp_ms, 7);
        assert_eq!(batch.metadata.len(), 1);
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let err = decode(b"not snappy at all", 1 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                RemoteWriteError::Snappy(_) | RemoteWriteError::Protobuf(_)
            ),
            "{err}"
        );
        let garbage = snap::raw::Encoder::new().compress_vec(&[0xff; 32]).unwrap();
        assert!(matches!(
            decode(&garbage, 1 << 20),
            Err(RemoteWriteError::Protobuf(_))
        ));
        let mut label_not_utf8 = request().encode_to_vec();
        let at = label_not_utf8
            .windows(4)
            .position(|w| w == b"node")
            .unwrap();
        label_not_utf8[at] = 0xff;
        let err = parse(&label_not_utf8).unwrap_err().to_string();
        assert!(
            err.contains("timeseries 0") && err.contains("label value is not UTF-8"),
            "{err}"
        );
        let err = parse(&[0x0a, 0x20, 0x0a]).unwrap_err().to_string();
        assert!(err.contains("past the end"), "{err}");
        let big = encode(&request());
        assert!(matches!(
            decode(&big, 10),
            Err(RemoteWriteError::TooLarge { limit: 10, .. })
        ));
    }

    #[test]
    fn exemplars_reach_their_series_and_long_ones_are_refused_by_name() {
        let mut request = request();
        let exemplar = |value: &str| proto::Exemplar {
            labels: vec![Label {
                name: "trace_id".into(),
                value: value.into(),
            }],
            value: 0.5,
            timestamp: 1500,
        };
        request.timeseries[0].exemplars = vec![exemplar("abc"), exemplar(&"x".repeat(200))];
        let raw = request.encode_to_vec();
        let batch = parse(&raw).unwrap();
        assert_eq!(batch.exemplars.len(), 1);
        assert_eq!(batch.exemplars[0].0, 0);
        assert_eq!(
            batch.exemplars[0].1.labels.to_string(),
            "{trace_id=\"abc\"}"
        );
        assert_eq!(batch.exemplars[0].1.timestamp_ms, 1500);
        assert_eq!(batch.exemplars_refused, 1);
        assert!(
            batch.problems[0].starts_with("timeseries[0].exemplars[1]: exemplar labels hold 208"),
            "{:?}",
            batch.problems
        );
        // The samples were kept.
        assert_eq!(batch.series.sample_count(), 2);
    }
}
