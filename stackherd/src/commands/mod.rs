//! The command-line surface's one implementation per command, and the dispatch: load
//! the project, run the command, return its exit code.

mod build;
mod check;
mod cleanup;
mod completions;
mod import;
mod init;
mod logs;
mod monitor;
pub mod relay;
mod restart;
mod run;
mod start;
mod start_bg;
#[cfg(feature = "tui")]
mod start_tui;
mod status;
mod stop;
#[cfg(feature = "tui")]
mod ui;

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use crate::cli::{self, Cli, Command};
use crate::config;
use crate::error::{Error, Result, exit};
use crate::orchestrate::prepare::Prepare;
use crate::os::memory;
use crate::poll;
use crate::service::{Context, auto_ports, reexec};
use crate::stop::Options;
use crate::ui::Ui;

/// Runs one command and returns its exit code.
pub fn run(options: cli::Options, command: Command) -> Result<u8> {
    let cli = Cli { options, command };
    match &cli.command {
        Command::Relay { args } => return Ok(relay::run(args)),
        Command::ReexecCheck => {
            crate::ui::raw_line(reexec::ANSWER);
            return Ok(exit::OK);
        }
        // Run again by this very binary: its hidden commands reach us.
        Command::Monitor { .. } => reexec::reached(),
        _ => {}
    }
    if let Command::Monitor { began_ms: Some(ms), .. } = cli.command
        && let Some(at) = UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    {
        poll::began_at(at);
    }
    // The command's clock starts before the config load, which may run the compose tool.
    poll::began();
    let ui = Ui {
        quiet: cli.options.quiet,
    };
    let paths = if cli.options.config.is_empty() {
        vec![default_config_path()]
    } else {
        cli.options.config.clone()
    };
    if let Some(done) = without_a_project(&cli.command, &ui, &paths) {
        return done;
    }
    let ctx = context_for(&cli, ui, &paths)?;
    dispatch(&ctx, cli.command)
}

/// The commands that need no project loaded: `import`, `init`, completions and
/// `check --print`.
fn without_a_project(command: &Command, ui: &Ui, paths: &[PathBuf]) -> Option<Result<u8>> {
    match command {
        Command::Import { file, format, output } => Some(import::run(ui, file, *format, output.as_deref())),
        Command::Init { path, dry_run } => Some(init::run(ui, path, *dry_run)),
        Command::Completions { shell } => {
            completions::run(*shell);
            Some(Ok(exit::OK))
        }
        Command::Complete { what } => {
            completions::words(paths, what);
            Some(Ok(exit::OK))
        }
        Command::Check { print: true } => Some(check::print(paths)),
        _ => None,
    }
}

/// The project as the command needs it: loaded (degraded where a broken config must
/// not stop a stop), its profiles, and for a command that starts services the binary
/// checked and the automatic ports chosen.
fn context_for(cli: &Cli, ui: Ui, paths: &[PathBuf]) -> Result<Context> {
    // Taking the stack down must work when services.toml is broken or gone.
    let needs_no_config = matches!(
        cli.command,
        Command::Stop { .. } | Command::Cleanup { .. } | Command::Status { .. }
    );
    let mut ctx = if needs_no_config {
        Context::load_or_degrade(paths, ui)?
    } else {
        Context::load(paths, ui)?
    };
    ctx.profiles = cli
        .options
        .profiles
        .iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    // Commands that start services choose the ports of `port = "auto"` first.
    let start = match cli.command {
        Command::Start { .. } => Some("start"),
        Command::StartBg { .. } => Some("start-bg"),
        Command::Restart { .. } => Some("restart"),
        Command::Run { .. } => Some("run"),
        _ => None,
    };
    if let Some(start) = start {
        reexec::check(&ctx)?;
        // A foreground start supervises all day: its allocator is set before any
        // thread starts, and choosing ports may start the interrupt handler's.
        if start == "start" {
            memory::one_malloc_arena();
        }
        ctx = auto_ports::settle(ctx, start)?;
    }
    Ok(ctx)
}

/// Runs a command that works on the loaded project.
fn dispatch(ctx: &Context, command: Command) -> Result<u8> {
    match command {
        Command::Check { .. } => check::run(ctx),
        Command::Start { .. } | Command::StartBg { .. } | Command::Restart { .. } | Command::Run { .. } => {
            starting(ctx, command)
        }
        Command::Build { services } => build::run(ctx, &services).map(|()| exit::OK),
        Command::Monitor {
            services,
            lock_fd,
            no_build,
            no_cleanup,
            ..
        } => {
            let switches = Prepare {
                build: !no_build,
                cleanup: !no_cleanup,
            };
            monitor::run(ctx, &services, lock_fd, switches)
        }
        Command::Status { services, json } => status::run(ctx, &services, json),
        Command::Logs {
            services,
            lines,
            follow,
            since,
            timestamps,
            no_prefix,
            raw,
        } => {
            let options = logs::Options {
                lines,
                follow,
                since,
                timestamps,
                no_prefix,
                raw,
            };
            logs::run(ctx, &services, &options).map(|()| exit::OK)
        }
        Command::Stop {
            services,
            force,
            no_force,
            timeout,
            volumes,
            containers,
        } => {
            let options = Options {
                force: switch(force, no_force, "XTASK_FORCE", false)?,
                timeout,
                interrupts: None,
                volumes,
                containers_only: containers,
                // Another process started the services: it has no children of theirs.
                adopted_are_ours: false,
            };
            stop::run(ctx, &services, options).map(|()| exit::OK)
        }
        Command::Cleanup { dry_run } => cleanup::run(ctx, dry_run).map(|()| exit::OK),
        #[cfg(feature = "tui")]
        Command::Ui => ui::run(ctx, ui::Quit::LeavesTheStack).map(|()| exit::OK),
        #[cfg(not(feature = "tui"))]
        Command::Ui => Err(Error::NoTui),
        // Answered before any context is loaded.
        Command::Completions { .. }
        | Command::Complete { .. }
        | Command::Relay { .. }
        | Command::ReexecCheck
        | Command::Init { .. }
        | Command::Import { .. } => Ok(exit::OK),
    }
}

/// The commands that start services: `start` (with or without its UI), `start-bg`,
/// `restart` and `run`.
fn starting(ctx: &Context, command: Command) -> Result<u8> {
    match command {
        Command::Start {
            services,
            abort_on_failure,
            tui: false,
            prepare,
        } => start::run(ctx, &services, prepare_switches(prepare)?, abort_on_failure),
        Command::Start {
            services,
            tui: true,
            prepare,
            ..
        } => {
            #[cfg(feature = "tui")]
            let shown = start_tui::run(ctx, &services, prepare_switches(prepare)?);
            #[cfg(not(feature = "tui"))]
            let shown = {
                let _ = (services, prepare);
                Err(Error::NoTui)
            };
            shown
        }
        Command::StartBg {
            services,
            no_monitor,
            prepare,
        } => start_bg::run(ctx, &services, no_monitor, prepare_switches(prepare)?),
        Command::Restart {
            services,
            no_monitor,
            prepare,
        } => restart::run(ctx, &services, no_monitor, prepare_switches(prepare)?),
        Command::Run {
            services,
            command,
            no_abort,
            prepare,
        } => run::run(ctx, &services, &command, prepare_switches(prepare)?, !no_abort),
        _ => Err(Error::Internal("`starting` was handed a command that starts nothing")),
    }
}

fn prepare_switches(flags: cli::PrepareFlags) -> Result<Prepare> {
    Ok(Prepare {
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
        Some(other) => Err(Error::BadSwitch {
            var: var.to_string(),
            value: other.to_string(),
        }),
    }
}

/// The nearest services.toml, from the current directory up, as cargo finds
/// `Cargo.toml`: never the one of the workspace this binary was built from, which
/// with a shared target directory (`CARGO_TARGET_DIR`, `build.target-dir`) is another
/// checkout's, whose stack a `stop` here would stop. None found: the current
/// directory's, whose absence is then the error.
fn default_config_path() -> PathBuf {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    config::nearest(&here).unwrap_or_else(|| here.join(config::DEFAULT_FILE))
}

/// The first line of `status` and `stop`: which project, at which root, so that
/// a command run in the wrong checkout says so before anything else.
pub fn project_line(ctx: &Context) -> String {
    match ctx.config.project.name.as_str() {
        "" => format!("project at {}", ctx.config.root.display()),
        name => format!("project {name} at {}", ctx.config.root.display()),
    }
}
