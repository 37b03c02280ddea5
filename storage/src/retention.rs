use serde::Deserialize;
use sextant_model::PromDuration;

/// How long each kind of data is kept: the `retention` section of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Metric samples; whole blocks older than this are deleted.
    pub metrics: PromDuration,
    /// Log records.
    pub logs: PromDuration,
    /// Spans.
    pub traces: PromDuration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            metrics: PromDuration::from_secs(15 * DAY),
            logs: PromDuration::from_secs(7 * DAY),
            traces: PromDuration::from_secs(7 * DAY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let r: RetentionConfig = serde_norway::from_str("logs: 30d").unwrap();
        assert_eq!(r.logs.to_string(), "30d");
        assert_eq!(r.metrics.to_string(), "15d");
        assert_eq!(r.traces.to_string(), "1w");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_durations() {
        let err = serde_norway::from_str::<RetentionConfig>("metric: 1d").unwrap_err();
        assert!(err.to_string().contains("unknown field `metric`"), "{err}");
        let err = serde_norway::from_str::<RetentionConfig>("logs: 1 day").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }
}
