//! The Prometheus rule file parser never panics, and its errors name the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: sextant_fuzz::catch_stack_overflows(),
    |data: &[u8]| {
    let data = sextant_fuzz::expand(data);
    let Ok(text) = std::str::from_utf8(&data) else {
        return;
    };
    sextant_fuzz::on_small_stack(|| {
        if let Err(err) = sextant_alerting::rules::parse_rule_file(Path::new("r.yml"), text) {
            assert!(err.to_string().starts_with("r.yml"));
        }
        let _ = text.parse::<sextant_alerting::Matcher>();
    });
});
