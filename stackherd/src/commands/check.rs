//! `check`: every check for every service, all problems reported; exit 0 or 1.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::config::Config;
use crate::docker;
use crate::error::{Result, exit};
use crate::os::ServiceProcess;
use crate::os::cgroup;
use crate::os::port_holders;
use crate::os::process::command_line;
use crate::service::Context;
use crate::start::preflight::{Builds, awaiting_build, leftover_problem, service_problems};
use crate::state::Entry;
use crate::stop::{leftovers, live_services, stale_entries};
use crate::ui;
use crate::ui::hint;

/// `check --print`: the merged config of `paths`, each value with the file it comes
/// from; its files are read and merged, not checked.
pub fn print(paths: &[PathBuf]) -> Result<u8> {
    for line in Config::print_merged(paths)? {
        ui::raw_line(&line);
    }
    Ok(exit::OK)
}

/// `check`: every check for every service, all problems reported; exit 0 or 1.
pub fn run(ctx: &Context) -> Result<u8> {
    let listening = port_holders::busy_ports(ctx.config.services.iter().flat_map(|s| s.ports.iter().copied()));
    ctx.ui.ok(format!(
        "{}: {} services, no errors",
        ctx.config.path.display(),
        ctx.config.services.len()
    ));
    ctx.ui.info(match cgroup::base() {
        Some(base) => format!("containment: cgroup (services' cgroups under {})", base.display()),
        None => "containment: tree (no writable cgroup2 hierarchy, or XTASK_CGROUP=0)".to_string(),
    });
    let entries = ctx.registry.entries();
    let live = live_services(&entries);
    let mut problems = 0usize;
    for service in &ctx.config.services {
        // Before a build: the program a service's build produces may be missing.
        if let Some(note) = awaiting_build(service) {
            ctx.ui.info(format!("{}: {note}", service.name));
        }
        let found = service_problems(ctx, service, live.contains(&service.name), &listening, Builds::Pending);
        if found.is_empty() {
            ctx.ui.ok(format!("{}: ready", service.name));
        }
        for problem in found {
            ctx.ui.fail(format!("{}: {problem}", service.name));
            problems = problems.saturating_add(1);
        }
    }
    for problem in state_problems(ctx, &entries, &live) {
        ctx.ui.fail(problem);
        problems = problems.saturating_add(1);
    }
    if problems == 0 {
        ctx.ui.result("all checks passed");
        Ok(exit::OK)
    } else {
        ctx.ui.result(format!("{problems} problem(s) found"));
        Ok(exit::FAILURE)
    }
}

fn state_problems(ctx: &Context, entries: &[Entry], live: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    if docker::configured(&ctx.config) {
        match docker::engine() {
            Err(err) => problems.push(err.to_string()),
            Ok(()) => problems.extend(missing_images(ctx)),
        }
    }
    problems.extend(shared_names(ctx));
    if let Some(problem) = ctx.registry.unwritable() {
        problems.push(problem);
    }
    for entry in stale_entries(ctx, entries) {
        match entry {
            Entry::Record(record) => {
                let why = if ServiceProcess::recorded(record).is_reused() {
                    format!(
                        "pid {} now belongs to another program ({})",
                        record.pid,
                        command_line(record.pid)
                    )
                } else {
                    format!("pid {} is no longer running", record.pid)
                };
                problems.push(format!(
                    "stale record of {}: {why}; run `{}`",
                    record.service,
                    hint::command("cleanup")
                ));
            }
            Entry::Corrupt { service, path, reason } => {
                problems.push(format!(
                    "untrustworthy state file of {service} at {}: {reason}; run `{}`",
                    path.display(),
                    hint::command("cleanup")
                ));
            }
        }
    }
    let leftovers = leftovers(ctx, live);
    if !leftovers.is_empty() {
        problems.push(leftover_problem(&leftovers));
    }
    problems
}

/// Container services whose image is not on this machine: a start would ask a registry
/// for it, which a locally built image is not in.
fn missing_images(ctx: &Context) -> Vec<String> {
    ctx.config
        .services
        .iter()
        .filter_map(|s| Some((&s.name, &s.container.as_ref()?.image)))
        .filter(|(_, image)| !docker::image_present(image))
        .map(|(name, image)| {
            format!("{name}: image `{image}` is not present locally; build it (`docker build -t {image} …`) or pull it")
        })
        .collect()
}

/// Names that are both a service of services.toml and of the compose file: `start`,
/// `stop` and `depends_on` could not tell which one is meant.
fn shared_names(ctx: &Context) -> Vec<String> {
    let Some(file) = &ctx.config.project.compose_file else {
        return Vec::new();
    };
    ctx.config
        .project
        .compose_services
        .iter()
        .filter(|name| ctx.config.service(name).is_some())
        .map(|name| {
            format!(
                "{name}: a service of services.toml and of {} share this name; rename one",
                file.display()
            )
        })
        .collect()
}
