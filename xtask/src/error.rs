//! The error every command returns, and the exit codes it maps to.

use std::fmt;

use crate::config::ConfigError;

/// Exit codes, documented in README ("Exit codes").
pub mod exit {
    pub const OK: u8 = 0;
    /// A command failed: a service did not start, something survived a stop, a check failed.
    /// For `status`: some services are not running, or a record is stale.
    pub const FAILURE: u8 = 1;
    /// Bad command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// `status`: no service is running.
    pub const NOT_RUNNING: u8 = 3;
    /// The state directory cannot be created or written.
    pub const STATE: u8 = 73;
    /// Another xtask command holds the state lock.
    pub const LOCKED: u8 = 75;
    /// services.toml is missing or invalid.
    pub const CONFIG: u8 = 78;
    /// Interrupted by Ctrl+C (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug)]
pub struct Error {
    pub message: String,
    pub code: u8,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn failure(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            code: exit::FAILURE,
        }
    }

    pub fn with_code(code: u8, message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            code,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Error {
        Error {
            message: err.to_string(),
            code: exit::CONFIG,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
