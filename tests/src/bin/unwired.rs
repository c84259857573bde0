//! A team's xtask wired wrongly: stackherd's commands nested under a `stack` command of
//! its own, so that the hidden commands the binary runs itself with (`__monitor`,
//! `__relay`) do not reach the library; or, with `UNWIRED=options`, stackherd's commands
//! flattened but its options not (the monitor is run with `--config` before its
//! command). Its starts must refuse with an error that names the fix, and start nothing.

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

/// Flattened commands, options left out.
#[derive(Parser)]
struct WithoutOptions {
    #[command(subcommand)]
    command: stackherd::Command,
}

fn main() -> ExitCode {
    if std::env::var("UNWIRED").as_deref() == Ok("options") {
        let cli = WithoutOptions::parse();
        return stackherd::run(stackherd::Options::default(), cli.command);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Codegen => ExitCode::SUCCESS,
        Command::Stack { command } => stackherd::run(cli.stack, command),
    }
}
