//! Configuration errors: one problem in one file, at one place.

use std::fmt;
use std::path::{Path, PathBuf};

use super::yaml::Location;

/// One problem in one file, at one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole.
    pub line: u64,
    pub column: u64,
    /// Dotted path of the offending field, e.g. `fqdns.vault.members[1].weight`.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    /// A problem with a file (or directory) as a whole.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything wrong with a configuration, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Most errors kept for one file; a file of 200,000 duplicate records would otherwise make
/// as many lines of log and of `/status`.
pub(super) const MAX_ERRORS_PER_FILE: usize = 100;

/// Collects the errors of one file, so that validation can go on past the first.
pub(super) struct Report<'f> {
    pub(super) file: &'f Path,
    pub(super) errors: Vec<ConfigError>,
    /// Errors past [`MAX_ERRORS_PER_FILE`], counted only.
    dropped: usize,
    /// Problems that do not stop the file from loading, but that an operator should fix.
    pub(super) warnings: Vec<ConfigError>,
}

impl<'f> Report<'f> {
    pub(super) fn new(file: &'f Path) -> Self {
        Report {
            file,
            errors: Vec::new(),
            dropped: 0,
            warnings: Vec::new(),
        }
    }

    /// Whether any error was found (kept or not).
    pub(super) fn failed(&self) -> bool {
        !self.errors.is_empty() || self.dropped > 0
    }

    /// How many errors were found so far (kept or not).
    pub(super) fn count(&self) -> usize {
        self.errors.len() + self.dropped
    }

    /// The errors in file order, with a last line counting those not kept.
    pub(super) fn into_errors(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| (e.line, e.column));
        if self.dropped > 0 {
            self.errors.push(ConfigError::whole_file(
                self.file,
                format!(
                    "{} more errors in this file not shown; fix the ones above first",
                    self.dropped
                ),
            ));
        }
        self.errors
    }

    pub(super) fn warn(
        &mut self,
        loc: Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        if self.warnings.len() < MAX_ERRORS_PER_FILE {
            self.warnings.push(ConfigError {
                file: self.file.to_path_buf(),
                line: loc.line(),
                column: loc.column(),
                field: field.into(),
                message: message.into(),
            });
        }
    }

    pub(super) fn at(
        &mut self,
        loc: Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        if self.errors.len() >= MAX_ERRORS_PER_FILE {
            self.dropped += 1;
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            field: field.into(),
            message: message.into(),
        });
    }
}
