//! Traces in Jaeger's JSON model (what Grafana's Jaeger data source and the
//! Jaeger UI read), the span tree, and the correlation view that joins the
//! logs and spans of one request id on one timeline.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};
use sextant_model::{FieldValue, LogRecord, SpanKind, SpanRecord, SpanStatus};

/// RFC 3339 with microseconds, as every Sextant API writes times.
pub fn timestamp(us: i64) -> String {
    sextant_model::time::rfc3339_utc(i128::from(us) * 1000, 6)
}

/// A log record as the log search API shows it.
pub fn log_json(record: &LogRecord) -> Value {
    let fields: serde_json::Map<String, Value> = record
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), value.to_json()))
        .collect();
    json!({
        "timestamp": timestamp(record.timestamp_us),
        "service": record.service,
        "level": record.level.as_str(),
        "host": record.host,
        "message": record.message,
        "fields": fields,
    })
}

/// A Jaeger key-value: `{key, type, value}` typed as Jaeger types them.
fn tag(key: &str, value: &FieldValue) -> Value {
    let (kind, value) = match value {
        FieldValue::Str(s) => ("string", json!(s)),
        FieldValue::Int(i) => ("int64", json!(i)),
        FieldValue::Float(x) => ("float64", json!(x)),
        FieldValue::Bool(b) => ("bool", json!(b)),
    };
    json!({ "key": key, "type": kind, "value": value })
}

fn tags(map: &BTreeMap<String, FieldValue>) -> Vec<Value> {
    map.iter().map(|(k, v)| tag(k, v)).collect()
}

/// One trace in Jaeger's model: spans with references, tags and logs, and
/// one process per service (with the resource attributes as its tags).
pub fn jaeger_trace(spans: &[SpanRecord]) -> Value {
    let mut processes: Vec<(&str, &BTreeMap<String, FieldValue>)> = Vec::new();
    let mut process_ids: HashMap<(&str, String), String> = HashMap::new();
    let mut out = Vec::with_capacity(spans.len());
    for span in spans {
        let resource_key = format!("{:?}", span.resource);
        let process_id = process_ids
            .entry((span.service.as_str(), resource_key))
            .or_insert_with(|| {
                processes.push((&span.service, &span.resource));
                format!("p{}", processes.len())
            })
            .clone();
        let mut references = Vec::new();
        if !span.parent_span_id.is_empty() {
            references.push(json!({
                "refType": "CHILD_OF",
                "traceID": span.trace_id,
                "spanID": span.parent_span_id,
            }));
        }
        for link in &span.links {
            references.push(json!({
                "refType": "FOLLOWS_FROM",
                "traceID": link.trace_id,
                "spanID": link.span_id,
            }));
        }
        let mut span_tags = tags(&span.attributes);
        if span.kind != SpanKind::Unspecified {
            span_tags.push(tag(
                "span.kind",
                &FieldValue::Str(span.kind.as_str().into()),
            ));
        }
        match span.status {
            SpanStatus::Unset => {}
            SpanStatus::Ok => {
                span_tags.push(tag("otel.status_code", &FieldValue::Str("OK".into())));
            }
            SpanStatus::Error => {
                span_tags.push(tag("otel.status_code", &FieldValue::Str("ERROR".into())));
                span_tags.push(tag("error", &FieldValue::Bool(true)));
                if !span.status_message.is_empty() {
                    span_tags.push(tag(
                        "otel.status_description",
                        &FieldValue::Str(span.status_message.clone()),
                    ));
                }
            }
        }
        if !span.scope.is_empty() {
            span_tags.push(tag("otel.scope.name", &FieldValue::Str(span.scope.clone())));
        }
        let logs: Vec<Value> = span
            .events
            .iter()
            .map(|event| {
                let mut fields = vec![tag("event", &FieldValue::Str(event.name.clone()))];
                fields.extend(tags(&event.attributes));
                json!({ "timestamp": event.timestamp_us, "fields": fields })
            })
            .collect();
        out.push(json!({
            "traceID": span.trace_id,
            "spanID": span.span_id,
            "flags": 1,
            "operationName": span.operation,
            "references": references,
            "startTime": span.start_us,
            "duration": span.duration_us,
            "tags": span_tags,
            "logs": logs,
            "processID": process_id,
            "warnings": null,
        }));
    }
    let processes: serde_json::Map<String, Value> = processes
        .iter()
        .enumerate()
        .map(|(i, (service, resource))| {
            let resource_tags: Vec<Value> = resource
                .iter()
                .filter(|(k, _)| k.as_str() != "service.name")
                .map(|(k, v)| tag(k, v))
                .collect();
            (
                format!("p{}", i + 1),
                json!({ "serviceName": service, "tags": resource_tags }),
            )
        })
        .collect();
    json!({
        "traceID": spans.first().map(|s| s.trace_id.as_str()).unwrap_or_default(),
        "spans": out,
        "processes": processes,
        "warnings": null,
    })
}

/// A Go duration (`1.5ms`, `100us`, `2h45m`, `300ms`) in microseconds, as
/// Jaeger's `minDuration`/`maxDuration` take them.
pub fn parse_go_duration(text: &str) -> Option<i64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-3,
            "us" | "µs" | "μs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" => 60e6,
            "h" => 3600e6,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * factor;
    }
    Some(total.round() as i64)
}

/// The span tree of a trace: roots (spans whose parent is not in the
/// trace) with their children nested, each in start order.
pub fn span_tree(spans: &[SpanRecord]) -> Vec<Value> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&SpanRecord>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        if span.parent_span_id.is_empty() || !ids.contains(span.parent_span_id.as_str()) {
            roots.push(span);
        } else {
            children
                .entry(span.parent_span_id.as_str())
                .or_default()
                .push(span);
        }
    }
    fn node(span: &SpanRecord, children: &HashMap<&str, Vec<&SpanRecord>>, depth: usize) -> Value {
        let mut kids: Vec<&SpanRecord> = children
            .get(span.span_id.as_str())
            .cloned()
            .unwrap_or_default();
        kids.sort_by_key(|s| s.start_us);
        // A cycle of parent ids cannot recurse forever.
        let nested: Vec<Value> = if depth < 256 {
            kids.iter().map(|k| node(k, children, depth + 1)).collect()
        } else {
            Vec::new()
        };
        json!({
            "span_id": span.span_id,
            "service": span.service,
            "operation": span.operation,
            "start": timestamp(span.start_us),
            "duration_us": span.duration_us,
            "status": span.status.as_str(),
            "children": nested,
        })
    }
    roots.sort_by_key(|s| s.start_us);
    roots.iter().map(|r| node(r, &children, 0)).collect()
}

fn span_json(span: &SpanRecord) -> Value {
    json!({
        "timestamp": timestamp(span.start_us),
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "service": span.service,
        "operation": span.operation,
        "kind": span.kind.as_str(),
        "status": span.status.as_str(),
        "duration_us": span.duration_us,
        "attributes": span.attributes.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<serde_json::Map<_, _>>(),
    })
}

/// The correlation view of `id`: its logs and spans in time order, the
/// services they came from, one timeline, and the span tree of every trace.
pub fn correlation(id: &str, mut logs: Vec<LogRecord>, mut spans: Vec<SpanRecord>) -> Value {
    logs.sort_by_key(|l| l.timestamp_us);
    spans.sort_by_key(|s| s.start_us);
    let mut services: BTreeMap<&str, (usize, usize, i64, i64)> = BTreeMap::new();
    for log in &logs {
        let entry = services
            .entry(log.service.as_str())
            .or_insert((0, 0, i64::MAX, i64::MIN));
        entry.0 += 1;
        entry.2 = entry.2.min(log.timestamp_us);
        entry.3 = entry.3.max(log.timestamp_us);
    }
    for span in &spans {
        let entry = services
            .entry(span.service.as_str())
            .or_insert((0, 0, i64::MAX, i64::MIN));
        entry.1 += 1;
        entry.2 = entry.2.min(span.start_us);
        entry.3 = entry.3.max(span.start_us + span.duration_us);
    }
    let services: Vec<Value> = services
        .iter()
        .map(|(name, (logs, spans, first, last))| {
            json!({
                "name": name,
                "logs": logs,
                "spans": spans,
                "first": timestamp(*first),
                "last": timestamp(*last),
            })
        })
        .collect();
    let mut timeline: Vec<(i64, Value)> = Vec::with_capacity(logs.len() + spans.len());
    for log in &logs {
        let mut entry = log_json(log);
        entry["kind"] = json!("log");
        timeline.push((log.timestamp_us, entry));
    }
    for span in &spans {
        let mut entry = span_json(span);
        entry["kind"] = json!("span");
        timeline.push((span.start_us, entry));
    }
    timeline.sort_by_key(|(t, _)| *t);
    let mut by_trace: BTreeMap<&str, Vec<SpanRecord>> = BTreeMap::new();
    for span in &spans {
        by_trace
            .entry(span.trace_id.as_str())
            .or_default()
            .push(span.clone());
    }
    let traces: Vec<Value> = by_trace
        .iter()
        .map(|(trace_id, spans)| json!({ "trace_id": trace_id, "tree": span_tree(spans) }))
        .collect();
    json!({
        "id": id,
        "services": services,
        "logs": logs.iter().map(log_json).collect::<Vec<_>>(),
        "spans": spans.iter().map(span_json).collect::<Vec<_>>(),
        "timeline": timeline.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "traces": traces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, service: &str, start: i64) -> SpanRecord {
        SpanRecord {
            trace_id: "t".repeat(32),
            span_id: id.to_owned(),
            parent_span_id: parent.to_owned(),
            service: service.to_owned(),
            operation: format!("op {id}"),
            kind: SpanKind::Server,
            status: SpanStatus::Error,
            status_message: "boom".to_owned(),
            start_us: start,
            duration_us: 10,
            attributes: BTreeMap::from([("uuid".to_owned(), FieldValue::Str("u".into()))]),
            resource: BTreeMap::from([("host.name".to_owned(), FieldValue::Str("h".into()))]),
            scope: String::new(),
            scope_version: String::new(),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1.5ms"), Some(1500));
        assert_eq!(
            parse_go_duration("2h45m"),
            Some((2 * 3600 + 45 * 60) * 1_000_000)
        );
        assert_eq!(parse_go_duration("100us"), Some(100));
        assert_eq!(parse_go_duration("1s500ms"), Some(1_500_000));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("ms"), None);
    }

    #[test]
    fn jaeger_model_and_tree() {
        let spans = vec![
            span("a", "", "profile", 100),
            span("b", "a", "profile", 110),
            span("c", "a", "settings", 105),
        ];
        let trace = jaeger_trace(&spans);
        assert_eq!(trace["spans"].as_array().unwrap().len(), 3);
        assert_eq!(trace["spans"][1]["references"][0]["spanID"], "a");
        assert_eq!(trace["spans"][2]["processID"], "p2");
        assert_eq!(trace["processes"]["p2"]["serviceName"], "settings");
        assert_eq!(trace["processes"]["p1"]["tags"][0]["key"], "host.name");
        let tags = trace["spans"][0]["tags"].as_array().unwrap();
        assert!(tags.contains(&json!({"key": "error", "type": "bool", "value": true})));
        assert!(tags.contains(&json!({"key": "span.kind", "type": "string", "value": "server"})));
        let tree = span_tree(&spans);
        assert_eq!(tree.len(), 1);
        assert_eq!(
            tree[0]["children"][0]["span_id"], "c",
            "children in start order"
        );
        let view = correlation("u", Vec::new(), spans);
        assert_eq!(view["services"][0]["name"], "profile");
        assert_eq!(view["services"][0]["spans"], 2);
        assert_eq!(view["timeline"][1]["span_id"], "c");
        assert_eq!(view["traces"][0]["tree"][0]["span_id"], "a");
    }
}
