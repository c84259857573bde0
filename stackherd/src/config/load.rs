//! Loading a config: its files read and merged (`sources`), the merged tree read into
//! a `Config` with every problem collected, or printed with each value's origin.

use std::path::{Path, PathBuf};

use super::diagnostic::ConfigError;
use super::read::Diagnostics;
use super::sources::{Sources, print_merged};
use super::{Config, Hooks, document, vars};

impl Config {
    /// Reads and validates the file at `path` (and its `.local.toml` sibling).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(&[path.to_path_buf()], Hooks::default())
    }

    /// Reads, merges and validates `paths` (later files win), asking `hooks` for the
    /// services of a compose file and the ports chosen for `port = "auto"`.
    pub fn load_with(paths: &[PathBuf], hooks: Hooks) -> Result<Config, ConfigError> {
        let sources = Sources::read(paths).map_err(|(path, err)| ConfigError::io(&path, &err))?;
        let root = root_of(sources.path())?;
        let mut config = Self::parse_with(sources, &root, hooks)?;
        config.given = paths.to_vec();
        Ok(config)
    }

    /// Parses `text` as if read from `path`, with `root` as the project root.
    pub fn parse(path: &Path, root: &Path, text: &str) -> Result<Config, ConfigError> {
        Self::parse_with(Sources::single(path, text), root, Hooks::default())
    }

    fn parse_with(sources: Sources, root: &Path, hooks: Hooks) -> Result<Config, ConfigError> {
        let mut diags = Diagnostics {
            items: Vec::new(),
            vars: vars::Vars::from_process(),
            compose_names: hooks.compose_names,
            chosen_ports: Default::default(),
            hooks,
        };
        let path = sources.path().to_path_buf();
        let config = sources
            .merged(&mut diags)
            .and_then(|merged| document::parse_document(&merged, &path, root, &mut diags));
        match config {
            Some(config) if diags.items.is_empty() => Ok(config),
            _ => {
                let mut diagnostics = diags.items;
                diagnostics.sort_by_key(|d| d.span.start);
                diagnostics.dedup_by(|a, b| a.span == b.span && a.message == b.message);
                Err(ConfigError {
                    path,
                    sources,
                    diagnostics,
                })
            }
        }
    }

    /// The merged config of `paths`, a line per value with the file it comes from
    /// (`check --print`).
    pub fn print_merged(paths: &[PathBuf]) -> Result<Vec<String>, ConfigError> {
        let sources = Sources::read(paths).map_err(|(path, err)| ConfigError::io(&path, &err))?;
        let mut diags = Diagnostics::default();
        match sources.merged(&mut diags) {
            Some(merged) => Ok(print_merged(&sources, &merged)),
            None => Err(ConfigError {
                path: sources.path().to_path_buf(),
                diagnostics: diags.items,
                sources,
            }),
        }
    }
}

/// The project root: the canonical directory of the first config file.
pub(super) fn root_of(path: &Path) -> Result<PathBuf, ConfigError> {
    path.parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(|| ConfigError::message(path, "cannot resolve the directory of the config file"))
}
