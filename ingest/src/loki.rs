//! Loki's push API, `POST /loki/api/v1/push`, as Promtail, Grafana Agent,
//! Fluent Bit's loki output and the Docker driver send it: snappy
//! protobuf `PushRequest` or JSON `{"streams": [{"stream", "values"}]}`.
//! Stream labels become fields (and name the service); a line that is a
//! JSON object is read as one, any other line is the message.

use prost::Message as _;
use serde_json::{Map, Value};
use sextant_model::LogRecord;

use crate::logs::Normalizer;
use crate::prom_text::{Entry, Format, Parser};

/// Loki's protobuf messages (`logproto`).
pub mod proto {
    /// `logproto.PushRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<Stream>,
    }

    /// `logproto.StreamAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stream {
        /// `{name="value", ...}`.
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
    }

    /// `logproto.EntryAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPair>,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// `logproto.LabelPairAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

/// Labels that name a stream's service, in order.
const SERVICE_LABELS: [&str; 4] = ["service_name", "service", "app", "job"];

/// What a push brought: the records to store, and the entries refused by a
/// limit (each named by its place in the push).
#[derive(Debug, Default)]
pub struct Push {
    pub records: Vec<LogRecord>,
    pub refused: Vec<String>,
}

/// Reads a push body (already gunzipped for JSON; a snappy body may unpack to
/// at most `max_decompressed` bytes): its records, or why the body is bad.
pub fn parse(
    body: &[u8],
    protobuf: bool,
    normalizer: &Normalizer,
    max_decompressed: usize,
) -> Result<Push, String> {
    let mut out = Push::default();
    if protobuf {
        // The length is declared up front: refuse a small body that would
        // unpack into more memory than any honest push needs.
        let declared = snap::raw::decompress_len(body)
            .map_err(|e| format!("body is not snappy-compressed: {e}"))?;
        if declared > max_decompressed {
            crate::limits::REFUSED.decompressed_body.inc();
            return Err(format!(
                "body would decompress to {declared} bytes, more than limits.max_decompressed_body ({max_decompressed} bytes)"
            ));
        }
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| format!("body is not snappy-compressed: {e}"))?;
        let request = proto::PushRequest::decode(&raw[..])
            .map_err(|e| format!("body is not a Loki PushRequest: {e}"))?;
        for (i, stream) in request.streams.iter().enumerate() {
            let labels =
                stream_labels(&stream.labels).map_err(|e| format!("streams[{i}].labels: {e}"))?;
            for (j, entry) in stream.entries.iter().enumerate() {
                let ts = entry.timestamp.unwrap_or_default();
                let us = ts.seconds.saturating_mul(1_000_000) + i64::from(ts.nanos) / 1000;
                let metadata: Vec<(String, String)> = entry
                    .structured_metadata
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect();
                match record(&entry.line, us, &labels, &metadata, normalizer) {
                    Ok(record) => out.records.push(record),
                    Err(e) => out.refused.push(format!("streams[{i}].entries[{j}]: {e}")),
                }
            }
        }
        return Ok(out);
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let streams = value
        .get("streams")
        .and_then(Value::as_array)
        .ok_or("the body needs a \"streams\" array")?;
    for (i, stream) in streams.iter().enumerate() {
        let labels = pairs(stream.get("stream"));
        let values = stream
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("streams[{i}]: needs a \"values\" array"))?;
        for (j, entry) in values.iter().enumerate() {
            let at = |what: &str| format!("streams[{i}].values[{j}]: {what}");
            let entry = entry
                .as_array()
                .ok_or_else(|| at("expected [timestamp, line]"))?;
            let nanos: i128 = match entry.first() {
                Some(Value::String(s)) => s
                    .parse()
                    .map_err(|_| at("the timestamp must be unix nanoseconds"))?,
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(i128::from)
                    .ok_or_else(|| at("bad timestamp"))?,
                _ => return Err(at("expected [timestamp, line]")),
            };
            let line = entry
                .get(1)
                .and_then(Value::as_str)
                .ok_or_else(|| at("the line must be a string"))?;
            let metadata = pairs(entry.get(2));
            let us = i64::try_from(nanos / 1000).unwrap_or(i64::MAX);
            match record(line, us, &labels, &metadata, normalizer) {
                Ok(record) => out.records.push(record),
                Err(e) => out.refused.push(at(&e)),
            }
        }
    }
    Ok(out)
}

/// A JSON object's entries as text pairs (labels, structured metadata).
fn pairs(object: Option<&Value>) -> Vec<(String, String)> {
    object
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `{a="b", c="d"}` as pairs, read by the exposition parser's label reader.
fn stream_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let text = text.trim();
    if text.is_empty() || text == "{}" {
        return Ok(Vec::new());
    }
    let line = format!("stream{text} 0");
    let mut parser = Parser::new(&line, Format::Prometheus);
    match parser.next() {
        Some(Ok(Entry::Sample(_))) => Ok(parser
            .labels()
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone().into_owned()))
            .collect()),
        Some(Err(e)) => Err(format!("{text:?} is not a label set: {}", e.message)),
        _ => Err(format!("{text:?} is not a label set")),
    }
}

fn record(
    line: &str,
    timestamp_us: i64,
    labels: &[(String, String)],
    metadata: &[(String, String)],
    normalizer: &Normalizer,
) -> Result<LogRecord, String> {
    normalizer.check_event_size(line.len())?;
    let mut object = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => object,
        _ => Map::from_iter([("message".to_owned(), Value::from(line))]),
    };
    for (name, value) in labels.iter().chain(metadata) {
        object
            .entry(name.clone())
            .or_insert_with(|| Value::from(value.as_str()));
    }
    let service = SERVICE_LABELS
        .iter()
        .find_map(|n| labels.iter().find(|(l, _)| l == n).map(|(_, v)| v.as_str()));
    // A time inside a JSON line wins; otherwise the entry's time is the record's.
    let mut record = normalizer.record(object, timestamp_us, service);
    normalizer.finish(&mut record)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::{FieldValue, Level};

    #[test]
    fn json_and_protobuf_pushes_read_alike() {
        let json = br#"{"streams": [{"stream": {"app": "orders", "env": "prod"},
            "values": [["1795860000000000000", "order 17 placed"],
                       ["1795860001000000000", "{\"msg\": \"order 18 failed\", \"level\": \"error\"}", {"trace_id": "t1"}]]}]}"#;
        let from_json = parse(json, false, &Normalizer::default(), 1 << 20)
            .unwrap()
            .records;
        let request = proto::PushRequest {
            streams: vec![proto::Stream {
                labels: r#"{app="orders", env="prod"}"#.to_owned(),
                entries: vec![
                    proto::EntryAdapter {
                        timestamp: Some(proto::Timestamp {
                            seconds: 1_795_860_000,
                            nanos: 0,
                        }),
                        line: "order 17 placed".to_owned(),
                        structured_metadata: vec![],
                    },
                    proto::EntryAdapter {
                        timestamp: Some(proto::Timestamp {
                            seconds: 1_795_860_001,
                            nanos: 0,
                        }),
                        line: r#"{"msg": "order 18 failed", "level": "error"}"#.to_owned(),
                        structured_metadata: vec![proto::LabelPair {
                            name: "trace_id".into(),
                            value: "t1".into(),
                        }],
                    },
                ],
            }],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap();
        let from_proto = parse(&body, true, &Normalizer::default(), 1 << 20)
            .unwrap()
            .records;
        assert_eq!(from_json, from_proto);
        assert_eq!(from_json[0].message, "order 17 placed");
        assert_eq!(from_json[0].service, "orders");
        assert_eq!(from_json[0].timestamp_us, 1_795_860_000_000_000);
        assert_eq!(from_json[0].fields["env"], FieldValue::Str("prod".into()));
        assert_eq!(from_json[1].message, "order 18 failed");
        assert_eq!(from_json[1].level, Level::Error);
        assert_eq!(
            from_json[1].fields["trace_id"],
            FieldValue::Str("t1".into())
        );
    }

    #[test]
    fn bad_pushes_say_where() {
        let normalizer = Normalizer::default();
        for (body, protobuf, reason) in [
            (&b"{}"[..], false, "needs a \"streams\" array"),
            (
                br#"{"streams": [{"values": [["x", "l"]]}]}"#,
                false,
                "streams[0].values[0]: the timestamp",
            ),
            (
                br#"{"streams": [{"values": [["1", 2]]}]}"#,
                false,
                "the line must be a string",
            ),
            (b"not snappy", true, "not snappy-compressed"),
        ] {
            let err = parse(body, protobuf, &normalizer, 1 << 20).unwrap_err();
            assert!(err.contains(reason), "{err}");
        }
    }

    #[test]
    fn entries_over_a_limit_are_refused_by_place_and_the_rest_kept() {
        let limits = crate::limits::Limits {
            max_log_event: 20,
            max_fields_per_log: 3,
            ..Default::default()
        };
        let normalizer = Normalizer::default().with_limits(&limits);
        let body = br#"{"streams": [{"stream": {"app": "orders"},
            "values": [["1", "short"], ["2", "a line well over twenty bytes"],
                       ["3", "{\"a\":1,\"b\":2,\"c\":3}"]]}]}"#;
        let push = parse(body, false, &normalizer, 1 << 20).unwrap();
        assert_eq!(push.records.len(), 1);
        assert_eq!(push.records[0].message, "short");
        assert_eq!(push.refused.len(), 2, "{:?}", push.refused);
        assert!(push.refused[0].starts_with("streams[0].values[1]: the event is 29 bytes"));
        assert!(push.refused[0].contains("limits.max_log_event (20 bytes)"));
        assert!(push.refused[1].contains("4 fields, more than limits.max_fields_per_log (3)"));
        let snappy = snap::raw::Encoder::new()
            .compress_vec(&[0u8; 4096])
            .unwrap();
        let err = parse(&snappy, true, &normalizer, 1024).unwrap_err();
        assert!(
            err.contains("limits.max_decompressed_body (1024 bytes)"),
            "{err}"
        );
    }
}
