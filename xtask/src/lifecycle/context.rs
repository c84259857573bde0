//! What every command works on: the config, the state directory and the output.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::Registry;
use crate::ui::Ui;

pub struct Context {
    pub config: Config,
    pub registry: Registry,
    pub ui: Ui,
}

impl Context {
    pub fn load(path: &Path, ui: Ui) -> Result<Context> {
        let config = Config::load(path)?;
        let registry = Registry::new(&config.project.state_dir);
        Ok(Context { config, registry, ui })
    }

    /// Checks that every name is a declared service; all of them when none are given.
    pub fn select(&self, names: &[String]) -> Result<Vec<String>> {
        if names.is_empty() {
            return Ok(self.config.services.iter().map(|s| s.name.clone()).collect());
        }
        let mut problems = Vec::new();
        for name in names {
            if self.config.service(name).is_none() {
                let hint = match self.config.suggest(name) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!(
                        "declared services are: {}",
                        self.config
                            .services
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                problems.push(format!("no service `{name}` in {}; {hint}", self.config.path.display()));
            }
        }
        if problems.is_empty() {
            Ok(names.to_vec())
        } else {
            Err(Error::UnknownServices(problems))
        }
    }
}
