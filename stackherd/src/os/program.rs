//! Command lines to programs: the argument vector, and the one lookup of a program that
//! preflight, the service spawn and every other child share.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::CommandLine;

/// The program and the whole argument vector (program name first).
pub fn argv(line: &CommandLine) -> (String, Vec<String>) {
    match line {
        CommandLine::Shell(script) => ("sh".into(), vec!["sh".into(), "-c".into(), script.clone()]),
        // The config refuses an empty array; an empty program name fails to spawn.
        CommandLine::Exec(words) => (words.first().cloned().unwrap_or_default(), words.clone()),
    }
}

/// A program path with a slash is relative to `cwd`; a bare name is looked up on `path`
/// (the `PATH` the process will have), as std's `Command` does. Only an executable
/// regular file counts.
pub fn find(program: &str, cwd: &Path, path: Option<&OsStr>) -> Option<PathBuf> {
    let executable = |candidate: &Path| {
        nix::unistd::access(candidate, nix::unistd::AccessFlags::X_OK).is_ok() && candidate.is_file()
    };
    if program.contains('/') {
        return Some(resolve(program, cwd)).filter(|p| executable(p));
    }
    std::env::split_paths(path?)
        .map(|dir| cwd.join(dir).join(program))
        .find(|candidate| executable(candidate))
}

/// The `PATH` a process with `env` on top of xtask's environment will have.
pub fn path_with(env: &[(String, String)]) -> Option<std::ffi::OsString> {
    match env.iter().rev().find(|(k, _)| k == "PATH") {
        Some((_, v)) => Some(v.into()),
        None => std::env::var_os("PATH"),
    }
}

/// The std `Command` for a command line: strings through `sh -c`, arrays directly. A
/// program path with a slash is taken relative to `cwd`.
pub fn command_for(line: &CommandLine, cwd: &Path) -> Command {
    let (program, args) = argv(line);
    let mut command = Command::new(resolve(&program, cwd));
    command.args(args.iter().skip(1));
    command
}

fn resolve(program: &str, cwd: &Path) -> PathBuf {
    if program.contains('/') {
        cwd.join(program)
    } else {
        PathBuf::from(program)
    }
}
