//! A Fluentd forward frame, whatever its bytes: the scanner measures it the
//! same fed whole or in pieces, never past the depth budget; a measured
//! frame decodes to events or an error that says why; each event's record
//! normalises and redacts. Nothing panics, nothing recurses past the budget
//! (see `sextant_fuzz`), nothing allocates by a length prefix.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sextant_ingest::forward::msgpack::{Reader, Scanner};
use sextant_ingest::forward::{FrameLimits, decode_frame};
use sextant_ingest::logs::{LogsConfig, Normalizer};

static NORMALIZER: OnceLock<Normalizer> = OnceLock::new();

fuzz_target!(
    init: sextant_fuzz::catch_stack_overflows(),
    |data: &[u8]| {
    let data = sextant_fuzz::expand(data);
    let normalizer = NORMALIZER.get_or_init(|| {
        let config: LogsConfig = serde_norway::from_str(
            "redact:\n  - {pattern: card_number, action: mask}\n  - {field: password, action: mask}\n",
        )
        .expect("valid redaction rules");
        Normalizer::new(&config)
    });
    let depth = sextant_fuzz::fuzz_depth();
    sextant_fuzz::on_small_stack(|| {
        let whole = Scanner::new(depth).scan(&data);
        if data.len() <= 4096 {
            // Fed in pieces (as a socket delivers), the answer is the same.
            let mut scanner = Scanner::new(depth);
            let mut pieces = None;
            for end in (0..=data.len()).step_by(7).chain([data.len()]) {
                match scanner.scan(&data[..end]) {
                    Ok(None) => continue,
                    other => {
                        pieces = Some(other);
                        break;
                    }
                }
            }
            if let Some(pieces) = pieces {
                assert_eq!(pieces, whole, "scanned in pieces vs whole");
            } else {
                assert_eq!(whole, Ok(None));
            }
        }
        let _ = Reader::new(&data, depth).json();
        let Ok(Some(len)) = whole else { return };
        let limits = FrameLimits {
            max_depth: depth,
            max_decompressed: 1 << 20,
        };
        match decode_frame(&data[..len], &limits) {
            Ok(frame) => {
                assert!(frame.refused.iter().all(|r| !r.is_empty()));
                for event in frame.events {
                    let mut record = normalizer.record(event.record, event.time_us.unwrap_or(0), Some(&frame.tag));
                    let _ = normalizer.finish(&mut record);
                }
            }
            Err(reason) => assert!(!reason.is_empty()),
        }
    });
});
