//! `status`: what runs, as a table or JSON; exit codes as LSB init scripts use them.
//! Processes of the project that no record names are listed too, as leftovers: a
//! stack with leftovers is not stopped, and not all well either.

use serde_json::json;

use crate::docker;
use crate::error::{Result, exit};
use crate::orchestrate::overview;
use crate::orchestrate::overview::{Detail, RelayTrouble, ServiceOverview};
use crate::os::{ProcessInfo, cgroup, process};
use crate::service::status::Status;
use crate::service::{Context, drift};
use crate::state::MonitorRecord;
use crate::ui;
use crate::ui::hint;

/// Prints the status of the named services (all when none) and returns 0 when all are
/// up (running or completed), 3 when none is and nothing of the project runs, 1
/// otherwise (some up, a stale record, or leftovers).
pub fn run(ctx: &Context, names: &[String], as_json: bool) -> Result<u8> {
    let detail = Detail {
        docker: true,
        log_summary: true,
        leftovers: true,
    };
    let overview = overview::gather(ctx, names, detail)?;
    let (rows, compose, leftovers) = (&overview.services, &overview.compose, &overview.leftovers);
    if as_json {
        let monitor = overview
            .supervisor
            .as_ref()
            .map(|m| json!({ "pid": m.pid, "foreground": m.foreground, "started_at_ms": m.started_at_ms }));
        ctx.ui.json(&json!({
            "project": ctx.config.project.name,
            "root": ctx.config.root,
            "monitor": monitor,
            "containment": containment(rows),
            "services": rows.iter().map(|r| to_json(ctx, r)).collect::<Vec<_>>(),
            "compose": compose.iter().map(|(name, state)| json!({
                "service": name,
                "state": compose_state_name(state),
                "health": compose_health_name(state),
            })).collect::<Vec<_>>(),
            "leftovers": leftovers.iter().map(|p| json!({
                "pid": p.process.pid,
                "service": p.service,
                "command": p.command,
            })).collect::<Vec<_>>(),
        }));
    } else {
        ctx.ui.result(super::project_line(ctx));
        print_table(ctx, rows, compose, leftovers);
        print_monitor(ctx, overview.supervisor.as_ref());
        if let Some((_, after)) = docker::hung_recently() {
            ctx.ui.warn(format!(
                "Docker did not answer within {}s: what it says of the containers and compose services is unknown",
                after.as_secs()
            ));
        }
    }
    let compose_up = compose.iter().filter(|(_, s)| s.is_ready()).count();
    let up = rows
        .iter()
        .filter(|r| r.state.is_up())
        .count()
        .saturating_add(compose_up);
    // A service its profile keeps out is not expected to run.
    let expected = rows.iter().filter(|r| r.state != Status::Inactive).count();
    let total = expected.saturating_add(compose.len());
    let stale = rows.iter().any(|r| matches!(r.state, Status::Stale(_)));
    Ok(if !leftovers.is_empty() {
        exit::FAILURE
    } else if total == 0 {
        exit::NOT_RUNNING
    } else if up == total && !stale {
        exit::OK
    } else if up == 0 && !stale {
        exit::NOT_RUNNING
    } else {
        exit::FAILURE
    })
}

/// The state column: the state, with the container, the last exit or a failed build.
pub fn state_text(row: &ServiceOverview) -> String {
    if let Some(container) = &row.container {
        return format!("{} (container {} {})", row.state.name(), container.id, container.status);
    }
    let text = match (&row.state, row.last_exit()) {
        (Status::Stale(_), _) => "stale record".to_string(),
        (Status::Failed | Status::Exited | Status::Restarting, Some(exit)) => {
            format!("{} ({exit})", row.state.name())
        }
        (state, _) => state.name().to_string(),
    };
    let text = match row.last_build() {
        Some((build, age)) if !build.ok => format!("{text} (build failed {} ago)", ui::uptime(age)),
        _ => text,
    };
    match row.relay {
        Some(RelayTrouble::Replaced(age)) => format!("{text} (log relay replaced {} ago)", ui::uptime(age)),
        Some(RelayTrouble::Lost(Some(age))) => format!("{text} (log relay died {} ago: output lost)", ui::uptime(age)),
        Some(RelayTrouble::Lost(None)) => format!("{text} (log relay gone: output lost)"),
        None => text,
    }
}

/// A compose service's state, in the words of `status`.
fn compose_state_name(state: &docker::ComposeState) -> &'static str {
    use docker::ComposeState::*;
    match state {
        Healthy | Running | Starting | Unhealthy => "running",
        Exited(_) => "exited",
        Missing => "stopped",
    }
}

fn compose_health_name(state: &docker::ComposeState) -> &'static str {
    use docker::ComposeState::*;
    match state {
        Healthy => "healthy",
        Starting => "starting",
        Unhealthy => "unhealthy",
        Running | Exited(_) | Missing => "-",
    }
}

/// A compose service's row: its state and health as `docker ps` says them.
fn compose_line((name, state): &(String, docker::ComposeState)) -> Vec<String> {
    let dash = || "-".to_string();
    let detail = match state {
        docker::ComposeState::Exited(status) => format!("compose: {status}"),
        _ => "compose".to_string(),
    };
    vec![
        name.clone(),
        compose_state_name(state).to_string(),
        dash(),
        dash(),
        dash(),
        dash(),
        dash(),
        compose_health_name(state).to_string(),
        dash(),
        dash(),
        detail,
    ]
}

fn print_table(
    ctx: &Context,
    rows: &[ServiceOverview],
    compose: &[(String, docker::ComposeState)],
    leftovers: &[ProcessInfo],
) {
    let header = [
        "SERVICE",
        "STATE",
        "PID",
        "UPTIME",
        "CPU%",
        "RSS",
        "PORT",
        "HEALTH",
        "RESTARTS",
        "LOGS",
        "LAST LINE",
    ];
    let lines = rows
        .iter()
        .map(|row| {
            let usage = row.usage();
            let ports = row.ports_text();
            vec![
                row.service.clone(),
                state_text(row),
                row.pid().map_or("-".into(), |pid| pid.to_string()),
                usage.map_or("-".into(), |u| ui::uptime(u.uptime)),
                usage.map_or("-".into(), |u| format!("{:.1}", u.cpu_percent)),
                usage.map_or("-".into(), |u| ui::bytes(u.rss_bytes)),
                if ports.is_empty() { "-".into() } else { ports.join(",") },
                row.health().to_string(),
                row.restarts().to_string(),
                row.log_lines.to_string(),
                row.last_line
                    .as_deref()
                    .map_or(String::new(), |l| ui::text::clipped(l, 60)),
            ]
        })
        .collect::<Vec<Vec<String>>>();
    let compose_lines = compose.iter().map(compose_line);
    let lines: Vec<Vec<String>> = lines
        .into_iter()
        .chain(compose_lines)
        .chain(leftovers.iter().map(leftover_line))
        .collect();
    ctx.ui.table(&header, lines);
    for row in rows {
        if let Some(changes) = row.config_changes {
            ctx.ui
                .warn(format!("{}: {}", row.service, drift::advice(&row.service, changes)));
        }
        if let Status::Stale(reason) = &row.state {
            ctx.ui.warn(format!(
                "{}: stale record: {reason}; run `{}`",
                row.service,
                hint::command("cleanup")
            ));
        }
    }
    if !leftovers.is_empty() {
        ctx.ui.warn(format!(
            "{} leftover process(es) of this project run without a record; `{}` stops them",
            leftovers.len(),
            hint::command("cleanup")
        ));
    }
}

/// A leftover's row: the service its cookie names (`?` for none), its PID and usage,
/// and its command line (read from /proc, escaped) where a service shows its last line.
fn leftover_line(p: &ProcessInfo) -> Vec<String> {
    let usage = process::usage(&p.process);
    let dash = || "-".to_string();
    vec![
        p.service.clone().unwrap_or_else(|| "?".to_string()),
        "leftover".to_string(),
        p.process.pid.to_string(),
        usage.map_or_else(dash, |u| ui::uptime(u.uptime)),
        usage.map_or_else(dash, |u| format!("{:.1}", u.cpu_percent)),
        usage.map_or_else(dash, |u| ui::bytes(u.rss_bytes)),
        dash(),
        dash(),
        dash(),
        dash(),
        ui::text::clipped(&p.command, 60),
    ]
}

fn print_monitor(ctx: &Context, supervisor: Option<&MonitorRecord>) {
    match supervisor {
        Some(m) if m.foreground => ctx
            .ui
            .result(format!("supervised by a foreground `start` (pid {})", m.pid)),
        Some(m) => ctx.ui.result(format!("monitor: running (pid {})", m.pid)),
        None => ctx.ui.result(format!(
            "monitor: not running; crashed services are not restarted (`{}` attaches a new one)",
            hint::command("start-bg")
        )),
    }
}

fn to_json(ctx: &Context, row: &ServiceOverview) -> serde_json::Value {
    let usage = row.usage();
    json!({
        "service": row.service,
        "state": row.state.name(),
        "pid": row.pid(),
        "uptime_ms": usage.map(|u| u64::try_from(u.uptime.as_millis()).unwrap_or(u64::MAX)),
        "cpu_percent": usage.map(|u| (u.cpu_percent * 10.0).round() / 10.0),
        "rss_bytes": usage.map(|u| u.rss_bytes),
        "ports": row.ports,
        "config_changed": row.config_changes.is_some(),
        "health": row.health(),
        "restarts": row.restarts(),
        "last_exit": row.last_exit(),
        "last_build": row.last_build().map(|(b, age)| json!({
            "ok": b.ok,
            "age_ms": u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
        })),
        "log_relay": row.relay.map(|trouble| match trouble {
            RelayTrouble::Replaced(age) => json!({ "state": "replaced", "age_ms": millis(age) }),
            RelayTrouble::Lost(age) => json!({ "state": "lost", "age_ms": age.map(millis) }),
        }),
        "log": ctx.registry.log_path(&row.service),
        "log_lines": row.log_lines,
        "last_line": row.last_line,
        "stale_reason": match &row.state { Status::Stale(reason) => Some(reason.as_str()), _ => None },
        "container": row.container.as_ref().map(|c| json!({
            "name": row.record.as_ref().and_then(|r| r.container.clone()),
            "id": c.id,
            "state": c.status,
        })),
    })
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How the running stack is contained: as its records say (a stack started with
/// `XTASK_CGROUP=0` is `tree` whatever this command's own environment), `mixed` when
/// its services differ; with nothing running, what a start here would use.
fn containment(rows: &[ServiceOverview]) -> &'static str {
    let running: Vec<bool> = rows
        .iter()
        .filter(|r| r.state.is_alive())
        .filter_map(|r| r.record.as_ref())
        .filter(|record| record.container.is_none())
        .map(|record| record.cgroup.is_some())
        .collect();
    match (running.iter().any(|c| *c), running.iter().any(|c| !c)) {
        (true, false) => "cgroup",
        (false, true) => "tree",
        (true, true) => "mixed",
        (false, false) => cgroup::containment(),
    }
}
