//! Checks before start: programs, working directories, ports free (and who holds them),
//! the state directory, the Docker engine, leftovers. `check` runs them for everything.

use std::collections::BTreeSet;

use crate::config::{CommandLine, Service};
use crate::docker;
use crate::error::{Error, Result};
use crate::os::port_holders::{self, PortHolder};
use crate::os::{ProcessInfo, program};
use crate::service::Context;
use crate::stop::{leftovers, live_services};
use crate::ui::hint;

/// Words that make the first word of a shell command something other than a program.
const SHELL_WORDS: &[&str] = &[
    "cd", "export", "if", "for", "while", "until", "case", "set", ".", "source", "test", "[", "true", "false", "echo",
    "printf", "exit", "trap", "wait", "read", "eval", "ulimit", "umask", "command", "type", "unset", "{", "(", "!",
];

/// The checks that must pass before `services` are started; all problems in one error.
pub fn before_start(ctx: &Context, services: &[String]) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let listening = port_holders::busy_ports(
        services
            .iter()
            .filter_map(|n| ctx.config.service(n))
            .flat_map(|s| s.ports.iter().copied()),
    );
    for service in services.iter().filter_map(|n| ctx.config.service(n)) {
        problems.extend(
            service_problems(ctx, service, false, &listening, Builds::Ran)
                .into_iter()
                .map(|p| format!("{}: {p}", service.name)),
        );
    }
    if let Some(problem) = ctx.registry.unwritable() {
        problems.push(problem);
    }
    let containers = services
        .iter()
        .filter_map(|n| ctx.config.service(n))
        .any(|s| s.container.is_some());
    if (containers || ctx.config.project.compose_file.is_some())
        && let Err(err) = docker::engine()
    {
        problems.push(err.to_string());
    }
    let wanted: BTreeSet<&str> = services.iter().map(String::as_str).collect();
    let leftovers: Vec<_> = leftovers(ctx, &live_services(&ctx.registry.entries()))
        .into_iter()
        .filter(|p| p.service.as_deref().is_none_or(|s| wanted.contains(s)))
        .collect();
    if !leftovers.is_empty() {
        problems.push(leftover_problem(&leftovers));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::NotReady(problems))
    }
}

/// Whether the build steps have run when the programs are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builds {
    /// `check`: a program the service's build produces may not exist yet.
    Pending,
    /// A start, after its builds (or with `--no-build`): it must exist.
    Ran,
}

pub fn service_problems(
    ctx: &Context,
    service: &Service,
    running: bool,
    listening: &BTreeSet<u16>,
    builds: Builds,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !service.cwd.is_dir() {
        problems.push(format!(
            "working directory {} does not exist; create it or fix `cwd`",
            service.cwd.display()
        ));
    } else if let Some(program) = missing_program(service) {
        match &service.build {
            Some(_) if builds == Builds::Pending && built_by_build(&program) => {}
            Some(build) if built_by_build(&program) => problems.push(format!(
                "program `{program}` not found in {} although its `build` (`{}`) should produce it; \
                 fix the build or `command`",
                service.cwd.display(),
                build.command
            )),
            _ => problems.push(format!(
                "program `{program}` not found{}; install it or fix `command`",
                if program.contains('/') {
                    format!(" in {}", service.cwd.display())
                } else {
                    " on PATH".to_string()
                }
            )),
        }
    }
    for &port in &service.ports {
        if !listening.contains(&port) {
            continue;
        }
        let holders = port_holders::port_holders(port, &ctx.config.root);
        if running && !holders.is_empty() && holders.iter().all(|h| h.service.as_deref() == Some(&service.name)) {
            continue;
        }
        problems.push(port_problem(port, &holders));
    }
    problems
}

/// The program of a process service that is not there (yet).
fn missing_program(service: &Service) -> Option<String> {
    let program = program_of(&service.command)?;
    (service.container.is_none()
        && program::find(&program, &service.cwd, program::path_with(&service.env).as_deref()).is_none())
    .then_some(program)
}

/// Whether a build can be what makes `program`: a path (`target/debug/api`,
/// `node_modules/.bin/vite`), not a name looked up on PATH, which a build does not
/// install.
fn built_by_build(program: &str) -> bool {
    program.contains('/')
}

/// For `check`: the note for a service whose program its own build produces and has
/// not produced yet, which is no problem until a start has run the build.
pub fn awaiting_build(service: &Service) -> Option<String> {
    let build = service.build.as_ref()?;
    if !service.cwd.is_dir() {
        return None;
    }
    let program = missing_program(service).filter(|p| built_by_build(p))?;
    Some(format!(
        "program `{program}` not built yet: built by `build` (`{}`) before a start",
        build.command
    ))
}

fn port_problem(port: u16, holders: &[PortHolder]) -> String {
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
        format!("run `{}`", hint::command("cleanup"))
    } else {
        "stop that process or change the port in services.toml".to_string()
    };
    format!("port {port} is held by {}; {fix}", who.join(", "))
}

pub fn leftover_problem(leftovers: &[ProcessInfo]) -> String {
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
        "leftover processes of this project are running without a record: {}; run `{}` to stop them",
        list.join(", "),
        hint::command("cleanup")
    )
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
