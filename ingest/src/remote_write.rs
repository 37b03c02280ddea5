//! Prometheus remote write 1.0: `POST /api/v1/write`, a snappy-compressed
//! (block format) protobuf `WriteRequest`.
//!
//! [`decompress`] and [`parse`] are the pure parser: bytes in, series and
//! metadata out.

use prost::Message;
use sextant_model::Sample;
use sextant_storage::PairBatch;

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
        /// Native histograms; counted and refused (not supported yet).
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

    /// `prometheus.Histogram`, reduced to its timestamp: only counted.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
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

/// Why a remote write body was refused.
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
}

/// A decoded write request, its label strings borrowed from the
/// decompressed body.
#[derive(Debug, Default)]
pub struct WriteBatch<'a> {
    /// The series, labels canonical as [`sextant_model::Labels`] keeps them.
    pub series: PairBatch<'a>,
    /// (metric name, type, help, unit).
    pub metadata: Vec<(String, String, String, String)>,
    /// Native-histogram samples, which are not stored yet.
    pub histograms_dropped: usize,
}

/// Prometheus's names for `MetricMetadata.MetricType`.
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

/// Reads a decompressed `WriteRequest`. The series' label strings stay in
/// `raw` (no string is copied); what it accepts and how it reads each
/// field is what `prost` does with [`proto::WriteRequest`], which the fuzz
/// target checks.
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
                parse_series(series, &mut batch)
                    .map_err(|e| fail(format!("timeseries {index}: {e}")))?;
                index += 1;
            }
            (3, Value::Bytes(metadata)) => {
                let m = proto::MetricMetadata::decode(metadata)
                    .map_err(|e| fail(format!("metadata: {e}")))?;
                batch.metadata.push((
                    m.metric_family_name,
                    metric_type(m.r#type).to_owned(),
                    m.help,
                    m.unit,
                ));
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

fn parse_series<'a>(raw: &'a [u8], batch: &mut WriteBatch<'a>) -> Result<(), String> {
    let mut fields = Fields::new(raw);
    while let Some((field, value)) = fields.next()? {
        match (field, value) {
            (1, Value::Bytes(label)) => {
                let (mut name, mut value) = ("", "");
                let mut label = Fields::new(label);
                while let Some((field, part)) = label.next()? {
                    match (field, part) {
                        (1, Value::Bytes(text)) => name = utf8(text, "label name")?,
                        (2, Value::Bytes(text)) => value = utf8(text, "label value")?,
                        (1 | 2, _) => return Err("a label's name or value is not a string".into()),
                        _ => {}
                    }
                }
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
            (4, Value::Bytes(histogram)) => {
                proto::Histogram::decode(histogram).map_err(|e| format!("histogram: {e}"))?;
                batch.histograms_dropped += 1;
            }
            (1 | 2 | 4, _) => {
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

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("{what} is not UTF-8: {e}"))
}

/// A protobuf field's value, by its wire type.
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
}

/// The fields of one protobuf message, in order.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err("the message ends inside a varint");
            };
            self.pos += 1;
            // The tenth byte may carry only the top bit.
            if i == 9 && byte > 1 {
                return Err("a varint longer than 64 bits");
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err("a varint longer than 64 bits")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or("a field runs past the end of its message")?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next field's number and value; `None` at the message's end.
    fn next(&mut self) -> Result<Option<(u32, Value<'a>)>, &'static str> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| "a field key over 32 bits")?;
        let field = key >> 3;
        if field == 0 {
            return Err("a field numbered 0");
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("eight bytes"),
            )),
            2 => {
                let n = usize::try_from(self.varint()?)
                    .map_err(|_| "a length over the address space")?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            3 | 4 => return Err("a group field (deprecated; remote write has none)"),
            _ => return Err("an unknown wire type"),
        };
        Ok(Some((field, value)))
    }
}

/// Encodes a write request the way Prometheus sends it (for clients and tests).
pub fn encode(request: &proto::WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy compresses any input")
}

#[cfg(test)]
mod tests {
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
        assert_eq!(batch.metadata[0].1, "gauge");
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
            histograms: vec![Histogram { timestamp: 7 }],
        });
        let mut raw = request.encode_to_vec();
        // An unknown field (a varint numbered 9) is skipped, as prost skips it.
        raw.extend_from_slice(&[9 << 3, 1]);
        let batch = parse(&raw).unwrap();
        let expected = WriteRequest::decode(raw.as_slice()).unwrap();
        let got = batch.series.to_series();
        assert_eq!(got.len(), expected.timeseries.len());
        for (got, want) in got.iter().zip(&expected.timeseries) {
            let labels = sextant_model::Labels::from_pairs(
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
        assert_eq!(batch.histograms_dropped, 1);
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
}
