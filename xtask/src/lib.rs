//! A development-environment process manager: the library behind `cargo xtask`.
//!
//! `run` loads the project context and dispatches to one module per command; see
//! ARCHITECTURE.md for the map.

mod build;
pub mod cli;
pub mod config;
mod container;
pub mod error;
mod fault;
mod health;
mod logs;
mod monitor;
mod poll;
mod preflight;
mod process;
mod registry;
mod signals;
mod spawn;
mod start;
mod status;
mod stop;
mod supervise;
pub mod ui;
mod wrap;

use std::path::{Path, PathBuf};

use cli::{Cli, Command};
use config::Config;
use error::{Error, Result, exit};
use registry::Registry;
use ui::Ui;

/// What every command works on: the config, the state directory and the output.
pub struct Context {
    pub config: Config,
    pub registry: Registry,
    pub ui: Ui,
}

/// Runs one command and returns its exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let ui = Ui { quiet: cli.quiet };
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "xtask", &mut std::io::stdout());
        return Ok(exit::OK);
    }
    let path = cli.config.unwrap_or_else(default_config_path);
    let ctx = Context::load(&path, ui)?;
    match cli.command {
        Command::Check => preflight::check(&ctx),
        Command::Start { services, prepare } => monitor::start_foreground(&ctx, &services, prepare_switches(prepare)?),
        Command::StartBg {
            services,
            no_monitor,
            prepare,
        } => monitor::start_bg(&ctx, &services, no_monitor, prepare_switches(prepare)?),
        Command::Restart {
            services,
            no_monitor,
            prepare,
        } => monitor::restart(&ctx, &services, no_monitor, prepare_switches(prepare)?),
        Command::Build { services } => {
            let services = ctx.select(&services)?;
            build::run(&ctx, &services, signals::Interrupts::install()).map(|()| exit::OK)
        }
        Command::Run {
            services,
            command,
            prepare,
        } => wrap::run(&ctx, &services, &command, prepare_switches(prepare)?),
        Command::Monitor { services, lock_fd } => monitor::run(&ctx, &services, lock_fd),
        Command::Status { services, json } => status::run(&ctx, &services, json),
        Command::Logs { service, lines, follow } => logs::run(&ctx, &service, lines, follow).map(|()| exit::OK),
        Command::Stop {
            services,
            force,
            no_force,
            timeout,
            volumes,
            containers,
        } => {
            let force = switch(force, no_force, "XTASK_FORCE", false)?;
            let options = stop::Options {
                force,
                timeout,
                interrupts: None,
                volumes,
                containers_only: containers,
            };
            stop::run(&ctx, &services, options).map(|()| exit::OK)
        }
        Command::Cleanup { dry_run } => stop::cleanup(&ctx, dry_run).map(|()| exit::OK),
        Command::Completions { .. } => Ok(exit::OK),
    }
}

fn prepare_switches(flags: cli::PrepareFlags) -> Result<start::Prepare> {
    Ok(start::Prepare {
        build: switch(flags.build, flags.no_build, "XTASK_BUILD", true)?,
        cleanup: switch(flags.cleanup, flags.no_cleanup, "XTASK_CLEANUP", true)?,
    })
}

/// A yes/no setting: the flag if one was given, else the environment variable, else
/// the default.
fn switch(on: bool, off: bool, var: &str, default: bool) -> Result<bool> {
    if on || off {
        return Ok(on);
    }
    match std::env::var(var)
        .ok()
        .as_deref()
        .map(str::trim)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off" | "") => Ok(false),
        Some(other) => Err(Error::with_code(
            exit::USAGE,
            format!("{var}={other} is not a switch; set it to 1 or 0 (or unset it)"),
        )),
    }
}

/// services.toml in the root of the workspace this binary was built from, so that
/// `cargo xtask` finds it from any directory of the repository.
fn default_config_path() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).join(config::DEFAULT_FILE)
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
            Err(Error::with_code(exit::USAGE, problems.join("\n")))
        }
    }
}
