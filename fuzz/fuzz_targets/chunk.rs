//! Chunk decoding never panics on corrupt bytes, whether the chunk stands
//! alone or refers to its block's timestamp columns.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_storage::tsdb::chunk;

fuzz_target!(|data: &[u8]| {
    let _ = chunk::decode(data);
    // Columns of the lengths a packed chunk may claim, among others.
    let columns = [
        vec![0, 15_000, 30_000],
        (0..data.len() as i64).collect(),
        Vec::new(),
    ];
    let mut out = Vec::new();
    let _ = chunk::decode_in_block(data, &columns, &mut out);
});
