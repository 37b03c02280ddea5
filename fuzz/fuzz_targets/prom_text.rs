//! The exposition parsers never panic: the text format's and OpenMetrics'
//! every line is either an entry or an error with a line number inside the
//! body, the owned parse agrees with the streaming one, and an
//! OpenMetrics exemplar reads or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_ingest::prom_text::{Entry, Format, Parser, parse, parse_exemplar};

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
                    // Only OpenMetrics lines carry exemplars; each reads
                    // or is refused, never panics.
                    if let Some(exemplar) = sample.exemplar {
                        assert_eq!(format, Format::OpenMetrics);
                        if let Ok((labels, _, _)) = parse_exemplar(exemplar) {
                            assert!(labels.len() <= exemplar.len());
                        }
                    }
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
