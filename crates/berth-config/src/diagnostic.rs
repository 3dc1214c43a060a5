//! Findings about a configuration layer: what is wrong, where, and how bad.

use std::fmt;

/// How bad a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The layer (or value) was rejected: it is not applied.
    Error,
    /// Applied, but something was ignored or looks wrong (an unknown key, say).
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding about one configuration source.
///
/// Displays as `error: /var/lib/berth/conf/cloud-config.yml:3:5: berth.ssh.port: "x" is not a
/// port number (1-65535)`: severity, source, position when known, dotted key path when known.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A file path, or `"kernel command line"`.
    pub source: String,
    /// 1-based line, when the source is a file.
    pub line: Option<usize>,
    /// 1-based column, when the source is a file.
    pub column: Option<usize>,
    /// Dotted key path (`berth.ssh.port`, `write_files[0].permissions`).
    pub key: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(severity: Severity, source: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            source: source.into(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, line: usize, column: usize) -> Self {
        if line > 0 {
            self.line = Some(line);
            self.column = (column > 0).then_some(column);
        }
        self
    }

    pub(crate) fn with_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.key = (!key.is_empty()).then_some(key);
        self
    }

    /// Whether this diagnostic is an [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Whether any of `diagnostics` is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_every_part() {
        let d = Diagnostic::new(
            Severity::Error,
            "/var/lib/berth/conf/cloud-config.yml",
            "\"x\" is not a port number (1-65535)",
        )
        .at(3, 5)
        .with_key("berth.ssh.port");
        assert_eq!(
            d.to_string(),
            "error: /var/lib/berth/conf/cloud-config.yml:3:5: berth.ssh.port: \"x\" is not a port number (1-65535)"
        );
    }

    #[test]
    fn display_without_position_or_key() {
        let d = Diagnostic::new(Severity::Warning, "kernel command line", "ignored");
        assert_eq!(d.to_string(), "warning: kernel command line: ignored");
    }
}

/// A diagnostic before its source id is resolved to a name.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Finding {
    pub severity: Severity,
    pub loc: crate::node::Loc,
    pub key: String,
    pub message: String,
}

impl Finding {
    pub fn error(loc: crate::node::Loc, key: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            loc,
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn warning(loc: crate::node::Loc, key: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(loc, key, message)
        }
    }

    pub fn to_diagnostic(&self, sources: &crate::node::Sources) -> Diagnostic {
        Diagnostic::new(self.severity, sources.name(self.loc.source), self.message.clone())
            .at(self.loc.line as usize, self.loc.column as usize)
            .with_key(self.key.clone())
    }
}
