//! OTLP spans to Sextant's [`SpanRecord`]: ids in lowercase hex, the
//! resource's `service.name` as the service (`unknown_service` without one,
//! as the SDKs default), times in microseconds, attributes, events and
//! links kept. A span without a valid trace or span id is refused and named
//! in the partial success; the rest of the batch is kept.

use std::collections::BTreeMap;

use sextant_model::{FieldValue, SpanEvent, SpanKind, SpanLink, SpanRecord, SpanStatus};

use super::logs::{hex, owned_field};
use super::proto::common::KeyValue;
use super::proto::trace::{ExportTraceServiceRequest, Span};

/// The spans of one request, and the refused ones with why.
#[derive(Debug, Default)]
pub struct Converted {
    pub spans: Vec<SpanRecord>,
    pub rejected: u64,
    pub reasons: Vec<String>,
}

fn attributes(list: Vec<KeyValue>) -> BTreeMap<String, FieldValue> {
    list.into_iter()
        .map(|kv| (kv.key, owned_field(kv.value)))
        .collect()
}

fn micros(nanos: u64) -> i64 {
    i64::try_from(nanos / 1000).unwrap_or(i64::MAX)
}

/// Why a span cannot be kept, if it cannot.
fn problem(span: &Span) -> Option<String> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        Some(format!(
            "span {:?}: trace id must be 16 bytes, not all zero (found {} bytes)",
            span.name,
            span.trace_id.len()
        ))
    } else if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        Some(format!(
            "span {:?}: span id must be 8 bytes, not all zero (found {} bytes)",
            span.name,
            span.span_id.len()
        ))
    } else if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        Some(format!(
            "span {:?}: parent span id must be 8 bytes or empty (found {} bytes)",
            span.name,
            span.parent_span_id.len()
        ))
    } else {
        None
    }
}

/// Converts a request's spans, moving their strings out of it.
pub fn convert(request: ExportTraceServiceRequest) -> Converted {
    let mut out = Converted::default();
    for rs in request.resource_spans {
        let resource = attributes(rs.resource.map(|r| r.attributes).unwrap_or_default());
        let service = match resource.get("service.name") {
            Some(FieldValue::Str(name)) if !name.is_empty() => name.clone(),
            _ => "unknown_service".to_owned(),
        };
        for ss in rs.scope_spans {
            let (scope, scope_version) = ss
                .scope
                .map_or_else(Default::default, |s| (s.name, s.version));
            for span in ss.spans {
                if let Some(reason) = problem(&span) {
                    out.rejected += 1;
                    if out.reasons.len() < 5 {
                        out.reasons.push(reason);
                    }
                    continue;
                }
                let start_us = micros(span.start_time_unix_nano);
                let end_us = micros(span.end_time_unix_nano);
                let (status_code, status_message) = span
                    .status
                    .map_or((0, String::new()), |s| (s.code, s.message));
                out.spans.push(SpanRecord {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    service: service.clone(),
                    operation: span.name,
                    kind: SpanKind::from_otel(span.kind),
                    status: SpanStatus::from_otel(status_code),
                    status_message,
                    start_us,
                    duration_us: end_us.saturating_sub(start_us).max(0),
                    attributes: attributes(span.attributes),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    scope_version: scope_version.clone(),
                    events: span
                        .events
                        .into_iter()
                        .map(|e| SpanEvent {
                            timestamp_us: micros(e.time_unix_nano),
                            name: e.name,
                            attributes: attributes(e.attributes),
                        })
                        .collect(),
                    links: span
                        .links
                        .iter()
                        .map(|l| SpanLink {
                            trace_id: hex(&l.trace_id),
                            span_id: hex(&l.span_id),
                        })
                        .collect(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_json_example_converts_and_bad_ids_are_refused() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},
          "scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0"},"spans":[
            {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173",
             "name":"I'm a server span","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
             "kind":2,"attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}}],
             "events":[{"timeUnixNano":"1544712660500000000","name":"retry"}],
             "status":{"code":"STATUS_CODE_ERROR","message":"boom"}},
            {"traceId":"5B8E","spanId":"EEE19B7EC3C1B175","name":"bad"}]}]}]}"#;
        let err = super::super::json::traces_request(body).unwrap_err();
        assert!(
            err.contains("resourceSpans[0].scopeSpans[0].spans[1].traceId"),
            "{err}"
        );
        let good = String::from_utf8_lossy(body).replace(
            r#""traceId":"5B8E","#,
            r#""traceId":"00000000000000000000000000000000","#,
        );
        let request = super::super::json::traces_request(good.as_bytes()).unwrap();
        let converted = convert(request);
        assert_eq!(converted.rejected, 1, "{:?}", converted.reasons);
        assert!(converted.reasons[0].contains("\"bad\""));
        let span = &converted.spans[0];
        assert_eq!(span.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(span.parent_span_id, "eee19b7ec3c1b173");
        assert_eq!(span.service, "my.service");
        assert_eq!(
            (span.kind, span.status),
            (SpanKind::Server, SpanStatus::Error)
        );
        assert_eq!(span.status_message, "boom");
        assert_eq!(
            (span.start_us, span.duration_us),
            (1_544_712_660_000_000, 1_000_000)
        );
        assert_eq!(span.events[0].name, "retry");
        assert_eq!(span.scope, "my.library");
        assert_eq!(
            span.attributes["my.span.attr"],
            FieldValue::Str("some value".to_owned())
        );
    }
}
