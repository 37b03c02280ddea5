//! TraceQL: any text either parses to a tree or fails with a parse error
//! naming where; nothing panics, and nothing recurses past the depth budget
//! (see `sextant_fuzz`), walking the tree afterwards included.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_query::traceql::{eval, parse};

fuzz_target!(
    init: sextant_fuzz::catch_stack_overflows(),
    |data: &[u8]| {
    let data = sextant_fuzz::expand(data);
    let Ok(text) = std::str::from_utf8(&data) else { return };
    sextant_fuzz::on_small_stack(|| {
        match parse::parse(text) {
            // What error messages and logs do with a tree, and what the
            // search reads of it; dropping it recurses too.
            Ok(query) => {
                let _ = format!("{query:?}");
                let _ = query.clone();
                let _ = eval::pushdown(&query);
                // Printed back, it parses to the same tree (unless the
                // brackets it prints take it past the budget).
                let shown = query.to_string();
                if let Ok(again) = parse::parse(&shown) {
                    assert_eq!(again.to_string(), shown, "{text}");
                }
            }
            Err(sextant_query::Error::Parse(message)) => {
                assert!(message.starts_with("parse error"), "{message}");
            }
            Err(other) => panic!("not a parse error: {other}"),
        }
    });
});
