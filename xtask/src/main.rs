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
    let cli = xtask::cli::Cli::parse();
    match xtask::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            xtask::ui::error(&err);
            ExitCode::from(err.code())
        }
    }
}
