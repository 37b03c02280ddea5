//! A Loki push body, as JSON or snappy protobuf, whatever its bytes, is
//! records or an error that says why; it never panics or allocates without
//! bound (the snappy length is checked first).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sextant_ingest::logs::Normalizer;

static NORMALIZER: OnceLock<Normalizer> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let normalizer = NORMALIZER.get_or_init(Normalizer::default);
    for protobuf in [false, true] {
        if let Err(reason) = sextant_ingest::loki::parse(data, protobuf, normalizer, 1 << 20) {
            assert!(!reason.is_empty());
        }
    }
});
