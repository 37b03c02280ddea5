//! Alert templates and silences never panic: a template parses (and then
//! expands) or fails with a reason; a silence body decodes and compiles or
//! is refused with one.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sextant_alerting::notify::Silence;
use sextant_alerting::template::{Context, Template};

fuzz_target!(
    init: sextant_fuzz::catch_stack_overflows(),
    |data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let rest = sextant_fuzz::expand(rest);
    let Ok(text) = std::str::from_utf8(&rest) else {
        return;
    };
    sextant_fuzz::on_small_stack(|| run(first, text));
});

fn run(first: u8, text: &str) {
    match Template::parse(text) {
        Ok(template) => {
            let labels = BTreeMap::from([
                ("queue".to_owned(), "orders".to_owned()),
                ("instance".to_owned(), text.chars().take(8).collect()),
            ]);
            let values = [0.0, -1.5, 1e300, f64::NAN, f64::INFINITY, 0.000_123];
            let context = Context {
                labels: &labels,
                value: values[usize::from(first) % values.len()],
                external_url: "http://sextant:7070",
            };
            let _ = template.expand(&context);
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
    if let Ok(silence) = serde_json::from_str::<Silence>(text)
        && let Err(reason) = silence.compile()
    {
        assert!(!reason.is_empty());
    }
}
