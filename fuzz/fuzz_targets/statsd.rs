//! StatsD lines: any datagram either parses into events or names what is
//! wrong, line by line; the events aggregate and flush without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_ingest::statsd::aggregate::Aggregator;
use sextant_ingest::statsd::mapping::Mapper;
use sextant_ingest::statsd::parse::parse_line;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut aggregator = Aggregator::new(100, Mapper::default());
    for line in text.split('\n') {
        match parse_line(line) {
            Ok(events) => {
                for event in events {
                    let _ = aggregator.add(event, 1_000);
                }
            }
            Err(reason) => assert!(!reason.is_empty()),
        }
    }
    let (samples, _) = aggregator.flush(2_000);
    assert!(samples.iter().all(|s| s.samples.len() == 1));
});
