//! Elasticsearch's `_bulk` API as log shippers use it (Fluent Bit, Fluentd,
//! Logstash, Filebeat): NDJSON pairs of an action line (`index` or
//! `create`) and a source document. [`parse`] is pure: every item gets a
//! record or a per-item error, as Elasticsearch answers item by item.

use serde_json::{Map, Value};
use sextant_model::LogRecord;

use crate::logs::Normalizer;

/// What became of one action.
#[derive(Debug)]
pub struct Item {
    /// `index` or `create` (or the unsupported action named).
    pub action: String,
    pub index: String,
    pub id: String,
    pub outcome: Result<LogRecord, ItemError>,
}

/// An item Elasticsearch would refuse, with its error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// 400 for a bad document or action.
    pub status: u16,
    /// Elasticsearch's error type, e.g. `mapper_parsing_exception`.
    pub kind: &'static str,
    pub reason: String,
}

/// Reads a bulk body. `default_index` is the `{index}` of `/{index}/_bulk`.
/// A line that breaks the pairing is reported as an item and reading goes on
/// with the next line, so one bad line costs at most its own item.
pub fn parse(
    body: &[u8],
    default_index: Option<&str>,
    normalizer: &Normalizer,
    arrival_us: i64,
) -> Vec<Item> {
    let mut items = Vec::new();
    let mut lines = body
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace));
    while let Some((number, line)) = lines.next() {
        let bad = |reason: String| Item {
            action: "index".to_owned(),
            index: default_index.unwrap_or_default().to_owned(),
            id: String::new(),
            outcome: Err(ItemError {
                status: 400,
                kind: "action_request_validation_exception",
                reason,
            }),
        };
        let action: Map<String, Value> = match serde_json::from_slice(line) {
            Ok(Value::Object(map)) if map.len() == 1 => map,
            Ok(_) => {
                items.push(bad(format!(
                    "line {}: an action line must be an object with one action",
                    number + 1
                )));
                continue;
            }
            Err(e) => {
                items.push(bad(format!(
                    "line {}: action line is not JSON: {e}",
                    number + 1
                )));
                continue;
            }
        };
        let (name, meta) = action.into_iter().next().expect("one entry");
        let meta = meta.as_object().cloned().unwrap_or_default();
        let text = |key: &str| meta.get(key).and_then(Value::as_str).map(str::to_owned);
        let index = text("_index")
            .or_else(|| default_index.map(str::to_owned))
            .unwrap_or_default();
        let id = text("_id").unwrap_or_default();
        let mut item = Item {
            action: name.clone(),
            index,
            id,
            outcome: Err(ItemError {
                status: 400,
                kind: "illegal_argument_exception",
                reason: String::new(),
            }),
        };
        match name.as_str() {
            "index" | "create" => {}
            "delete" => {
                item.outcome = Err(ItemError {
                    status: 400,
                    kind: "illegal_argument_exception",
                    reason: "delete is not supported: Sextant's logs are append-only".to_owned(),
                });
                items.push(item);
                continue;
            }
            other => {
                // `update` carries a source line; skip it with the action.
                let _ = lines.next();
                item.outcome = Err(ItemError {
                    status: 400,
                    kind: "illegal_argument_exception",
                    reason: format!("{other} is not supported: send index or create actions"),
                });
                items.push(item);
                continue;
            }
        }
        let Some((source_number, source)) = lines.next() else {
            item.outcome = Err(ItemError {
                status: 400,
                kind: "action_request_validation_exception",
                reason: format!("line {}: the {name} action has no source line", number + 1),
            });
            items.push(item);
            break;
        };
        let limited = |reason: String| ItemError {
            status: 400,
            kind: "illegal_argument_exception",
            reason: format!("line {}: {reason}", source_number + 1),
        };
        if let Err(reason) = normalizer.check_event_size(source.len()) {
            item.outcome = Err(limited(reason));
            items.push(item);
            continue;
        }
        item.outcome = match serde_json::from_slice::<Value>(source) {
            Ok(Value::Object(document)) => {
                let service = service_of_index(&item.index);
                let mut record = normalizer.record(document, arrival_us, service.as_deref());
                normalizer
                    .finish(&mut record)
                    .map(|()| record)
                    .map_err(limited)
            }
            Ok(_) => Err(ItemError {
                status: 400,
                kind: "mapper_parsing_exception",
                reason: format!(
                    "line {}: the document must be a JSON object",
                    source_number + 1
                ),
            }),
            Err(e) => Err(ItemError {
                status: 400,
                kind: "mapper_parsing_exception",
                reason: format!(
                    "line {}: failed to parse the document: {e}",
                    source_number + 1
                ),
            }),
        };
        items.push(item);
    }
    items
}

/// An index name as a service: `logstash-2026.11.28` -> `logstash`.
fn service_of_index(index: &str) -> Option<String> {
    if index.is_empty() {
        return None;
    }
    let trimmed = match index.rsplit_once('-') {
        Some((base, date))
            if !base.is_empty()
                && date.len() >= 7
                && date.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            base
        }
        _ => index,
    };
    Some(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_create_items_with_per_item_errors() {
        let body = concat!(
            r#"{"index": {"_index": "gateway-2026.11.28", "_id": "1"}}"#,
            "\n",
            r#"{"@timestamp": "2026-11-28T10:00:00Z", "log": "placing sell order", "uuid": "u1"}"#,
            "\n",
            r#"{"create": {}}"#,
            "\n",
            r#"{"message": "no index: the URL's", "service": "orders"}"#,
            "\n",
            r#"{"index": {}}"#,
            "\n",
            "{broken\n",
            r#"{"delete": {"_id": "9"}}"#,
            "\n",
            r#"{"update": {"_id": "9"}}"#,
            "\n",
            r#"{"doc": {}}"#,
            "\n",
            r#"{"index": {}}"#,
            "\n",
            r#"{"message": "last one"}"#,
            "\n",
        );
        let items = parse(
            body.as_bytes(),
            Some("fluent-bit"),
            &Normalizer::default(),
            7,
        );
        assert_eq!(items.len(), 6);
        let first = items[0].outcome.as_ref().unwrap();
        assert_eq!(
            (first.message.as_str(), first.service.as_str()),
            ("placing sell order", "gateway")
        );
        assert_eq!(items[0].id, "1");
        let second = items[1].outcome.as_ref().unwrap();
        assert_eq!(
            (items[1].index.as_str(), second.service.as_str()),
            ("fluent-bit", "orders")
        );
        let broken = items[2].outcome.as_ref().unwrap_err();
        assert_eq!(broken.kind, "mapper_parsing_exception");
        assert!(
            broken
                .reason
                .starts_with("line 6: failed to parse the document"),
            "{}",
            broken.reason
        );
        assert!(
            items[3]
                .outcome
                .as_ref()
                .unwrap_err()
                .reason
                .contains("append-only")
        );
        assert!(
            items[4]
                .outcome
                .as_ref()
                .unwrap_err()
                .reason
                .contains("update is not supported")
        );
        assert_eq!(items[5].outcome.as_ref().unwrap().message, "last one");
        assert_eq!(items[5].outcome.as_ref().unwrap().service, "fluent-bit");
    }
}
