//! Checks before start, and the `check` command: programs on PATH, working directories,
//! ports free (and who holds them), the state directory, stale records and leftovers.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::unistd::{AccessFlags, access};

use crate::Context;
use crate::config::{CommandLine, Service};
use crate::error::{Error, Result, exit};
use crate::process;
use crate::registry::Entry;
use crate::stop;

/// Words that make the first word of a shell command something other than a program.
const SHELL_WORDS: &[&str] = &[
    "cd", "export", "if", "for", "while", "until", "case", "set", ".", "source", "test", "[", "true", "false", "echo",
    "printf", "exit", "trap", "wait", "read", "eval", "ulimit", "umask", "command", "type", "unset", "{", "(", "!",
];

/// `check`: every check for every service, all problems reported; exit 0 or 1.
pub fn check(ctx: &Context) -> Result<u8> {
    let listening = process::busy_ports(ctx.config.services.iter().flat_map(|s| s.ports.iter().copied()));
    ctx.ui.ok(format!(
        "{}: {} services, no errors",
        ctx.config.path.display(),
        ctx.config.services.len()
    ));
    let entries = ctx.registry.entries();
    let live = stop::live_services(&entries);
    let mut problems = 0;
    for service in &ctx.config.services {
        let found = service_problems(ctx, service, live.contains(&service.name), &listening);
        if found.is_empty() {
            ctx.ui.ok(format!("{}: ready", service.name));
        }
        for problem in found {
            ctx.ui.fail(format!("{}: {problem}", service.name));
            problems += 1;
        }
    }
    for problem in state_problems(ctx, &entries, &live) {
        ctx.ui.fail(problem);
        problems += 1;
    }
    if problems == 0 {
        ctx.ui.result("all checks passed");
        Ok(exit::OK)
    } else {
        ctx.ui.result(format!("{problems} problem(s) found"));
        Ok(exit::FAILURE)
    }
}

/// The checks that must pass before `services` are started; all problems in one error.
pub fn before_start(ctx: &Context, services: &[String]) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let listening = process::busy_ports(
        services
            .iter()
            .filter_map(|n| ctx.config.service(n))
            .flat_map(|s| s.ports.iter().copied()),
    );
    for service in services.iter().filter_map(|n| ctx.config.service(n)) {
        problems.extend(
            service_problems(ctx, service, false, &listening)
                .into_iter()
                .map(|p| format!("{}: {p}", service.name)),
        );
    }
    if let Some(problem) = writable_problem(ctx.registry.dir()) {
        problems.push(problem);
    }
    let containers = services
        .iter()
        .filter_map(|n| ctx.config.service(n))
        .any(|s| s.container.is_some());
    if (containers || ctx.config.project.compose_file.is_some())
        && let Err(err) = crate::container::engine()
    {
        problems.push(err);
    }
    let wanted: BTreeSet<&str> = services.iter().map(String::as_str).collect();
    let leftovers: Vec<_> = stop::leftovers(ctx, &stop::live_services(&ctx.registry.entries()))
        .into_iter()
        .filter(|p| p.service.as_deref().is_none_or(|s| wanted.contains(s)))
        .collect();
    if !leftovers.is_empty() {
        problems.push(leftover_problem(&leftovers));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failure(format!("cannot start: {}", problems.join("\n  "))))
    }
}

fn service_problems(ctx: &Context, service: &Service, running: bool, listening: &BTreeSet<u16>) -> Vec<String> {
    let mut problems = Vec::new();
    if !service.cwd.is_dir() {
        problems.push(format!(
            "working directory {} does not exist; create it or fix `cwd`",
            service.cwd.display()
        ));
    } else if let Some(program) = program_of(&service.command)
        && service.container.is_none()
        && !program_exists(&program, &service.cwd)
    {
        problems.push(format!(
            "program `{program}` not found{}; install it or fix `command`",
            if program.contains('/') {
                format!(" in {}", service.cwd.display())
            } else {
                " on PATH".to_string()
            }
        ));
    }
    for &port in &service.ports {
        if !listening.contains(&port) {
            continue;
        }
        let holders = process::port_holders(port, &ctx.config.root);
        if running && !holders.is_empty() && holders.iter().all(|h| h.service.as_deref() == Some(&service.name)) {
            continue;
        }
        problems.push(port_problem(port, &holders));
    }
    problems
}

fn port_problem(port: u16, holders: &[process::PortHolder]) -> String {
    if holders.is_empty() {
        return format!(
            "port {port} is already in use (by a process this user cannot see); free it or change the port"
        );
    }
    let who: Vec<String> = holders
        .iter()
        .map(|h| match &h.service {
            Some(s) => format!("pid {} ({}), a leftover of this project's `{s}`", h.pid, h.command),
            None => format!("pid {} ({})", h.pid, h.command),
        })
        .collect();
    let fix = if holders.iter().any(|h| h.service.is_some()) {
        "run `cargo xtask cleanup`"
    } else {
        "stop that process or change the port in services.toml"
    };
    format!("port {port} is held by {}; {fix}", who.join(", "))
}

fn leftover_problem(leftovers: &[process::ProcessInfo]) -> String {
    let list: Vec<String> = leftovers
        .iter()
        .map(|p| {
            format!(
                "pid {} ({}): {}",
                p.process.pid,
                p.service.as_deref().unwrap_or("?"),
                p.command
            )
        })
        .collect();
    format!(
        "leftover processes of this project are running without a record: {}; run `cargo xtask cleanup` to stop them",
        list.join(", ")
    )
}

fn state_problems(ctx: &Context, entries: &[Entry], live: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    if crate::container::configured(ctx)
        && let Err(err) = crate::container::engine()
    {
        problems.push(err);
    }
    if let Some(problem) = writable_problem(ctx.registry.dir()) {
        problems.push(problem);
    }
    for entry in entries.iter().filter(|e| stop::is_stale(ctx, e)) {
        match entry {
            Entry::Record(record) => {
                let why = if record.process().is_reused() {
                    format!(
                        "pid {} now belongs to another program ({})",
                        record.pid,
                        process::command_line(record.pid)
                    )
                } else {
                    format!("pid {} is no longer running", record.pid)
                };
                problems.push(format!(
                    "stale record of {}: {why}; run `cargo xtask cleanup`",
                    record.service
                ));
            }
            Entry::Corrupt { service, path, reason } => {
                problems.push(format!(
                    "untrustworthy state file of {service} at {}: {reason}; run `cargo xtask cleanup`",
                    path.display()
                ));
            }
        }
    }
    let leftovers = stop::leftovers(ctx, live);
    if !leftovers.is_empty() {
        problems.push(leftover_problem(&leftovers));
    }
    problems
}

/// A problem when the state directory (or, before it exists, its nearest existing
/// ancestor) cannot be written.
fn writable_problem(dir: &Path) -> Option<String> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    let ok = existing.is_dir() && access(existing, AccessFlags::W_OK | AccessFlags::X_OK).is_ok();
    (!ok).then(|| {
        format!("the state directory {} cannot be written ({} is not writable); fix its permissions or set `state_dir` in [project]", dir.display(), existing.display())
    })
}

/// The program a command runs, when it can be told without running a shell: the
/// first word of an array, or of a simple shell command.
pub fn program_of(command: &CommandLine) -> Option<String> {
    match command {
        CommandLine::Exec(words) => words.first().cloned(),
        CommandLine::Shell(script) => {
            let mut words = script.split_whitespace();
            let mut first = words.next()?;
            if first == "exec" {
                first = words.next()?;
            }
            let special = |c: char| "$`'\"()|&;<>=*?[]{}~\\".contains(c);
            (!first.contains(special) && !SHELL_WORDS.contains(&first)).then(|| first.to_string())
        }
    }
}

fn program_exists(program: &str, cwd: &Path) -> bool {
    if program.contains('/') {
        return is_executable(&cwd.join(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_of_reads_simple_commands_only() {
        let cases: &[(CommandLine, Option<&str>)] = &[
            (CommandLine::Shell("postgres -D x".into()), Some("postgres")),
            (CommandLine::Shell("exec ./run.sh".into()), Some("./run.sh")),
            (CommandLine::Shell("FOO=1 node app.js".into()), None),
            (CommandLine::Shell("cd web && npm start".into()), None),
            (CommandLine::Shell("$HOME/bin/x".into()), None),
            (
                CommandLine::Exec(vec!["target/debug/api".into(), "--port".into()]),
                Some("target/debug/api"),
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(program_of(command).as_deref(), *expected, "for {command:?}");
        }
    }
}
