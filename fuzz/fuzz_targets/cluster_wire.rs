//! The records and answers nodes of a cluster exchange never panic when
//! damaged, and what decodes encodes back to the same series.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_cluster::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(series) = wire::decode_series_raw(data) {
        let refs: Vec<_> = series.iter().collect();
        let again = wire::encode_series_refs(&refs);
        let back = wire::decode_series_raw(&again).expect("what was encoded decodes");
        assert_eq!(back.len(), series.len());
        for (b, s) in back.iter().zip(series.iter()) {
            assert_eq!(b.labels, s.labels);
            let bits = |x: &[sextant_model::Sample]| -> Vec<(i64, u64)> {
                x.iter().map(|x| (x.timestamp_ms, x.value.to_bits())).collect()
            };
            assert_eq!(bits(b.samples), bits(s.samples));
        }
    }
    let _ = wire::decode_series(data);
    let _ = wire::decode_items(data);
    if let Ok(records) = wire::split_batch(&bytes::Bytes::copy_from_slice(data)) {
        let again = wire::encode_batch(&records);
        let back = wire::split_batch(&again.into()).expect("what was batched splits");
        assert_eq!(back, records);
    }
    let _ = serde_json::from_slice::<sextant_cluster::ReadRequest>(data);
    let _ = serde_json::from_slice::<sextant_cluster::logs::LogRead>(data);
    let _ = serde_json::from_slice::<sextant_cluster::spans::SpanRead>(data);
});
