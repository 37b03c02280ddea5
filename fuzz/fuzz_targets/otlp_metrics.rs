//! OTLP metrics bodies, protobuf or JSON, never panic on their way to
//! series: decoding fails with a message or converts, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use sextant_ingest::otlp::{json, metrics, proto::metrics::ExportMetricsServiceRequest};

fuzz_target!(|data: &[u8]| {
    let mut deltas = metrics::DeltaState::default();
    if let Ok(request) = ExportMetricsServiceRequest::decode(data) {
        let converted = metrics::convert(&request, &mut deltas, 0);
        for series in &converted.series {
            assert!(series.labels.metric_name().is_some());
        }
    }
    match json::metrics_request(data) {
        Ok(request) => {
            metrics::convert(&request, &mut deltas, 0);
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
