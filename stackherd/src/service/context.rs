//! What every command works on: the config, the state directory and the output.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::config::{Config, Hooks, valid_service_name};
use crate::error::{Error, Result};
use crate::os::ServiceProcess;
use crate::service::compose_names;
use crate::state::{RECORD_VERSION, Registry};
use crate::ui::Ui;

pub struct Context {
    pub config: Config,
    pub registry: Registry,
    pub ui: Ui,
    /// The config file is invalid or missing: `config` knows no services, and names
    /// are taken as the records and the process scan give them.
    pub degraded: bool,
    /// The active profiles (`--profile`, `XTASK_PROFILES`).
    pub profiles: BTreeSet<String>,
}

impl Context {
    /// The config of `paths` (merged, later files winning) and its state directory.
    pub fn load(paths: &[PathBuf], ui: Ui) -> Result<Context> {
        let hooks = Hooks {
            compose_names: Some(compose_names::names),
            chosen_ports: Some(Registry::chosen_ports_in),
        };
        let config = Config::load_with(paths, hooks)?;
        let registry = registry_of(&config)?;
        Ok(Context {
            config,
            registry,
            ui,
            degraded: false,
            profiles: BTreeSet::new(),
        })
    }

    /// For the commands that need no valid config (`stop`, `cleanup`, `status`): the
    /// config when it is valid; else what can be known without it, after one warning
    /// that names the first problem.
    pub fn load_or_degrade(paths: &[PathBuf], ui: Ui) -> Result<Context> {
        let err = match Context::load(paths, ui) {
            Ok(ctx) => return Ok(ctx),
            Err(Error::Config(err)) => err,
            Err(other) => return Err(other),
        };
        let Some(config) = paths.first().and_then(|path| Config::without_services(path)) else {
            return Err(Error::Config(err));
        };
        ui.warn(format!(
            "{}; going on from the records and the process scan, with default stop signals and timeouts",
            err.first_problem()
        ));
        let registry = registry_of(&config)?;
        Ok(Context {
            config,
            registry,
            ui,
            degraded: true,
            profiles: BTreeSet::new(),
        })
    }

    /// The services to start for `names`: the named ones, or the active ones when none
    /// are named (profiles, `disabled`). A dependency that is neither active nor named
    /// is refused, naming both services and what would activate it.
    pub fn select_active(&self, names: &[String]) -> Result<Vec<String>> {
        let selected = if names.is_empty() || self.degraded {
            self.select(names)?
                .into_iter()
                .filter(|name| self.is_active(name))
                .collect()
        } else {
            self.select(names)?
        };
        let mut problems = Vec::new();
        for name in self.config.graph().with_dependencies(&selected) {
            let Some(service) = self.config.service(&name) else {
                continue;
            };
            for dependency in service.dependency_names() {
                let inactive = self.config.service(dependency).filter(|d| !self.is_active(&d.name));
                if let Some(dependency) = inactive.filter(|d| !selected.contains(&d.name)) {
                    problems.push(format!(
                        "service `{name}` depends on `{}`, which is not active: {}",
                        dependency.name,
                        dependency.why_inactive()
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(selected)
        } else {
            Err(Error::Inactive(problems))
        }
    }

    /// This binary run again for the same project: `xtask --config FILE...` in the
    /// project root (the monitor, the terminal UI's actions).
    pub fn xtask_command(&self) -> std::io::Result<std::process::Command> {
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command
            .args(
                self.config
                    .given
                    .iter()
                    .flat_map(|path| [std::ffi::OsStr::new("--config"), path.as_os_str()]),
            )
            .current_dir(&self.config.root);
        Ok(command)
    }

    /// Whether a service starts with the others under the active profiles.
    pub fn is_active(&self, name: &str) -> bool {
        self.config.service(name).is_none_or(|s| s.is_active(&self.profiles))
    }

    /// Checks that every name is a declared service, or a service with `replicas`
    /// (standing for all of them); all services when none are given.
    pub fn select(&self, names: &[String]) -> Result<Vec<String>> {
        if self.degraded {
            // No config to check against: any name a record or a process could carry.
            return Ok(names.iter().filter(|n| valid_service_name(n)).cloned().collect());
        }
        if names.is_empty() {
            return Ok(self.config.services.iter().map(|s| s.name.clone()).collect());
        }
        let mut problems = Vec::new();
        let mut selected: Vec<String> = Vec::new();
        for name in names {
            let members = self.config.members(name);
            let found: Vec<String> = match self.config.service(name) {
                Some(service) => vec![service.name.clone()],
                None => members.iter().map(|s| s.name.clone()).collect(),
            };
            if found.is_empty() {
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
            for service in found {
                if !selected.contains(&service) {
                    selected.push(service);
                }
            }
        }
        if problems.is_empty() {
            Ok(selected)
        } else {
            Err(Error::UnknownServices(problems))
        }
    }
}

/// The project's state directory, with this process's start time for the lock file,
/// refused when a newer xtask wrote a record there: this build cannot know what it
/// means, and acting on it as garbage would kill its service.
fn registry_of(config: &Config) -> Result<Registry> {
    let me = ServiceProcess::of(std::process::id() as i32);
    let registry = Registry::new(&config.project.state_dir).with_start_time(me.map(|p| p.start_time));
    match registry.newer_record() {
        Some((path, version)) => Err(Error::NewerRecord {
            path,
            version,
            known: RECORD_VERSION,
        }),
        None => Ok(registry),
    }
}
