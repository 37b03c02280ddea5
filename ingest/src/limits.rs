//! The `limits` settings: how much one request, event or batch may carry.
//! Every refusal names the limit (its config key) and is counted in
//! [`REFUSED`], which `/metrics` shows as `sextant_ingest_limit_refusals_total`.

use serde::{Deserialize, Deserializer};
use sextant_model::telemetry::Counter;

/// The `limits` section. Sizes take `64MiB`, `512KiB`, `1GB` or a byte count.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest HTTP or OTLP request body, as sent (compressed or not): 413 beyond it.
    #[serde(deserialize_with = "byte_size")]
    pub max_request_body: usize,
    /// Largest a gzip/snappy/zstd body may decompress to: 413 beyond it.
    #[serde(deserialize_with = "byte_size")]
    pub max_decompressed_body: usize,
    /// Largest single log event (a logstash line, an NDJSON line, a bulk
    /// document, a Loki line).
    #[serde(deserialize_with = "byte_size")]
    pub max_log_event: usize,
    /// Most fields one log event may have after flattening.
    pub max_fields_per_log: usize,
    /// Most spans one OTLP export may carry; the rest are refused in the
    /// partial success.
    pub max_spans_per_request: usize,
    /// Ingest requests decoded and stored at once per listener (HTTP, OTLP);
    /// beyond this, 429 (gRPC: UNAVAILABLE) with Retry-After.
    pub max_concurrent_ingest: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_body: 64 << 20,
            max_decompressed_body: 256 << 20,
            max_log_event: 1 << 20,
            max_fields_per_log: 1000,
            max_spans_per_request: 100_000,
            max_concurrent_ingest: 16,
        }
    }
}

/// A size in bytes from a config file: a byte count or `64MiB`, `512KiB`...
pub fn byte_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Bytes(n) => usize::try_from(n).map_err(serde::de::Error::custom),
        Size::Text(text) => crate::scrape::manager::parse_size(&text)
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a size; write e.g. 64MiB, 512KiB or a byte count"
                ))
            }),
    }
}

/// Refusals per limit, for `/metrics`.
#[derive(Debug, Default)]
pub struct Refusals {
    pub request_body: Counter,
    pub decompressed_body: Counter,
    pub log_event: Counter,
    pub fields_per_log: Counter,
    pub spans_per_request: Counter,
}

impl Refusals {
    /// Each counter under its limit's name.
    pub fn each(&self) -> [(&'static str, &Counter); 5] {
        [
            ("max_request_body", &self.request_body),
            ("max_decompressed_body", &self.decompressed_body),
            ("max_log_event", &self.log_event),
            ("max_fields_per_log", &self.fields_per_log),
            ("max_spans_per_request", &self.spans_per_request),
        ]
    }
}

/// Every limit refusal in this process.
pub static REFUSED: Refusals = Refusals {
    request_body: Counter::new(),
    decompressed_body: Counter::new(),
    log_event: Counter::new(),
    fields_per_log: Counter::new(),
    spans_per_request: Counter::new(),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_prometheus_writes_them() {
        let limits: Limits = serde_norway::from_str(
            "max_request_body: 8MiB\nmax_decompressed_body: 1000\nmax_log_event: 2KB\n",
        )
        .unwrap();
        assert_eq!(limits.max_request_body, 8 << 20);
        assert_eq!(limits.max_decompressed_body, 1000);
        assert_eq!(limits.max_log_event, 2048);
        assert_eq!(limits.max_fields_per_log, 1000);
        let err = serde_norway::from_str::<Limits>("max_request_body: lots\n").unwrap_err();
        assert!(err.to_string().contains("\"lots\" is not a size"), "{err}");
        let err = serde_norway::from_str::<Limits>("max_body: 1\n").unwrap_err();
        assert!(err.to_string().contains("max_body"), "{err}");
    }
}
