//! Exemplars: a sample of a series that carries labels of its own (most
//! often the `trace_id` of the request it counted), the link Grafana draws
//! from a latency spike to the trace that caused it.

use crate::Labels;

/// The most runes an exemplar's label names and values may hold together,
/// as OpenMetrics and Prometheus's storage bound them.
pub const MAX_EXEMPLAR_LABEL_RUNES: usize = 128;

/// One exemplar of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// Its own labels (`trace_id`, `span_id`, ...), not the series'.
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
}

impl Exemplar {
    /// Why it cannot be kept, if it cannot: labels longer than
    /// [`MAX_EXEMPLAR_LABEL_RUNES`] together.
    pub fn invalid(&self) -> Option<String> {
        let runes: usize = self
            .labels
            .iter()
            .map(|l| l.name.chars().count() + l.value.chars().count())
            .sum();
        (runes > MAX_EXEMPLAR_LABEL_RUNES).then(|| {
            format!(
                "exemplar labels hold {runes} characters, more than the {MAX_EXEMPLAR_LABEL_RUNES} allowed"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_label_sets_are_refused_by_length() {
        let ok = Exemplar {
            labels: Labels::from_pairs([("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]),
            value: 0.3,
            timestamp_ms: 1,
        };
        assert_eq!(ok.invalid(), None);
        let long = Exemplar {
            labels: Labels::from_pairs([("trace_id", "x".repeat(121))]),
            ..ok
        };
        assert!(long.invalid().unwrap().contains("129 characters"));
    }
}
