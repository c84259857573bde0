//! `status`: what runs, as a table or JSON; exit codes as LSB init scripts use them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::docker;
use crate::error::{Result, exit};
use crate::lifecycle::processes::{processes_of, records_in};
use crate::lifecycle::state::{Health, Status, status};
use crate::lifecycle::{Context, monitor};
use crate::os::cgroup;
use crate::os::process::usage as process_usage;
use crate::os::{ProcessInfo, ServiceProcess, scan};
use crate::state::{BuildNote, Entry, MonitorRecord, Record, logs, now_ms};
use crate::ui;

/// What status knows of one service.
struct Row {
    service: String,
    state: Status,
    record: Option<Record>,
    processes: Vec<ProcessInfo>,
    log_lines: u64,
    last_line: Option<String>,
    /// Docker's view, for a container service.
    container: Option<docker::State>,
}

/// Prints the status of the named services (all when none) and returns 0 when all are
/// up (running or completed), 3 when none is, 1 otherwise.
pub fn run(ctx: &Context, names: &[String], as_json: bool) -> Result<u8> {
    let selected = ctx.select(names)?;
    let mut services: Vec<String> = selected.clone();
    // The state directory is read once: with 50 services each extra pass is 100 files.
    let entries = ctx.registry.entries();
    if names.is_empty() {
        // Records of services no longer in the config still deserve a line.
        let extra: BTreeSet<String> = entries.iter().map(|e| e.service().to_string()).collect();
        services.extend(extra.into_iter().filter(|s| !selected.contains(s)));
    }
    let holders = scan::cookie_holders(&ctx.config.root);
    let supervised = monitor::live_monitor(ctx);
    let records = records_in(&entries);
    let mut owned = processes_of(&ctx.config.root, &services, &holders, &records);
    let mut entries: BTreeMap<String, Entry> = entries.into_iter().map(|e| (e.service().to_string(), e)).collect();
    let rows: Vec<Row> = services
        .iter()
        .map(|s| {
            let processes = owned.remove(s).unwrap_or_default();
            row(ctx, s, entries.remove(s), processes, supervised.is_some())
        })
        .collect();
    // The compose project's services, as Docker sees them, in a full status (named
    // services are xtask's: `select` refuses compose names).
    let compose = if names.is_empty() && ctx.config.project.compose_file.is_some() {
        docker::compose_states(&ctx.config)
    } else {
        Vec::new()
    };
    if as_json {
        let monitor = supervised
            .as_ref()
            .map(|m| json!({ "pid": m.pid, "foreground": m.foreground, "started_at_ms": m.started_at_ms }));
        ctx.ui.json(&json!({
            "project": ctx.config.project.name,
            "root": ctx.config.root,
            "monitor": monitor,
            "containment": cgroup::containment(),
            "services": rows.iter().map(|r| to_json(ctx, r)).collect::<Vec<_>>(),
            "compose": compose.iter().map(|(name, state)| json!({
                "service": name,
                "state": compose_state_name(state),
                "health": compose_health_name(state),
            })).collect::<Vec<_>>(),
        }));
    } else {
        print_table(ctx, &rows, &compose);
        print_monitor(ctx, supervised.as_ref());
    }
    let compose_up = compose.iter().filter(|(_, s)| s.is_ready()).count();
    let up = rows
        .iter()
        .filter(|r| r.state.is_up())
        .count()
        .saturating_add(compose_up);
    let total = rows.len().saturating_add(compose.len());
    let stale = rows.iter().any(|r| matches!(r.state, Status::Stale(_)));
    Ok(if total == 0 {
        exit::NOT_RUNNING
    } else if up == total && !stale {
        exit::OK
    } else if up == 0 && !stale {
        exit::NOT_RUNNING
    } else {
        exit::FAILURE
    })
}

fn row(ctx: &Context, service: &str, entry: Option<Entry>, processes: Vec<ProcessInfo>, supervised: bool) -> Row {
    let state = status(entry.as_ref(), supervised);
    let record = match entry {
        Some(Entry::Record(record)) => Some(record),
        _ => None,
    };
    let log = ctx.registry.log_path(service);
    let container = record
        .as_ref()
        .and_then(|r| r.container.as_deref())
        .and_then(docker::inspect);
    Row {
        service: service.to_string(),
        state,
        record,
        processes,
        log_lines: logs::count_lines(&log),
        last_line: logs::tail_of_run(&log, 1).pop(),
        container,
    }
}

/// Uptime of the main process; CPU% and RSS of all the service's processes together.
fn usage(row: &Row) -> Option<(std::time::Duration, f64, u64)> {
    // A service being stopped still runs until its process ends.
    if !row.state.is_alive() {
        return None;
    }
    let leader = ServiceProcess::recorded(row.record.as_ref()?);
    let uptime = process_usage(&leader)?.uptime;
    let (cpu, rss) = row
        .processes
        .iter()
        .filter_map(|p| process_usage(&p.process))
        .fold((0.0, 0u64), |(cpu, rss), u| {
            (cpu + u.cpu_percent, rss.saturating_add(u.rss_bytes))
        });
    Some((uptime, cpu, rss))
}

fn state_text(row: &Row) -> String {
    let last_exit = row.record.as_ref().and_then(|r| r.last_exit.as_deref());
    if let Some(container) = &row.container {
        return format!("{} (container {} {})", row.state.name(), container.id, container.status);
    }
    let text = match (&row.state, last_exit) {
        (Status::Stale(_), _) => "stale record".to_string(),
        (Status::Failed | Status::Exited | Status::Restarting, Some(exit)) => {
            format!("{} ({exit})", row.state.name())
        }
        (state, _) => state.name().to_string(),
    };
    match row.record.as_ref().and_then(|r| r.last_build) {
        Some(build) if !build.ok => format!("{text} (build failed {} ago)", ui::uptime(build_age(build))),
        _ => text,
    }
}

fn build_age(build: BuildNote) -> std::time::Duration {
    std::time::Duration::from_millis(now_ms().saturating_sub(build.at_ms))
}

fn health_text(row: &Row) -> &'static str {
    match row.state {
        Status::Running(Health::Healthy) => "healthy",
        Status::Running(Health::Starting) => "starting",
        Status::Running(Health::Unhealthy) => "unhealthy",
        _ => "-",
    }
}

fn ports(ctx: &Context, service: &str) -> Vec<u16> {
    ctx.config.service(service).map(|s| s.ports.clone()).unwrap_or_default()
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

fn print_table(ctx: &Context, rows: &[Row], compose: &[(String, docker::ComposeState)]) {
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
            let usage = usage(row);
            let pid = match (&row.state, &row.record) {
                (state, Some(r)) if state.is_alive() => r.pid.to_string(),
                _ => "-".to_string(),
            };
            let ports: Vec<String> = ports(ctx, &row.service).iter().map(u16::to_string).collect();
            vec![
                row.service.clone(),
                state_text(row),
                pid,
                usage.map_or("-".into(), |u| ui::uptime(u.0)),
                usage.map_or("-".into(), |u| format!("{:.1}", u.1)),
                usage.map_or("-".into(), |u| ui::bytes(u.2)),
                if ports.is_empty() { "-".into() } else { ports.join(",") },
                health_text(row).to_string(),
                row.record.as_ref().map_or(0, |r| r.restarts).to_string(),
                row.log_lines.to_string(),
                row.last_line.as_deref().map_or(String::new(), |l| truncate(l, 60)),
            ]
        })
        .collect::<Vec<Vec<String>>>();
    let compose_lines = compose.iter().map(|(name, state)| {
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
    });
    let lines: Vec<Vec<String>> = lines.into_iter().chain(compose_lines).collect();
    ctx.ui.table(&header, lines);
    for row in rows {
        if let Status::Stale(reason) = &row.state {
            ctx.ui.warn(format!(
                "{}: stale record: {reason}; run `cargo xtask cleanup`",
                row.service
            ));
        }
    }
}

fn print_monitor(ctx: &Context, supervisor: Option<&MonitorRecord>) {
    match supervisor {
        Some(m) if m.foreground => ctx
            .ui
            .result(format!("supervised by a foreground `start` (pid {})", m.pid)),
        Some(m) => ctx.ui.result(format!("monitor: running (pid {})", m.pid)),
        None => ctx.ui.result(
            "monitor: not running; crashed services are not restarted (`cargo xtask start-bg` attaches a new one)",
        ),
    }
}

fn to_json(ctx: &Context, row: &Row) -> serde_json::Value {
    let usage = usage(row);
    json!({
        "service": row.service,
        "state": row.state.name(),
        "pid": row.record.as_ref().filter(|_| row.state.is_alive()).map(|r| r.pid),
        "uptime_ms": usage.map(|u| u64::try_from(u.0.as_millis()).unwrap_or(u64::MAX)),
        "cpu_percent": usage.map(|u| (u.1 * 10.0).round() / 10.0),
        "rss_bytes": usage.map(|u| u.2),
        "ports": ports(ctx, &row.service),
        "health": health_text(row),
        "restarts": row.record.as_ref().map_or(0, |r| r.restarts),
        "last_exit": row.record.as_ref().and_then(|r| r.last_exit.clone()),
        "last_build": row.record.as_ref().and_then(|r| r.last_build).map(|b| json!({
            "ok": b.ok,
            "age_ms": u64::try_from(build_age(b).as_millis()).unwrap_or(u64::MAX),
        })),
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

fn truncate(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(max.saturating_sub(1)).collect::<String>())
    }
}
