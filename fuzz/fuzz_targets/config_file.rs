//! The config file parser never panics, whatever bytes it is given, and every
//! error it returns names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = sextant_server::config::parse(Path::new("f.yaml"), text) {
        assert!(err.to_string().starts_with("f.yaml"));
    }
    let _ = text.parse::<sextant_server::config::ListenAddr>();
});
