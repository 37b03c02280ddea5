//! The log search language (Kibana's Lucene dialect, rewritten for tantivy's
//! parser) never panics and never overflows the stack: any text is a search,
//! a histogram and a tail over a small store, or an error saying why not.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sextant_model::{FieldValue, Level, LogRecord};
use sextant_storage::logs::{LogQuery, LogStore, LogStoreConfig};

/// Three records in a store made once per process.
fn store() -> &'static LogStore {
    static STORE: OnceLock<LogStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sextant-fuzz-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = LogStore::open(&dir, LogStoreConfig::default()).expect("open the log store");
        let record = |i: i64, message: &str| LogRecord {
            timestamp_us: 1_700_000_000_000_000 + i * 1_000_000,
            service: "orders".into(),
            level: Level::Info,
            host: "web-1".into(),
            message: message.into(),
            fields: BTreeMap::from([
                ("route".to_owned(), FieldValue::Str("/orders".into())),
                ("duration_ms".to_owned(), FieldValue::Float(12.5 * i as f64)),
                ("uuid".to_owned(), FieldValue::Str(format!("id-{i}"))),
            ]),
        };
        store
            .append(&[
                record(0, "order placed"),
                record(1, "payment failed: card declined"),
                record(2, "GET /orders 200"),
            ])
            .expect("append");
        store.commit().expect("commit");
        store
    })
}

fuzz_target!(
    init: sextant_fuzz::catch_stack_overflows(),
    |data: &[u8]| {
    let data = sextant_fuzz::expand(data);
    let Ok(text) = std::str::from_utf8(&data) else {
        return;
    };
    let store = store();
    sextant_fuzz::on_small_stack(|| {
        let query = LogQuery {
            text: text.to_owned(),
            // The records' day; the API refuses more than 11,000 buckets.
            start_us: 1_699_999_200_000_000,
            end_us: 1_700_086_400_000_000,
            limit: 10,
            ascending: false,
            after: None,
        };
        let _ = store.search(&query);
        let _ = store.histogram(&query, 3_600_000_000);
        let _ = store.tail(text, 0, 10);
    });
});
