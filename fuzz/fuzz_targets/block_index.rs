//! A block index (its body, past the checksum) that does not parse is
//! refused, never a panic, and allocates within limits whatever it claims.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sextant_storage::tsdb::parse_block_index(data);
});
