//! `completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell.

use crate::cli::Cli;
use crate::ui;

pub fn run(shell: clap_complete::Shell) {
    let mut command = <Cli as clap::CommandFactory>::command();
    ui::raw(|out| clap_complete::generate(shell, &mut command, "xtask", out));
}
