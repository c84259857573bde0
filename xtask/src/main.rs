//! Entry point: parse the command line, run the command, map the result to an exit code.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A service's log relay: started once per service start, so nothing else is done.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == xtask::relay::SUBCOMMAND) {
        return ExitCode::from(xtask::relay::run(args.get(2..).unwrap_or_default()));
    }
    let cli = xtask::cli::Cli::parse();
    match xtask::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            xtask::ui::error(&err);
            ExitCode::from(err.code())
        }
    }
}
