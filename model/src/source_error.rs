//! Errors that point into a user's file: `path:line:column: reason`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in a file a user wrote, with the place it was found when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, in the user's words.
    pub message: String,
}

impl SourceError {
    /// An error without a position.
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// Converts a YAML deserialisation error, moving its position to the front.
    pub fn from_yaml(path: &Path, err: &serde_norway::Error) -> Self {
        let mut message = err.to_string();
        let (line, column) = match err.location() {
            Some(location) => {
                let suffix = format!(" at line {} column {}", location.line(), location.column());
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_owned();
                }
                (Some(location.line()), Some(location.column()))
            }
            None => (None, None),
        };
        Self {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SourceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Section {
        name: String,
    }

    #[test]
    fn yaml_errors_lead_with_file_line_and_column() {
        let err = serde_norway::from_str::<Section>("name: a\nnmae: b\n").unwrap_err();
        let err = SourceError::from_yaml(Path::new("sextant.yaml"), &err);
        assert_eq!(err.line, Some(2));
        let text = err.to_string();
        assert!(text.starts_with("sextant.yaml:2:1: "), "{text}");
        assert!(text.contains("unknown field `nmae`"), "{text}");
        assert!(!text.contains(" at line "), "{text}");
    }

    #[test]
    fn syntax_errors_keep_a_position() {
        let err = serde_norway::from_str::<Section>("name: [a\n").unwrap_err();
        let err = SourceError::from_yaml(Path::new("f.yml"), &err);
        assert!(err.line.is_some(), "{err}");
        assert!(err.to_string().starts_with("f.yml:"), "{err}");
    }
}
