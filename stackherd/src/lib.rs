//! Starts the local development stack described in `services.toml` (a database, an
//! API, workers, a dev server, containers) in dependency order, waits for each service
//! to be healthy, supervises it, and stops it all so that nothing is left running:
//! from your own `cargo xtask`. **Linux only.**
//!
//! # Adopting it
//!
//! Your xtask depends on `stackherd` and on `clap` (with the `derive` feature),
//! flattens [`Options`] into its top level and [`Command`] beside its own commands,
//! and hands them to [`run`]:
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use clap::{Parser, Subcommand};
//!
//! #[derive(Parser)]
//! #[command(name = "xtask")]
//! struct Cli {
//!     #[command(flatten)]
//!     stack: stackherd::Options,
//!     #[command(subcommand)]
//!     command: Command,
//! }
//!
//! #[derive(Subcommand)]
//! enum Command {
//!     /// Generate the code (a command of your own)
//!     Codegen,
//!     #[command(flatten)]
//!     Stack(stackherd::Command),
//! }
//!
//! fn main() -> ExitCode {
//!     let cli = Cli::parse();
//!     match cli.command {
//!         Command::Codegen => ExitCode::SUCCESS,
//!         Command::Stack(command) => stackherd::run(cli.stack, command),
//!     }
//! }
//! ```
//!
//! `cargo xtask start-bg`, `status`, `logs`, `stop` and the rest then sit beside
//! `cargo xtask codegen`. A binary with no commands of its own calls [`main`].
//!
//! The binary runs itself again through hidden commands (the monitor that supervises
//! a background start, the relays that write the services' logs): flattening
//! [`Command`] keeps them reachable. A start asks the binary first, and a `main` that
//! does not pass them on gets an error that says so before anything is started.
//!
//! The project is the one named by `--config` or `XTASK_CONFIG`, else the nearest
//! `services.toml` in the current directory or above it.
//!
//! # Inside
//!
//! Folders are layers; a module imports only from layers below its own (ARCHITECTURE.md
//! has the map, and the tidy test holds the order).
// Nothing a user or the OS can cause may panic, and every `unsafe` block says why it is
// sound: the lints are the workspace's (Cargo.toml, `[workspace.lints]`).

#[cfg(not(target_os = "linux"))]
compile_error!(
    "stackherd runs on Linux only: it reads /proc (process identity, the cookie scan, \
     listening sockets), uses pidfds, PR_SET_CHILD_SUBREAPER, posix_spawn's SETSID and \
     cgroup v2. A port needs another `os` layer (libproc or sysctl on macOS, kqueue \
     instead of pidfds) behind the same interface."
);

pub mod cli;
mod commands;
pub mod config;
mod docker;
pub mod error;
mod orchestrate;
mod os;
mod poll;
mod probe;
mod service;
mod start;
mod state;
mod stop;
mod supervise;
pub mod ui;

pub use cli::{Cli, Command, Options};

use std::process::ExitCode;

/// Runs one command, reports its error if it fails, and returns the exit code (0 done,
/// 1 failed, 3 not running, 2 usage, 73 state directory, 75 locked, 78 configuration, 130 interrupted:
/// the reference lists them).
pub fn run(options: Options, command: Command) -> ExitCode {
    match commands::run(options, command) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            ui::error(&err);
            ExitCode::from(err.code())
        }
    }
}

/// The whole program, for a binary that has no commands of its own: parses the
/// command line as [`Cli`] and runs it.
pub fn main() -> ExitCode {
    // A log relay starts with every level of a start: it skips the parser.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == commands::relay::SUBCOMMAND) {
        return ExitCode::from(commands::relay::run(args.get(2..).unwrap_or_default()));
    }
    let cli = <Cli as clap::Parser>::parse();
    run(cli.options, cli.command)
}
