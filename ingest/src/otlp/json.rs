//! OTLP/JSON: the protobuf messages in proto3's JSON mapping as OTLP
//! specifies it (lowerCamelCase keys, snake_case accepted too; 64-bit
//! integers as strings or numbers; enums as numbers). Decoded by walking the
//! JSON, so an error names the path of the bad value
//! (`resourceMetrics[0].scopeMetrics[1].metrics[2].sum.dataPoints[0].asInt`).

use serde_json::{Map, Value};

use super::proto::common::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, Resource, any_value,
};
use super::proto::logs::{ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs};
use super::proto::metrics::{
    Exemplar, ExponentialBuckets, ExponentialHistogram, ExponentialHistogramDataPoint,
    ExportMetricsServiceRequest, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, ValueAtQuantile, exemplar,
    metric, number_data_point,
};
use super::proto::trace::{
    Event, ExportTraceServiceRequest, Link, ResourceSpans, ScopeSpans, Span, Status as SpanStatus,
};

type Result<T> = std::result::Result<T, String>;

/// An object being read, with its path for errors.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: String) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            other => Err(format!("{path}: expected an object, found {}", kind(other))),
        }
    }

    fn get(&self, camel: &str) -> Option<&'a Value> {
        self.map
            .get(camel)
            .or_else(|| self.map.get(&snake(camel)))
            .filter(|v| !v.is_null())
    }

    fn at(&self, camel: &str) -> String {
        if self.path.is_empty() {
            camel.to_owned()
        } else {
            format!("{}.{camel}", self.path)
        }
    }

    fn object(&self, camel: &str) -> Result<Option<Obj<'a>>> {
        self.get(camel)
            .map(|v| Obj::new(v, self.at(camel)))
            .transpose()
    }

    /// Each element of an array field, with its path.
    fn list<T>(
        &self,
        camel: &str,
        mut read: impl FnMut(&'a Value, String) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self.get(camel) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| read(v, format!("{}[{i}]", self.at(camel))))
                .collect(),
            Some(other) => Err(format!(
                "{}: expected an array, found {}",
                self.at(camel),
                kind(other)
            )),
        }
    }

    fn string(&self, camel: &str) -> Result<String> {
        match self.get(camel) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!(
                "{}: expected a string, found {}",
                self.at(camel),
                kind(other)
            )),
        }
    }

    fn boolean(&self, camel: &str) -> Result<bool> {
        match self.get(camel) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!(
                "{}: expected true or false, found {}",
                self.at(camel),
                kind(other)
            )),
        }
    }

    fn u64(&self, camel: &str) -> Result<u64> {
        self.get(camel).map_or(Ok(0), |v| {
            unsigned(v).ok_or_else(|| self.bad(camel, "an unsigned integer", v))
        })
    }

    fn i64(&self, camel: &str) -> Result<i64> {
        self.get(camel).map_or(Ok(0), |v| {
            signed(v).ok_or_else(|| self.bad(camel, "an integer", v))
        })
    }

    fn f64(&self, camel: &str) -> Result<Option<f64>> {
        self.get(camel)
            .map(|v| double(v).ok_or_else(|| self.bad(camel, "a number", v)))
            .transpose()
    }

    fn bad(&self, camel: &str, expected: &str, found: &Value) -> String {
        format!("{}: expected {expected}, found {found}", self.at(camel))
    }
}

fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn unsigned(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn signed(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn double(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

/// `KeyValue` lists (attributes).
fn attributes(obj: &Obj<'_>, camel: &str) -> Result<Vec<KeyValue>> {
    obj.list(camel, key_value)
}

fn key_value(value: &Value, path: String) -> Result<KeyValue> {
    let obj = Obj::new(value, path)?;
    Ok(KeyValue {
        key: obj.string("key")?,
        value: obj.object("value")?.map(|v| any_value(&v)).transpose()?,
    })
}

fn any_value(obj: &Obj<'_>) -> Result<AnyValue> {
    use any_value::Value as V;
    let value = if let Some(v) = obj.get("stringValue") {
        V::StringValue(
            v.as_str()
                .ok_or_else(|| obj.bad("stringValue", "a string", v))?
                .to_owned(),
        )
    } else if obj.get("boolValue").is_some() {
        V::BoolValue(obj.boolean("boolValue")?)
    } else if obj.get("intValue").is_some() {
        V::IntValue(obj.i64("intValue")?)
    } else if obj.get("doubleValue").is_some() {
        V::DoubleValue(obj.f64("doubleValue")?.unwrap_or_default())
    } else if let Some(array) = obj.object("arrayValue")? {
        V::ArrayValue(ArrayValue {
            values: array.list("values", |v, path| any_value(&Obj::new(v, path)?))?,
        })
    } else if let Some(list) = obj.object("kvlistValue")? {
        V::KvlistValue(KeyValueList {
            values: attributes(&list, "values")?,
        })
    } else if let Some(v) = obj.get("bytesValue") {
        // Bytes travel as base64 in JSON; as a label value the base64 text is what Prometheus shows.
        V::StringValue(
            v.as_str()
                .ok_or_else(|| obj.bad("bytesValue", "a base64 string", v))?
                .to_owned(),
        )
    } else {
        return Ok(AnyValue { value: None });
    };
    Ok(AnyValue { value: Some(value) })
}

fn resource(obj: &Obj<'_>) -> Result<Option<Resource>> {
    obj.object("resource")?
        .map(|r| {
            Ok(Resource {
                attributes: attributes(&r, "attributes")?,
            })
        })
        .transpose()
}

fn scope(obj: &Obj<'_>) -> Result<Option<InstrumentationScope>> {
    obj.object("scope")?
        .map(|s| {
            Ok(InstrumentationScope {
                name: s.string("name")?,
                version: s.string("version")?,
                attributes: attributes(&s, "attributes")?,
            })
        })
        .transpose()
}

/// Decodes an `ExportMetricsServiceRequest` in OTLP/JSON.
pub fn metrics_request(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let root = Obj::new(&value, String::new())?;
    Ok(ExportMetricsServiceRequest {
        resource_metrics: root.list("resourceMetrics", |v, path| {
            let rm = Obj::new(v, path)?;
            Ok(ResourceMetrics {
                resource: resource(&rm)?,
                scope_metrics: rm.list("scopeMetrics", |v, path| {
                    let sm = Obj::new(v, path)?;
                    Ok(ScopeMetrics {
                        scope: scope(&sm)?,
                        metrics: sm.list("metrics", |v, path| metric(&Obj::new(v, path)?))?,
                    })
                })?,
            })
        })?,
    })
}

fn metric(obj: &Obj<'_>) -> Result<Metric> {
    let data = if let Some(g) = obj.object("gauge")? {
        Some(metric::Data::Gauge(Gauge {
            data_points: g.list("dataPoints", number_point)?,
        }))
    } else if let Some(s) = obj.object("sum")? {
        Some(metric::Data::Sum(Sum {
            data_points: s.list("dataPoints", number_point)?,
            aggregation_temporality: temporality(&s)?,
            is_monotonic: s.boolean("isMonotonic")?,
        }))
    } else if let Some(h) = obj.object("histogram")? {
        Some(metric::Data::Histogram(Histogram {
            data_points: h.list("dataPoints", histogram_point)?,
            aggregation_temporality: temporality(&h)?,
        }))
    } else if let Some(e) = obj.object("exponentialHistogram")? {
        Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: e.list("dataPoints", |v, path| {
                let p = Obj::new(v, path)?;
                let buckets = |name: &str| -> Result<Option<ExponentialBuckets>> {
                    let Some(value) = p.get(name) else {
                        return Ok(None);
                    };
                    let b = Obj::new(value, p.at(name))?;
                    Ok(Some(ExponentialBuckets {
                        offset: i32::try_from(b.i64("offset")?)
                            .map_err(|_| format!("{}: out of range", b.at("offset")))?,
                        bucket_counts: b.list("bucketCounts", |v, path| {
                            unsigned(v).ok_or_else(|| {
                                format!("{path}: expected an unsigned integer, found {v}")
                            })
                        })?,
                    }))
                };
                Ok(ExponentialHistogramDataPoint {
                    attributes: attributes(&p, "attributes")?,
                    start_time_unix_nano: p.u64("startTimeUnixNano")?,
                    time_unix_nano: p.u64("timeUnixNano")?,
                    count: p.u64("count")?,
                    sum: p.f64("sum")?,
                    scale: i32::try_from(p.i64("scale")?)
                        .map_err(|_| format!("{}: out of range", p.at("scale")))?,
                    zero_count: p.u64("zeroCount")?,
                    positive: buckets("positive")?,
                    negative: buckets("negative")?,
                    flags: u32::try_from(p.u64("flags")?).unwrap_or(0),
                    exemplars: p.list("exemplars", exemplar)?,
                    zero_threshold: p.f64("zeroThreshold")?.unwrap_or_default(),
                })
            })?,
            aggregation_temporality: temporality(&e)?,
        }))
    } else if let Some(s) = obj.object("summary")? {
        Some(metric::Data::Summary(Summary {
            data_points: s.list("dataPoints", summary_point)?,
        }))
    } else {
        None
    };
    Ok(Metric {
        name: obj.string("name")?,
        description: obj.string("description")?,
        unit: obj.string("unit")?,
        data,
    })
}

/// An enum as its number, or its name as proto3 JSON also allows.
fn temporality(obj: &Obj<'_>) -> Result<i32> {
    match obj.get("aggregationTemporality") {
        None => Ok(0),
        Some(Value::String(name)) => match name.as_str() {
            "AGGREGATION_TEMPORALITY_UNSPECIFIED" => Ok(0),
            "AGGREGATION_TEMPORALITY_DELTA" => Ok(1),
            "AGGREGATION_TEMPORALITY_CUMULATIVE" => Ok(2),
            _ => Err(format!(
                "{}: unknown temporality {name:?}",
                obj.at("aggregationTemporality")
            )),
        },
        Some(v) => signed(v)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| obj.bad("aggregationTemporality", "1 (delta) or 2 (cumulative)", v)),
    }
}

fn number_point(value: &Value, path: String) -> Result<NumberDataPoint> {
    let p = Obj::new(value, path)?;
    let value = if p.get("asDouble").is_some() {
        p.f64("asDouble")?.map(number_data_point::Value::AsDouble)
    } else if p.get("asInt").is_some() {
        Some(number_data_point::Value::AsInt(p.i64("asInt")?))
    } else {
        None
    };
    Ok(NumberDataPoint {
        attributes: attributes(&p, "attributes")?,
        start_time_unix_nano: p.u64("startTimeUnixNano")?,
        time_unix_nano: p.u64("timeUnixNano")?,
        value,
        exemplars: p.list("exemplars", exemplar)?,
        flags: u32::try_from(p.u64("flags")?).unwrap_or(0),
    })
}

fn exemplar(value: &Value, path: String) -> Result<Exemplar> {
    let e = Obj::new(value, path)?;
    let value = if e.get("asDouble").is_some() {
        e.f64("asDouble")?.map(exemplar::Value::AsDouble)
    } else if e.get("asInt").is_some() {
        Some(exemplar::Value::AsInt(e.i64("asInt")?))
    } else {
        None
    };
    Ok(Exemplar {
        filtered_attributes: attributes(&e, "filteredAttributes")?,
        time_unix_nano: e.u64("timeUnixNano")?,
        value,
        span_id: hex_id(&e, "spanId", 8)?,
        trace_id: hex_id(&e, "traceId", 16)?,
    })
}

fn histogram_point(value: &Value, path: String) -> Result<HistogramDataPoint> {
    let p = Obj::new(value, path)?;
    Ok(HistogramDataPoint {
        attributes: attributes(&p, "attributes")?,
        start_time_unix_nano: p.u64("startTimeUnixNano")?,
        time_unix_nano: p.u64("timeUnixNano")?,
        count: p.u64("count")?,
        sum: p.f64("sum")?,
        bucket_counts: p.list("bucketCounts", |v, path| {
            unsigned(v).ok_or_else(|| format!("{path}: expected an unsigned integer, found {v}"))
        })?,
        explicit_bounds: p.list("explicitBounds", |v, path| {
            double(v).ok_or_else(|| format!("{path}: expected a number, found {v}"))
        })?,
        exemplars: p.list("exemplars", exemplar)?,
        flags: u32::try_from(p.u64("flags")?).unwrap_or(0),
    })
}

fn summary_point(value: &Value, path: String) -> Result<SummaryDataPoint> {
    let p = Obj::new(value, path)?;
    Ok(SummaryDataPoint {
        attributes: attributes(&p, "attributes")?,
        start_time_unix_nano: p.u64("startTimeUnixNano")?,
        time_unix_nano: p.u64("timeUnixNano")?,
        count: p.u64("count")?,
        sum: p.f64("sum")?.unwrap_or_default(),
        quantile_values: p.list("quantileValues", |v, path| {
            let q = Obj::new(v, path)?;
            Ok(ValueAtQuantile {
                quantile: q.f64("quantile")?.unwrap_or_default(),
                value: q.f64("value")?.unwrap_or_default(),
            })
        })?,
        flags: u32::try_from(p.u64("flags")?).unwrap_or(0),
    })
}

/// Decodes an `ExportLogsServiceRequest` in OTLP/JSON (trace and span ids in hex).
pub fn logs_request(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let root = Obj::new(&value, String::new())?;
    Ok(ExportLogsServiceRequest {
        resource_logs: root.list("resourceLogs", |v, path| {
            let rl = Obj::new(v, path)?;
            Ok(ResourceLogs {
                resource: resource(&rl)?,
                scope_logs: rl.list("scopeLogs", |v, path| {
                    let sl = Obj::new(v, path)?;
                    Ok(ScopeLogs {
                        scope: scope(&sl)?,
                        log_records: sl
                            .list("logRecords", |v, path| log_record(&Obj::new(v, path)?))?,
                    })
                })?,
            })
        })?,
    })
}

fn log_record(obj: &Obj<'_>) -> Result<LogRecord> {
    Ok(LogRecord {
        time_unix_nano: obj.u64("timeUnixNano")?,
        observed_time_unix_nano: obj.u64("observedTimeUnixNano")?,
        severity_number: match obj.get("severityNumber") {
            None => 0,
            Some(v) => signed(v)
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| obj.bad("severityNumber", "a number from 1 to 24", v))?,
        },
        severity_text: obj.string("severityText")?,
        body: obj.object("body")?.map(|b| any_value(&b)).transpose()?,
        attributes: attributes(obj, "attributes")?,
        trace_id: hex_id(obj, "traceId", 16)?,
        span_id: hex_id(obj, "spanId", 8)?,
        event_name: obj.string("eventName")?,
    })
}

/// `ExportTraceServiceRequest` from OTLP/JSON (ids in hex).
pub fn traces_request(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let root = Obj::new(&value, String::new())?;
    Ok(ExportTraceServiceRequest {
        resource_spans: root.list("resourceSpans", |v, path| {
            let rs = Obj::new(v, path)?;
            Ok(ResourceSpans {
                resource: resource(&rs)?,
                scope_spans: rs.list("scopeSpans", |v, path| {
                    let ss = Obj::new(v, path)?;
                    Ok(ScopeSpans {
                        scope: scope(&ss)?,
                        spans: ss.list("spans", |v, path| span(&Obj::new(v, path)?))?,
                    })
                })?,
            })
        })?,
    })
}

fn span(obj: &Obj<'_>) -> Result<Span> {
    Ok(Span {
        trace_id: hex_id(obj, "traceId", 16)?,
        span_id: hex_id(obj, "spanId", 8)?,
        trace_state: obj.string("traceState")?,
        parent_span_id: hex_id(obj, "parentSpanId", 8)?,
        name: obj.string("name")?,
        kind: named_enum(
            obj,
            "kind",
            &[
                "SPAN_KIND_UNSPECIFIED",
                "SPAN_KIND_INTERNAL",
                "SPAN_KIND_SERVER",
                "SPAN_KIND_CLIENT",
                "SPAN_KIND_PRODUCER",
                "SPAN_KIND_CONSUMER",
            ],
        )?,
        start_time_unix_nano: obj.u64("startTimeUnixNano")?,
        end_time_unix_nano: obj.u64("endTimeUnixNano")?,
        attributes: attributes(obj, "attributes")?,
        events: obj.list("events", |v, path| {
            let e = Obj::new(v, path)?;
            Ok(Event {
                time_unix_nano: e.u64("timeUnixNano")?,
                name: e.string("name")?,
                attributes: attributes(&e, "attributes")?,
            })
        })?,
        links: obj.list("links", |v, path| {
            let l = Obj::new(v, path)?;
            Ok(Link {
                trace_id: hex_id(&l, "traceId", 16)?,
                span_id: hex_id(&l, "spanId", 8)?,
            })
        })?,
        status: obj
            .object("status")?
            .map(|st| {
                Ok::<_, String>(SpanStatus {
                    message: st.string("message")?,
                    code: named_enum(
                        &st,
                        "code",
                        &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"],
                    )?,
                })
            })
            .transpose()?,
    })
}

/// An enum as its number, or its name (`names[n]` is number `n`).
fn named_enum(obj: &Obj<'_>, camel: &str, names: &[&str]) -> Result<i32> {
    match obj.get(camel) {
        None => Ok(0),
        Some(Value::String(name)) => names
            .iter()
            .position(|n| n == name)
            .map(|n| n as i32)
            .ok_or_else(|| {
                format!(
                    "{}: unknown value {name:?} (expected one of {})",
                    obj.at(camel),
                    names.join(", ")
                )
            }),
        Some(v) => signed(v)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| obj.bad(camel, "an enum number or name", v)),
    }
}

/// A trace or span id: hex in OTLP/JSON, `bytes` long (empty when absent).
fn hex_id(obj: &Obj<'_>, camel: &str, bytes: usize) -> Result<Vec<u8>> {
    let text = obj.string(camel)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let valid = text.len() == bytes * 2 && text.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(format!(
            "{}: expected {} hex digits, found {text:?}",
            obj.at(camel),
            bytes * 2
        ));
    }
    Ok((0..bytes)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_example_decodes() {
        let body = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},
          "scopeMetrics":[{"scope":{"name":"my.library","version":"1.0.0"},"metrics":[
            {"name":"my.counter","unit":"1","description":"I am a Counter","sum":{"aggregationTemporality":1,"isMonotonic":true,
              "dataPoints":[{"asDouble":5,"startTimeUnixNano":"1544712660300000000","timeUnixNano":"1544712660300000000",
                "attributes":[{"key":"my.counter.attr","value":{"stringValue":"some value"}}]}]}},
            {"name":"my.gauge","gauge":{"dataPoints":[{"asInt":"10","time_unix_nano":1544712660300000000}]}},
            {"name":"my.histogram","histogram":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","dataPoints":[
              {"count":"2","sum":2,"bucketCounts":["1","1"],"explicitBounds":[1],"timeUnixNano":"1544712660300000000"}]}}]}]}]}"#;
        let request = metrics_request(body).unwrap();
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("sum")
        };
        assert_eq!((sum.aggregation_temporality, sum.is_monotonic), (1, true));
        assert_eq!(sum.data_points[0].time_unix_nano, 1_544_712_660_300_000_000);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsDouble(5.0))
        );
        let Some(metric::Data::Gauge(gauge)) = &metrics[1].data else {
            panic!("gauge")
        };
        assert_eq!(
            gauge.data_points[0].value,
            Some(number_data_point::Value::AsInt(10))
        );
        let Some(metric::Data::Histogram(h)) = &metrics[2].data else {
            panic!("histogram")
        };
        assert_eq!(h.aggregation_temporality, 2);
        assert_eq!(h.data_points[0].bucket_counts, [1, 1]);
    }

    #[test]
    fn errors_name_the_path() {
        let err = metrics_request(
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"asInt":"ten"}]}}]}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].asInt: expected an integer, found \"ten\""
        );
        assert!(
            metrics_request(b"{")
                .unwrap_err()
                .starts_with("body is not JSON")
        );
        assert!(
            metrics_request(br#"{"resourceMetrics":{}}"#)
                .unwrap_err()
                .contains("resourceMetrics: expected an array")
        );
    }
}
