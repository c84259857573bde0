//! Config errors: every problem found in the config's files, rendered as rustc renders
//! its own, `file:line:column`, the source line and a caret under the offending text.
//! With several files (an override, `--config` twice) each problem names its own.

use std::fmt;
use std::path::{Path, PathBuf};

use super::read::Diagnostic;
use super::sources::Sources;

/// Every problem found in a config, rendered with locations.
#[derive(Debug)]
pub struct ConfigError {
    /// The first file: what the problems are reported for.
    pub path: PathBuf,
    pub(super) sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub(super) fn io(path: &Path, err: &std::io::Error) -> ConfigError {
        let hint = if err.kind() == std::io::ErrorKind::NotFound {
            "; create it, or point --config or XTASK_CONFIG at one (without either, the nearest services.toml in the current directory or above it is used)"
        } else {
            ""
        };
        Self::message(path, &format!("cannot read the config file: {err}{hint}"))
    }

    pub(super) fn message(path: &Path, message: &str) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            sources: Sources::default(),
            diagnostics: vec![Diagnostic {
                span: 0..0,
                message: message.to_string(),
                help: None,
            }],
        }
    }

    /// The first problem alone, located, on one line.
    pub fn first_problem(&self) -> String {
        match self.diagnostics.first() {
            None => format!("{} is invalid", self.path.display()),
            Some(diag) if self.sources.text.is_empty() => format!("{}: {}", self.path.display(), diag.message),
            Some(diag) => {
                let (file, line, column) = self.sources.locate(diag.span.start);
                format!("{}:{line}:{column}: {}", file.display(), diag.message)
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
            match self.sources.files.len() {
                0 | 1 => writeln!(f, "{path} has {} problems:", self.diagnostics.len())?,
                n => writeln!(
                    f,
                    "{path} (with {} override file(s)) has {} problems:",
                    n.saturating_sub(1),
                    self.diagnostics.len()
                )?,
            }
        }
        for (i, diag) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                write!(f, "\n\n")?;
            }
            if self.sources.text.is_empty() {
                write!(f, "{path}: {}", diag.message)?;
                continue;
            }
            let (file, line, column) = self.sources.locate(diag.span.start);
            write!(f, "{}:{line}:{column}: {}", file.display(), diag.message)?;
            let (_, text, start) = self.sources.file_at(diag.span.start);
            let source_line = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
            let local = diag.span.start.saturating_sub(start)..diag.span.end.saturating_sub(start);
            let width = text
                .get(local)
                .and_then(|t| t.lines().next())
                .map_or(1, |l| l.chars().count().max(1));
            let gutter = " ".repeat(line.to_string().len());
            write!(
                f,
                "\n{gutter} |\n{line} | {source_line}\n{gutter} | {}{}",
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
