//! The remote-write decoder never panics, never decompresses past its
//! limit, and reads exactly what `prost` reads from the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sextant_ingest::remote_write::{decompress, parse, proto};

fuzz_target!(|data: &[u8]| {
    let _ = decompress(data, 1 << 20);
    // The protobuf itself, uncompressed, against prost's reading of it.
    let Ok(batch) = parse(data) else {
        return;
    };
    let expected = proto::WriteRequest::decode(data).expect("prost reads what parse reads");
    let got = batch.series.to_series();
    assert_eq!(got.len(), expected.timeseries.len());
    for (got, want) in got.iter().zip(&expected.timeseries) {
        let labels = sextant_model::Labels::from_pairs(
            want.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        );
        assert_eq!(got.labels, labels);
        assert_eq!(got.samples.len(), want.samples.len());
        for (g, w) in got.samples.iter().zip(&want.samples) {
            assert_eq!(
                (g.timestamp_ms, g.value.to_bits()),
                (w.timestamp, w.value.to_bits())
            );
        }
    }
    let histograms: usize = expected.timeseries.iter().map(|t| t.histograms.len()).sum();
    assert_eq!(
        batch.histograms.len() + batch.histograms_refused,
        histograms
    );
    for (series, h) in &batch.histograms {
        assert!(*series < got.len());
        // Every histogram kept is one Prometheus would keep.
        assert!(h.value.validate().is_ok());
    }
    assert_eq!(batch.metadata.len(), expected.metadata.len());
});
