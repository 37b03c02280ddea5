//! The protobuf exposition decoder never panics, keeps its output within
//! its labels budget, and every native histogram it returns is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_ingest::prom_proto::{MAX_EXPANSION, Options, SampleValue, parse};

fuzz_target!(|data: &[u8]| {
    let options = Options {
        native_histograms: data.first().is_some_and(|b| b & 1 == 1),
        keep_classic: data.first().is_some_and(|b| b & 2 == 2),
        convert_to_nhcb: data.first().is_some_and(|b| b & 4 == 4),
    };
    let exposition = parse(data, options);
    let label_bytes: usize = exposition
        .samples
        .iter()
        .map(|s| {
            s.name.len()
                + s.labels
                    .iter()
                    .map(|(n, v)| n.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    assert!(label_bytes <= (data.len() * MAX_EXPANSION).max(1 << 20));
    for sample in &exposition.samples {
        assert!(!sample.name.is_empty());
        if let SampleValue::Histogram(h) = &sample.value {
            h.validate().expect("only valid histograms are returned");
        }
        let _ = sample.key();
    }
});
