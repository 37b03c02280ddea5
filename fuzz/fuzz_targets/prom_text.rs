//! The exposition parsers never panic: the text format's and OpenMetrics'
//! every line is either an entry or an error with a line number inside the
//! body, and the owned parse agrees with the streaming one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_ingest::prom_text::{Entry, Format, Parser, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    let parsed = parse(text);
    for error in &parsed.errors {
        assert!(error.line >= 1 && error.line <= lines);
    }
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let mut parser = Parser::new(text, format);
        let mut samples = 0;
        while let Some(entry) = parser.next() {
            match entry {
                Ok(Entry::Sample(sample)) => {
                    samples += 1;
                    assert!(sample.series.starts_with(sample.name));
                    assert!(text.contains(sample.series));
                }
                Ok(_) => {}
                Err(error) => assert!(error.line >= 1 && error.line <= lines),
            }
        }
        if format == Format::Prometheus {
            assert_eq!(samples, parsed.samples.len());
        }
    }
});
