//! Chunk decoding never panics on corrupt bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sextant_storage::tsdb::chunk::decode(data);
});
