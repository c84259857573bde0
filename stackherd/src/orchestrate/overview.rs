//! What runs, service by service: state, record, processes, usage and log summary, as
//! `status` prints it and the terminal UI shows it. Gathered in one pass over the state
//! directory and one cookie scan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::config::Changes;
use crate::docker;
use crate::error::Result;
use crate::os::process::usage as process_usage;
use crate::os::{ProcessInfo, ServiceProcess, scan};
use crate::service::processes::{processes_of, records_in};
use crate::service::status::{Health, Status, status};
use crate::service::{Context, drift, monitor};
use crate::state::{BuildNote, Entry, MonitorRecord, Record, log_writer, logs, now_ms};
use crate::stop::strays::strays;

/// What is known of the project's services at one moment.
pub struct Overview {
    pub services: Vec<ServiceOverview>,
    /// The compose project's services, as Docker sees them (a full overview only).
    pub compose: Vec<(String, docker::ComposeState)>,
    /// The live supervisor: a detached monitor or a foreground `start`.
    pub supervisor: Option<MonitorRecord>,
    /// Live processes of the project that no record names (see `strays`), when asked.
    pub leftovers: Vec<ProcessInfo>,
}

/// What is known of one service.
pub struct ServiceOverview {
    pub service: String,
    pub state: Status,
    pub record: Option<Record>,
    pub processes: Vec<ProcessInfo>,
    /// The ports of the running instance as its record keeps them (a port set by an
    /// environment variable at its start), else the config's.
    pub ports: Vec<u16>,
    /// How the config differs from the one the running instance started with.
    pub config_changes: Option<Changes>,
    pub log_lines: u64,
    pub last_line: Option<String>,
    /// Docker's view, for a container service.
    pub container: Option<docker::State>,
    /// What became of its log relay, when it died under the running service.
    pub relay: Option<RelayTrouble>,
}

/// A log relay that died while its service ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTrouble {
    /// A supervisor gave the service a new relay, this long ago.
    Replaced(Duration),
    /// Nothing writes its log: its output is lost until it restarts. How long ago the
    /// relay died, when a supervisor saw it.
    Lost(Option<Duration>),
}

/// What to ask beyond the records and /proc: Docker (a CLI call per container service,
/// and one for the compose project), the logs' line counts and last lines, and the
/// project's processes that no record names.
#[derive(Debug, Clone, Copy)]
pub struct Detail {
    pub docker: bool,
    pub log_summary: bool,
    pub leftovers: bool,
}

/// The named services (all when none), and in a full overview the records of services
/// no longer in the config.
pub fn gather(ctx: &Context, names: &[String], detail: Detail) -> Result<Overview> {
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
    let supervisor = monitor::live_monitor(ctx);
    let records = records_in(&entries);
    let leftovers = if detail.leftovers {
        strays(ctx, names, &holders, &entries)
    } else {
        Vec::new()
    };
    let mut owned = processes_of(&ctx.config.root, &services, &holders, &records);
    let mut entries: BTreeMap<String, Entry> = entries.into_iter().map(|e| (e.service().to_string(), e)).collect();
    let services = services
        .iter()
        .map(|s| {
            let processes = owned.remove(s).unwrap_or_default();
            one(ctx, s, entries.remove(s), processes, supervisor.is_some(), detail)
        })
        .collect();
    // Named services are xtask's: `select` refuses compose names.
    let compose = if detail.docker && names.is_empty() && ctx.config.project.compose_file.is_some() {
        docker::compose_states(&ctx.config)
    } else {
        Vec::new()
    };
    Ok(Overview {
        services,
        compose,
        supervisor,
        leftovers,
    })
}

fn one(
    ctx: &Context,
    service: &str,
    entry: Option<Entry>,
    processes: Vec<ProcessInfo>,
    supervised: bool,
    detail: Detail,
) -> ServiceOverview {
    let state = match status(entry.as_ref(), supervised) {
        Status::Stopped if !ctx.is_active(service) => Status::Inactive,
        state => state,
    };
    let record = match entry {
        Some(Entry::Record(record)) => Some(record),
        _ => None,
    };
    let container = record
        .as_ref()
        .and_then(|r| r.container.as_deref())
        .filter(|_| detail.docker)
        .and_then(docker::inspect);
    let log = ctx.registry.log_path(service);
    let relay = record
        .as_ref()
        .filter(|_| state.is_alive())
        .and_then(|r| relay_trouble(r, &log));
    let running = record.as_ref().filter(|_| state.is_alive());
    let ports = match running {
        Some(record) => record.ports.clone(),
        None => ctx.config.service(service).map(|s| s.ports.clone()).unwrap_or_default(),
    };
    let config_changes = running.and_then(|r| drift::changes(ctx, r));
    let (log_lines, last_line) = if detail.log_summary {
        (logs::count_lines(&log), logs::tail_of_run(&log, 1).pop())
    } else {
        (0, None)
    };
    ServiceOverview {
        service: service.to_string(),
        state,
        record,
        processes,
        ports,
        config_changes,
        log_lines,
        last_line,
        container,
        relay,
    }
}

/// Whether the relay of a running service died: as a supervisor recorded it, or, with
/// no supervisor to see it, a relay that is gone without having marked the end of the
/// service's output in the log (a daemon that closed its output ends its relay well).
fn relay_trouble(record: &Record, log: &Path) -> Option<RelayTrouble> {
    let relay = record.relay.map(|(pid, start_time)| ServiceProcess { pid, start_time });
    let relay_alive = relay.is_some_and(|r| r.is_alive());
    let ago = |at_ms: u64| Duration::from_millis(now_ms().saturating_sub(at_ms));
    match record.relay_lost {
        Some(note) if note.restored && relay_alive => return Some(RelayTrouble::Replaced(ago(note.at_ms))),
        Some(note) if !note.restored => return Some(RelayTrouble::Lost(Some(ago(note.at_ms)))),
        _ => {}
    }
    (relay.is_some() && !relay_alive && !log_writer::ended_since(log, record.started_at_ms))
        .then_some(RelayTrouble::Lost(None))
}

/// Uptime of the main process; CPU% and RSS of all the service's processes together.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub uptime: Duration,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

impl ServiceOverview {
    pub fn usage(&self) -> Option<Usage> {
        // A service being stopped still runs until its process ends.
        if !self.state.is_alive() {
            return None;
        }
        let leader = ServiceProcess::recorded(self.record.as_ref()?);
        let uptime = process_usage(&leader)?.uptime;
        let (cpu_percent, rss_bytes) = self
            .processes
            .iter()
            .filter_map(|p| process_usage(&p.process))
            .fold((0.0, 0u64), |(cpu, rss), u| {
                (cpu + u.cpu_percent, rss.saturating_add(u.rss_bytes))
            });
        Some(Usage {
            uptime,
            cpu_percent,
            rss_bytes,
        })
    }

    /// Its ports as `status` shows them: `auto` for one not chosen yet.
    pub fn ports_text(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|&port| {
                if port == 0 {
                    "auto".to_string()
                } else {
                    port.to_string()
                }
            })
            .collect()
    }

    /// The main process, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.record.as_ref().filter(|_| self.state.is_alive()).map(|r| r.pid)
    }

    pub fn restarts(&self) -> u32 {
        self.record.as_ref().map_or(0, |r| r.restarts)
    }

    pub fn last_exit(&self) -> Option<&str> {
        self.record.as_ref().and_then(|r| r.last_exit.as_deref())
    }

    /// The last build of a watched service, and how long ago it ended.
    pub fn last_build(&self) -> Option<(BuildNote, Duration)> {
        let build = self.record.as_ref()?.last_build?;
        Some((build, Duration::from_millis(now_ms().saturating_sub(build.at_ms))))
    }

    /// `healthy`, `starting`, `unhealthy`, or `-` for a service not running.
    pub fn health(&self) -> &'static str {
        match self.state {
            Status::Running(Health::Healthy) => "healthy",
            Status::Running(Health::Starting) => "starting",
            Status::Running(Health::Unhealthy) => "unhealthy",
            _ => "-",
        }
    }
}
