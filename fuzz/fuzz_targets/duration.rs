//! Duration parsing never panics, and what parses prints back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_model::PromDuration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(duration) = text.parse::<PromDuration>() {
        let printed = duration.to_string();
        assert_eq!(
            printed.parse::<PromDuration>(),
            Ok(duration),
            "{text:?} -> {printed:?}"
        );
    }
});
