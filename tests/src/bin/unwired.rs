//! A team's xtask wired wrongly: stackherd's commands nested under a `stack` command of
//! its own, so that the hidden commands the binary runs itself with (`__monitor`,
//! `__relay`) do not reach the library. Its starts must refuse with an error that
//! names the fix, and start nothing.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    stack: stackherd::Options,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The team's own command
    Codegen,
    /// stackherd's commands, one level down
    Stack {
        #[command(subcommand)]
        command: stackherd::Command,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Codegen => ExitCode::SUCCESS,
        Command::Stack { command } => stackherd::run(cli.stack, command),
    }
}
