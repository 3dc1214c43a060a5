//! The errors of the editing API and of interpolation.

use crate::diagnostic::Diagnostic;
use std::path::PathBuf;

fn first_errors(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .take(3)
        .map(|d| format!("\n  {d}"))
        .collect();
    errors.concat()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {path}: {source} (is the state partition mounted and writable?)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{key:?} is not a configuration key: {reason}")]
    InvalidKey { key: String, reason: String },

    #[error("{key}: {hint}; nothing was written (`berth config export --full` lists the keys)")]
    UnknownKey { key: String, hint: String },

    #[error("the value for {key} is not valid YAML: {message}")]
    InvalidValue { key: String, message: String },

    #[error("{what} was not written because the configuration would be invalid:{}", first_errors(.diagnostics))]
    Rejected {
        what: String,
        diagnostics: Vec<Diagnostic>,
    },

    #[error(
        "{} is invalid; fix it or remove it, then retry:{}",
        .path.display(),
        first_errors(.diagnostics)
    )]
    LocalFileInvalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },

    #[error("unclosed \"${{\" in {text:?}: close it with \"}}\", or write \"$$\" for a literal \"$\"")]
    UnclosedVariable { text: String },

    #[error(
        "{name:?} in {text:?} is not a variable name (letters, digits and '_', not starting with a digit)"
    )]
    BadVariableName { name: String, text: String },

    #[error("${{{name}}} is not set: define it in berth.environment, or write ${{{name}:-default}}")]
    UndefinedVariable { name: String },
}

impl ConfigError {
    /// The diagnostics behind this error, when it has any.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Rejected { diagnostics, .. } | ConfigError::LocalFileInvalid { diagnostics, .. } => {
                diagnostics
            }
            _ => &[],
        }
    }
}
