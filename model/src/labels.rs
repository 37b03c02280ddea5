//! Label and metric names as Prometheus defines them.

/// Why a string cannot be a label name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label name {0:?}: must match [a-zA-Z_][a-zA-Z0-9_]*")]
pub struct LabelNameError(pub String);

/// Whether `name` is a legal label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
///
/// Names starting with `__` are legal but reserved for internal use.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `name` is a legal metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names() {
        for good in ["job", "_x", "__name__", "a1_B2"] {
            assert!(is_valid_label_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a:b", "é", "a b"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn metric_names() {
        for good in ["up", "job:requests:rate5m", "_x", ":a"] {
            assert!(is_valid_metric_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a.b"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
    }
}
