//! statsd_exporter mapping files: any text loads into a mapper or fails with
//! an error naming the file; a mapper maps any name without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sextant_ingest::statsd::mapping::{EventType, Mapper};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Mapper::parse(Path::new("mapping.yml"), text) {
        Ok(mapper) => {
            for name in [
                "a.b.c",
                "simplebank-demo.orders.request_reservation",
                "",
                "x",
            ] {
                for kind in [
                    EventType::Counter,
                    EventType::Gauge,
                    EventType::Observer,
                    EventType::Set,
                ] {
                    let _ = mapper.map(name, kind);
                }
            }
        }
        Err(err) => assert!(err.to_string().contains("mapping.yml")),
    }
});
