//! LogQL: any text either parses to a tree or fails with a parse error
//! naming where; nothing panics, and nothing recurses past the depth budget
//! (see `sextant_fuzz`), walking the tree afterwards included.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_query::logql::parse;

fuzz_target!(
    init: sextant_fuzz::catch_stack_overflows(),
    |data: &[u8]| {
    let data = sextant_fuzz::expand(data);
    let Ok(text) = std::str::from_utf8(&data) else { return };
    sextant_fuzz::on_small_stack(|| {
        match parse::parse(text) {
            // What error messages and logs do with a tree; dropping it
            // recurses too.
            Ok(expr) => {
                let _ = format!("{expr:?}");
                let _ = expr.clone();
            }
            Err(sextant_query::Error::Parse(message)) => {
                assert!(message.starts_with("parse error"), "{message}");
            }
            Err(other) => panic!("not a parse error: {other}"),
        }
        let _ = parse::parse_log_selector(text);
        let _ = parse::parse_duration_go(text);
        let _ = parse::parse_bytes(text);
    });
});
