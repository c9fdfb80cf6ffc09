//! [`ConfigError`]: what went wrong loading a config, where, and what to do.

use std::path::{Path, PathBuf};

/// A config that could not be read, parsed or validated.
///
/// Every variant names the file. Validation errors also name the key (in TOML
/// path form: `block.duration`, `windows."7x"`, `customer[3] ("acme").prefixes[1]`,
/// with 0-based array indexes), the line when known, the reason and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}{hint}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
        /// Extra advice (may be empty), starting with "; ".
        hint: String,
    },
    /// The TOML is malformed or does not fit the schema (unknown key, wrong type).
    /// `message` is toml's own, with line, column and a caret under the spot.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// toml's message.
        message: String,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("{}{}: {key}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// The key, e.g. `customer[3] ("acme").prefixes[1]`.
        key: String,
        /// Why, and what to do about it.
        reason: String,
    },
}

impl ConfigError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Io { path, .. }
            | ConfigError::Syntax { path, .. }
            | ConfigError::Invalid { path, .. } => path,
        }
    }

    /// The offending key, for validation errors.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}
