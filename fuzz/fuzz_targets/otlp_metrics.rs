//! OTLP metrics and logs bodies, protobuf or JSON, never panic on their way
//! to series and log records: decoding fails with a message or converts,
//! whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use sextant_ingest::logs::Normalizer;
use sextant_ingest::otlp::proto::logs::ExportLogsServiceRequest;
use sextant_ingest::otlp::proto::metrics::{ExportMetricsServiceRequest, metric};
use sextant_ingest::otlp::{exponential, json, logs, metrics};

/// Every exponential histogram point converts to a valid native histogram
/// or is refused with a reason.
fn exponential_points(request: &ExportMetricsServiceRequest) {
    for rm in &request.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                if let Some(metric::Data::ExponentialHistogram(e)) = &m.data {
                    for point in &e.data_points {
                        match exponential::to_native(point, false) {
                            Ok(h) => {
                                // The layout is sound whatever the counts say.
                                let spans: u64 =
                                    h.positive_spans.iter().map(|s| u64::from(s.length)).sum();
                                assert_eq!(spans as usize, h.positive_buckets.len());
                            }
                            Err(reason) => assert!(!reason.is_empty()),
                        }
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut deltas = metrics::DeltaState::default();
    if let Ok(request) = ExportMetricsServiceRequest::decode(data) {
        exponential_points(&request);
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
            exponential_points(&request);
            metrics::convert(&request, &mut deltas, 0);
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
