//! OTLP metrics and logs bodies, protobuf or JSON, never panic on their way
//! to series and log records: decoding fails with a message or converts,
//! whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use sextant_ingest::logs::Normalizer;
use sextant_ingest::otlp::proto::logs::ExportLogsServiceRequest;
use sextant_ingest::otlp::{json, logs, metrics, proto::metrics::ExportMetricsServiceRequest};

fuzz_target!(|data: &[u8]| {
    let mut deltas = metrics::DeltaState::default();
    if let Ok(request) = ExportMetricsServiceRequest::decode(data) {
        let converted = metrics::convert(&request, &mut deltas, 0);
        for series in &converted.series {
            assert!(series.labels.metric_name().is_some());
        }
    }
    let normalizer = Normalizer::default();
    if let Ok(request) = ExportLogsServiceRequest::decode(data) {
        logs::convert(&request, &normalizer, 0);
    }
    if let Ok(request) = json::logs_request(data) {
        logs::convert(&request, &normalizer, 0);
    }
    match json::metrics_request(data) {
        Ok(request) => {
            metrics::convert(&request, &mut deltas, 0);
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
