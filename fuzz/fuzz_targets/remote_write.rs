//! The remote-write decoder never panics and never decompresses past its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sextant_ingest::remote_write::decode(data, 1 << 20);
});
