//! Config errors: every problem found in one file, rendered as rustc renders its own,
//! `file:line:column`, the source line and a caret under the offending text.

use std::fmt;
use std::path::{Path, PathBuf};

use super::read::{self, Diagnostic};

/// Every problem found in one config file, rendered with locations.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    pub(super) source_text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub(super) fn io(path: &Path, err: &std::io::Error) -> ConfigError {
        let hint = if err.kind() == std::io::ErrorKind::NotFound {
            "; create it, or point --config or XTASK_CONFIG at one"
        } else {
            ""
        };
        Self::message(path, &format!("cannot read the config file: {err}{hint}"))
    }

    pub(super) fn message(path: &Path, message: &str) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            source_text: String::new(),
            diagnostics: vec![Diagnostic {
                span: 0..0,
                message: message.to_string(),
                help: None,
            }],
        }
    }
}

impl ConfigError {
    /// The first problem alone, located, on one line.
    pub fn first_problem(&self) -> String {
        let path = self.path.display();
        match self.diagnostics.first() {
            None => format!("{path} is invalid"),
            Some(diag) if self.source_text.is_empty() => format!("{path}: {}", diag.message),
            Some(diag) => {
                let (line, column) = read::line_col(&self.source_text, diag.span.start);
                format!("{path}:{line}:{column}: {}", diag.message)
            }
        }
    }
}

impl fmt::Display for ConfigError {
    /// Each problem as `file:line:column: message`, then the source line with a caret
    /// under the offending text and the hint, as rustc does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        if self.diagnostics.len() > 1 {
            writeln!(f, "{path} has {} problems:", self.diagnostics.len())?;
        }
        for (i, diag) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                write!(f, "\n\n")?;
            }
            if self.source_text.is_empty() {
                write!(f, "{path}: {}", diag.message)?;
                continue;
            }
            let (line, column) = read::line_col(&self.source_text, diag.span.start);
            write!(f, "{path}:{line}:{column}: {}", diag.message)?;
            let text = self.source_text.lines().nth(line.saturating_sub(1)).unwrap_or("");
            let width = self.source_text[diag.span.clone()]
                .lines()
                .next()
                .map_or(1, |l| l.chars().count().max(1));
            let gutter = " ".repeat(line.to_string().len());
            write!(
                f,
                "\n{gutter} |\n{line} | {text}\n{gutter} | {}{}",
                " ".repeat(column.saturating_sub(1)),
                "^".repeat(width)
            )?;
            if let Some(help) = &diag.help {
                write!(f, " {help}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
