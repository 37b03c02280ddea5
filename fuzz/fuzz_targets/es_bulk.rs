//! An Elasticsearch `_bulk` body, whatever its bytes, gives one item per
//! action with a record or a 400 that says why; it never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sextant_ingest::logs::Normalizer;

static NORMALIZER: OnceLock<Normalizer> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let normalizer = NORMALIZER.get_or_init(Normalizer::default);
    for item in sextant_ingest::bulk::parse(data, Some("logs"), normalizer, 0) {
        if let Err(error) = item.outcome {
            assert_eq!(error.status, 400);
            assert!(!error.reason.is_empty());
        }
    }
});
