//! Prometheus remote write 1.0: `POST /api/v1/write`, a snappy-compressed
//! (block format) protobuf `WriteRequest`.
//!
//! [`decode`] is the pure parser: bytes in, series and metadata out.

use prost::Message;
use sextant_model::{Labels, Sample};

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

/// One series of a write request, labels validated.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// A decoded write request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    pub series: Vec<WrittenSeries>,
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

/// Decodes a remote write body; `limit` bounds the decompressed size.
pub fn decode(body: &[u8], limit: usize) -> Result<WriteBatch, RemoteWriteError> {
    let size =
        snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if size > limit {
        return Err(RemoteWriteError::TooLarge { size, limit });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    let request = proto::WriteRequest::decode(raw.as_slice())
        .map_err(|e| RemoteWriteError::Protobuf(e.to_string()))?;
    let mut batch = WriteBatch::default();
    for ts in request.timeseries {
        batch.histograms_dropped += ts.histograms.len();
        batch.series.push(WrittenSeries {
            labels: Labels::from_pairs(ts.labels.into_iter().map(|l| (l.name, l.value))),
            samples: ts
                .samples
                .into_iter()
                .map(|s| Sample {
                    timestamp_ms: s.timestamp,
                    value: s.value,
                })
                .collect(),
        });
    }
    batch.metadata = request
        .metadata
        .into_iter()
        .map(|m| {
            (
                m.metric_family_name,
                metric_type(m.r#type).to_owned(),
                m.help,
                m.unit,
            )
        })
        .collect();
    Ok(batch)
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
        let batch = decode(&encode(&request()), 1 << 20).unwrap();
        assert_eq!(batch.series.len(), 1);
        assert_eq!(batch.series[0].labels.to_string(), "up{job=\"node\"}");
        assert_eq!(batch.series[0].samples[1].timestamp_ms, 2000);
        assert_eq!(batch.metadata[0].1, "gauge");
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
        let big = encode(&request());
        assert!(matches!(
            decode(&big, 10),
            Err(RemoteWriteError::TooLarge { limit: 10, .. })
        ));
    }
}
