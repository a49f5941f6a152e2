//! Diagnostics with attribute paths, so Terraform can underline the argument at fault.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Attr(String),
    Key(String),
    Index(i64),
}

/// A path into a configuration value, e.g. `container[0].port` or `secrets_wo["a/b"]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Step>);

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }
    pub fn attr(name: impl Into<String>) -> Path {
        Path(vec![Step::Attr(name.into())])
    }
    pub fn then_attr(&self, name: impl Into<String>) -> Path {
        let mut p = self.clone();
        p.0.push(Step::Attr(name.into()));
        p
    }
    pub fn key(&self, k: impl Into<String>) -> Path {
        let mut p = self.clone();
        p.0.push(Step::Key(k.into()));
        p
    }
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Step::Index(i as i64));
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Step::Attr(a) if i == 0 => write!(f, "{a}")?,
                Step::Attr(a) => write!(f, ".{a}")?,
                Step::Key(k) => write!(f, "[{k:?}]")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub path: Option<Path>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Error, summary: summary.into(), detail: detail.into(), path: None }
    }
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, summary: summary.into(), detail: detail.into(), path: None }
    }
    pub fn at(mut self, path: Path) -> Diagnostic {
        self.path = Some(path);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}", self.summary)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// An ordered collection of diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diags(pub Vec<Diagnostic>);

impl Diags {
    pub fn new() -> Diags {
        Diags(Vec::new())
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    /// An error on an attribute path: the common case for validation.
    pub fn attr_error(&mut self, path: Path, summary: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Diagnostic::error(summary, detail).at(path));
    }
    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Diagnostic::error(summary, detail));
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn extend(&mut self, other: Diags) {
        self.0.extend(other.0);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Diagnostic> for Diags {
    fn from(d: Diagnostic) -> Diags {
        Diags(vec![d])
    }
}

impl fmt::Display for Diags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_terraform_expressions() {
        let p = Path::attr("container").index(0).then_attr("secrets").key("DB_URL");
        assert_eq!(p.to_string(), "container[0].secrets[\"DB_URL\"]");
    }

    #[test]
    fn diags_track_errors() {
        let mut d = Diags::new();
        d.push(Diagnostic::warning("w", ""));
        assert!(!d.has_errors());
        d.attr_error(Path::attr("cpu"), "Invalid CPU", "256 is not allowed with 8192 MiB");
        assert!(d.has_errors());
        assert_eq!(d.0[1].to_string(), "cpu: Invalid CPU: 256 is not allowed with 8192 MiB");
    }
}
