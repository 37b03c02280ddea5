//! The Prometheus text parser never panics; every line it could not read is
//! reported with a line number inside the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = sextant_ingest::prom_text::parse(text);
    let lines = text.lines().count();
    for error in &parsed.errors {
        assert!(error.line >= 1 && error.line <= lines);
    }
});
