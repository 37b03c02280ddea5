//! OTLP log records to Sextant's [`LogRecord`]: the body as the message,
//! the severity number (else its text) as the level, `service.name` as the
//! service, `host.name` as the host, attributes as fields, resource
//! attributes as `resource.*` fields, and the trace and span ids in hex as
//! `trace_id`/`span_id`, the fields the correlation view follows.

use std::collections::BTreeMap;

use sextant_model::{FieldValue, Level, LogRecord};

use super::proto::common::{AnyValue, KeyValue, any_value};
use super::proto::logs::ExportLogsServiceRequest;
use crate::logs::Normalizer;

/// The records of one request, redacted, with `now_us` for records without a
/// time; and why each record over a limit (`limits.max_fields_per_log`) was refused.
pub fn convert(
    request: &ExportLogsServiceRequest,
    normalizer: &Normalizer,
    now_us: i64,
) -> (Vec<LogRecord>, Vec<String>) {
    let mut refused = Vec::new();
    let mut out = Vec::new();
    for rl in &request.resource_logs {
        let resource = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let text_of = |key: &str| {
            resource
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| field(kv.value.as_ref()).to_text())
        };
        let service = text_of("service.name").unwrap_or_default();
        let host = text_of("host.name").unwrap_or_default();
        for sl in &rl.scope_logs {
            for log in &sl.log_records {
                let nanos = if log.time_unix_nano != 0 {
                    log.time_unix_nano
                } else {
                    log.observed_time_unix_nano
                };
                let timestamp_us = if nanos == 0 {
                    now_us
                } else {
                    i64::try_from(nanos / 1000).unwrap_or(i64::MAX)
                };
                let level = Level::from_otel(log.severity_number)
                    .or_else(|| Level::parse(&log.severity_text))
                    .unwrap_or_default();
                let mut fields = BTreeMap::new();
                add(&mut fields, "", &log.attributes);
                add(&mut fields, "resource.", resource);
                if !log.trace_id.is_empty() {
                    fields.insert("trace_id".to_owned(), FieldValue::Str(hex(&log.trace_id)));
                }
                if !log.span_id.is_empty() {
                    fields.insert("span_id".to_owned(), FieldValue::Str(hex(&log.span_id)));
                }
                if !log.severity_text.is_empty() {
                    fields.insert(
                        "severity_text".to_owned(),
                        FieldValue::Str(log.severity_text.clone()),
                    );
                }
                if let Some(scope) = &sl.scope
                    && !scope.name.is_empty()
                {
                    fields.insert(
                        "otel.scope.name".to_owned(),
                        FieldValue::Str(scope.name.clone()),
                    );
                }
                if !log.event_name.is_empty() {
                    fields.insert(
                        "event.name".to_owned(),
                        FieldValue::Str(log.event_name.clone()),
                    );
                }
                let mut record = LogRecord {
                    timestamp_us,
                    service: service.clone(),
                    level,
                    host: host.clone(),
                    message: log
                        .body
                        .as_ref()
                        .map_or_else(String::new, |b| field(Some(b)).to_text()),
                    fields,
                };
                match normalizer.finish(&mut record) {
                    Ok(()) => out.push(record),
                    Err(reason) => refused.push(reason),
                }
            }
        }
    }
    (out, refused)
}

fn add(fields: &mut BTreeMap<String, FieldValue>, prefix: &str, attributes: &[KeyValue]) {
    for kv in attributes {
        fields.insert(format!("{prefix}{}", kv.key), field(kv.value.as_ref()));
    }
}

/// [`field`] of a value that is no longer needed: strings move, not copy.
pub(super) fn owned_field(value: Option<AnyValue>) -> FieldValue {
    match value.and_then(|v| v.value) {
        Some(any_value::Value::StringValue(s)) => FieldValue::Str(s),
        other => field(other.map(|value| AnyValue { value: Some(value) }).as_ref()),
    }
}

pub(super) fn field(value: Option<&AnyValue>) -> FieldValue {
    use any_value::Value as V;
    match value.and_then(|v| v.value.as_ref()) {
        None => FieldValue::Str(String::new()),
        Some(V::StringValue(s)) => FieldValue::Str(s.clone()),
        Some(V::BoolValue(b)) => FieldValue::Bool(*b),
        Some(V::IntValue(i)) => FieldValue::Int(*i),
        Some(V::DoubleValue(d)) => FieldValue::Float(*d),
        Some(V::BytesValue(b)) => FieldValue::Str(hex(b)),
        Some(_) => FieldValue::Str(super::metrics::value_text(value)),
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}
