//! OTLP trace bodies, protobuf or JSON, never panic on their way to span
//! records and span metrics: decoding fails with a message or converts, and
//! every kept span has ids of the right length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use sextant_ingest::otlp::proto::trace::ExportTraceServiceRequest;
use sextant_ingest::otlp::{json, spanmetrics::SpanMetrics, traces};

fn check(request: ExportTraceServiceRequest) {
    let converted = traces::convert(request);
    for span in &converted.spans {
        assert_eq!(span.trace_id.len(), 32);
        assert_eq!(span.span_id.len(), 16);
        assert!(span.duration_us >= 0);
    }
    let metrics = SpanMetrics::default();
    metrics.observe(&converted.spans);
    for series in metrics.flush(0) {
        assert!(series.labels.metric_name().is_some());
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ExportTraceServiceRequest::decode(data) {
        check(request);
    }
    match json::traces_request(data) {
        Ok(request) => check(request),
        Err(message) => assert!(!message.is_empty()),
    }
});
