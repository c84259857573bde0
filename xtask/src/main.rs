//! This repository's `cargo xtask`, as a team's would be: stackherd's commands
//! flattened beside the repository's own (it has none yet), its options at the top.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Starts, watches and stops the local development stack described in services.toml.
#[derive(Debug, Parser)]
#[command(name = "xtask", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    stack: stackherd::Options,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Stack(stackherd::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Stack(command) => stackherd::run(cli.stack, command),
    }
}
