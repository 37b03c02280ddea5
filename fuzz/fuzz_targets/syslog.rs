//! Syslog, whatever its bytes: the TCP framer, fed the input in two pieces
//! cut anywhere, hands out frames no longer than its limit or an error that
//! says why; every frame (and the whole input as a datagram) parses to a
//! message or an error that says why, and a message maps to a record whose
//! redaction never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sextant_ingest::logs::{LogsConfig, Normalizer};
use sextant_ingest::syslog::frame::{Frame, Framer};
use sextant_ingest::syslog::parse::Context;

static NORMALIZER: OnceLock<Normalizer> = OnceLock::new();

const MAX: usize = 512;

fuzz_target!(|data: &[u8]| {
    let normalizer = NORMALIZER.get_or_init(|| {
        let config: LogsConfig = serde_norway::from_str(
            "redact:\n  - {pattern: email, action: mask}\n  - {field: msgid, action: drop}\n",
        )
        .expect("valid redaction rules");
        Normalizer::new(&config)
    });
    let context = Context {
        now_us: 1_773_576_000_000_000,
        rfc3164_offset_s: -3600,
    };
    let peer = "192.0.2.1:514".parse().expect("an address");
    let check = |bytes: &[u8]| match sextant_ingest::syslog::to_record(bytes, normalizer, context, peer) {
        Ok(record) => assert!(record.fields.contains_key("facility")),
        Err(
            sextant_ingest::syslog::Refusal::Broken(reason)
            | sextant_ingest::syslog::Refusal::Limit(reason),
        ) => assert!(!reason.is_empty()),
    };
    check(data);
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut framer = Framer::new(MAX);
    let mut emit = |frame: Frame<'_>| {
        match frame {
            Frame::Message(bytes) => {
                assert!(bytes.len() <= MAX);
                check(bytes);
            }
            Frame::TooLong(len) => assert!(len > MAX as u64),
        }
        Ok(())
    };
    let framed = framer
        .feed(&data[..cut], &mut emit)
        .and_then(|()| framer.feed(&data[cut..], &mut emit))
        .and_then(|()| framer.finish(&mut emit));
    if let Err(err) = framed {
        assert!(!err.0.is_empty());
    }
});
