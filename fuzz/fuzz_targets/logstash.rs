//! A logstash event, whatever its bytes, is a record or an error that says
//! why; normalising and redacting it never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sextant_ingest::logs::{LogsConfig, Normalizer};

static NORMALIZER: OnceLock<Normalizer> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let normalizer = NORMALIZER.get_or_init(|| {
        let config: LogsConfig = serde_norway::from_str(
            "redact:\n  - {pattern: card_number, action: mask}\n  - {pattern: email, action: drop}\n  - {field: password, action: mask}\n",
        )
        .expect("valid redaction rules");
        Normalizer::new(&config)
    });
    match sextant_ingest::logstash::parse_event(data, normalizer, 0) {
        Ok(mut record) => normalizer.redact(&mut record),
        Err(reason) => assert!(!reason.is_empty()),
    }
});
