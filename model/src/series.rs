//! Series and samples: a series is a sorted label set (with `__name__`) and its
//! samples are (millisecond timestamp, float value) pairs.

use std::fmt;
use std::sync::Arc;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// The bit pattern of Prometheus's staleness marker: a NaN that means "this
/// series ended here", distinct from an ordinary NaN value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `value` is the staleness marker (and not just any NaN).
pub fn is_stale_nan(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// The staleness marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    /// The value; may be the staleness marker.
    pub value: f64,
}

/// A label name and value. Both are shared strings so that a store can intern them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// `[a-zA-Z_][a-zA-Z0-9_]*`, or `__name__`.
    pub name: Arc<str>,
    /// Any UTF-8; never empty in a stored series (an empty value means "absent").
    pub value: Arc<str>,
}

/// A series' identity: labels sorted by name, names unique, no empty values.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Builds a label set from pairs in any order. Empty values are dropped (an
    /// empty value means the label is absent); for a repeated name the last wins.
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: Into<Arc<str>>,
        V: Into<Arc<str>>,
    {
        let mut labels: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label {
                name: n.into(),
                value: v.into(),
            })
            .collect();
        // Stable sort keeps input order among equal names, so "last wins" holds.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for label in labels {
            match out.last_mut() {
                Some(last) if last.name == label.name => *last = label,
                _ => out.push(label),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Self(out)
    }

    /// Wraps labels that are already sorted, unique and non-empty.
    ///
    /// Debug builds check the claim.
    pub fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        debug_assert!(labels.iter().all(|l| !l.value.is_empty()));
        Self(labels)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| (*l.name).cmp(name))
            .ok()
            .map(|i| &*self.0[i].value)
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The labels, sorted by name.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels whose names `keep` accepts.
    pub fn filter(&self, mut keep: impl FnMut(&str) -> bool) -> Self {
        Self(self.0.iter().filter(|l| keep(&l.name)).cloned().collect())
    }

    /// These labels without the metric name.
    pub fn without_metric_name(&self) -> Self {
        self.filter(|n| n != METRIC_NAME)
    }

    /// These labels with `name` set to `value`; an empty value removes it.
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut labels = self.0.clone();
        match labels.binary_search_by(|l| (*l.name).cmp(name)) {
            Ok(i) if value.is_empty() => {
                labels.remove(i);
            }
            Ok(i) => labels[i].value = value.into(),
            Err(_) if value.is_empty() => {}
            Err(i) => labels.insert(
                i,
                Label {
                    name: name.into(),
                    value: value.into(),
                },
            ),
        }
        Self(labels)
    }

    /// Whether every matcher accepts this series (absent labels match as "").
    pub fn matches(&self, matchers: &[crate::Matcher]) -> bool {
        matchers
            .iter()
            .all(|m| m.matches(self.get(&m.name).unwrap_or("")))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Labels {
    /// Prometheus's notation: `name{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or("");
        f.write_str(name)?;
        f.write_str("{")?;
        let mut first = true;
        for label in self.0.iter().filter(|l| &*l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", label.name, &*label.value)?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_deduplicated_and_drop_empty_values() {
        let labels = Labels::from_pairs([
            ("job", "node"),
            ("__name__", "up"),
            ("instance", "a:9100"),
            ("job", "node2"),
            ("empty", ""),
        ]);
        let names: Vec<&str> = labels.iter().map(|l| &*l.name).collect();
        assert_eq!(names, ["__name__", "instance", "job"]);
        assert_eq!(labels.get("job"), Some("node2"));
        assert_eq!(labels.get("empty"), None);
        assert_eq!(labels.metric_name(), Some("up"));
        assert_eq!(labels.to_string(), "up{instance=\"a:9100\", job=\"node2\"}");
    }

    #[test]
    fn stale_nan_is_a_particular_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(stale_nan().is_nan());
        assert!(!is_stale_nan(f64::NAN));
        assert!(!is_stale_nan(1.0));
    }
}
